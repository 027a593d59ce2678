"""Functional optimizers with TFF's protocol, formulas and state keys."""

from fl_blocks.optimizers.adam import build_adam
from fl_blocks.optimizers.optimizer import Optimizer
from fl_blocks.optimizers.sgdm import build_sgdm
from fl_blocks.optimizers.yogi import build_yogi

__all__ = ["Optimizer", "build_adam", "build_sgdm", "build_yogi"]
