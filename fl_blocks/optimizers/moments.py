"""Moment estimates and Adam's bias correction, shared by Adam, AdamW, Yogi and RMSprop.

Each is TFF's expression with its operation order, in the dtype of its
arguments (pass hyperparameters already cast to the leaf dtype).

>>> import numpy as np
>>> round(float(bias_correction(np.float64(1.0), np.float64(0.9), np.float64(0.999), 1)), 9)  # sqrt(0.001) / 0.1
0.316227766
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["first_moment", "second_moment", "bias_correction"]


def first_moment(gradient: Any, accumulator: Any, beta_1: Any) -> Any:
    """``acc + (g - acc) * (1 - beta_1)``: the exponential moving average of gradients."""
    return accumulator + (gradient - accumulator) * (1 - beta_1)


def second_moment(gradient: Any, preconditioner: Any, beta_2: Any) -> Any:
    """``pre + (g**2 - pre) * (1 - beta_2)``: the exponential moving average of squared gradients."""
    return preconditioner + (np.square(gradient) - preconditioner) * (1 - beta_2)


def bias_correction(scale: Any, beta_1: Any, beta_2: Any, step: Any) -> Any:
    """``scale * sqrt(1 - beta_2**t) / (1 - beta_1**t)`` at 1-based step `t`, in the dtype of `beta_1`."""
    t = beta_1.dtype.type(step)
    return scale * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
