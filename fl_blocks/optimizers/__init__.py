"""Functional optimizers with TFF's protocol, formulas and state keys."""

from fl_blocks.optimizers.adagrad import build_adagrad
from fl_blocks.optimizers.adam import build_adam
from fl_blocks.optimizers.adamw import build_adamw
from fl_blocks.optimizers.optimizer import Optimizer
from fl_blocks.optimizers.rmsprop import build_rmsprop
from fl_blocks.optimizers.schedule import schedule_learning_rate
from fl_blocks.optimizers.sgdm import build_sgdm
from fl_blocks.optimizers.yogi import build_yogi

__all__ = [
    "Optimizer",
    "build_adagrad",
    "build_adam",
    "build_adamw",
    "build_rmsprop",
    "build_sgdm",
    "build_yogi",
    "schedule_learning_rate",
]
