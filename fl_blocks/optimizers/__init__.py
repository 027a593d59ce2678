"""Functional optimizers with TFF's protocol, formulas and state keys."""

from fl_blocks.optimizers.optimizer import Optimizer
from fl_blocks.optimizers.sgdm import build_sgdm

__all__ = ["Optimizer", "build_sgdm"]
