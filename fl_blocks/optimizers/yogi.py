"""`build_yogi`: TFF's Yogi, with its formula, defaults and state keys.

State as Adam's (``learning_rate, beta_1, beta_2, epsilon, step,
accumulator, preconditioner``); the preconditioner starts at
`initial_preconditioner_value` and moves additively::

    acc = acc + (g - acc) * (1 - beta_1)
    pre = pre + (1 - beta_2) * sign(g**2 - pre) * g**2
    w = w - lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * acc / (sqrt(pre) + epsilon)

>>> import numpy as np
>>> yogi = build_yogi(learning_rate=0.1, epsilon=0.0, initial_preconditioner_value=0.0)
>>> state = yogi.initialize([np.zeros(2, np.float32)])
>>> state, w = yogi.next(state, [np.zeros(2, np.float32)], [np.array([1.0, -3.0], np.float32)])
>>> w
[array([-0.1,  0.1], dtype=float32)]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fl_blocks.optimizers.adam import Adam
from fl_blocks.optimizers.leafwise import (
    BETA_1_KEY,
    BETA_2_KEY,
    EPSILON_KEY,
    PRECONDITIONER_KEY,
)
from fl_blocks.optimizers.optimizer import LEARNING_RATE_KEY, Optimizer

__all__ = ["build_yogi"]


class Yogi(Adam):
    """TFF's Yogi: Adam with an additive preconditioner update."""

    @staticmethod
    def _precondition(g: Any, p: Any, beta_2: Any) -> Any:
        g2 = np.square(g)
        return p + (1 - beta_2) * np.sign(g2 - p) * g2


def build_yogi(
    learning_rate: float,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-3,
    initial_preconditioner_value: float = 1e-6,
) -> Optimizer:
    """Returns TFF's Yogi optimizer (``tff.learning.optimizers.build_yogi``).

    `learning_rate`, `epsilon` and `initial_preconditioner_value` must be >= 0,
    `beta_1` and `beta_2` in [0, 1].
    """
    return Yogi(
        {LEARNING_RATE_KEY: learning_rate, BETA_1_KEY: beta_1, BETA_2_KEY: beta_2, EPSILON_KEY: epsilon},
        {PRECONDITIONER_KEY: ("initial_preconditioner_value", initial_preconditioner_value)},
    )
