"""`build_adagrad`: TFF's Adagrad, with its formula, defaults and state keys.

State ``learning_rate, epsilon, preconditioner``; the preconditioner starts
at `initial_preconditioner_value`::

    pre = pre + g**2
    w = w - lr * g / sqrt(pre + epsilon)

(epsilon inside the square root, as TFF).

>>> import numpy as np
>>> adagrad = build_adagrad(learning_rate=1.0, initial_preconditioner_value=0.0, epsilon=0.0)
>>> state = adagrad.initialize([np.zeros(2)])
>>> adagrad.next(state, [np.zeros(2)], [np.array([3.0, -4.0])])[1]  # -g / |g|
[array([-1.,  1.])]
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from fl_blocks.optimizers.leafwise import (
    EPSILON_KEY,
    PRECONDITIONER_KEY,
    LeafUpdate,
    LeafwiseOptimizer,
)
from fl_blocks.optimizers.optimizer import LEARNING_RATE_KEY, Optimizer

__all__ = ["build_adagrad"]


class _Adagrad(LeafwiseOptimizer):
    state_keys = (LEARNING_RATE_KEY, EPSILON_KEY, PRECONDITIONER_KEY)

    def _leaf_update(self, hparams: Mapping[str, Any], step: Any) -> LeafUpdate:
        def update(w: Any, g: Any, p: Any) -> tuple[Any, ...]:
            cast = g.dtype.type
            p = p + np.square(g)
            # g * (1 / sqrt(.)), not g / sqrt(.): TF's graph optimizer rewrites x / sqrt(y) to x * rsqrt(y),
            # and this order reproduces TFF's float32 results bit for bit (the division differs by 1 ulp).
            return w - cast(hparams[LEARNING_RATE_KEY]) * g * (1 / np.sqrt(p + cast(hparams[EPSILON_KEY]))), p

        return update


def build_adagrad(learning_rate: float, initial_preconditioner_value: float = 0.1, epsilon: float = 1e-7) -> Optimizer:
    """Returns TFF's Adagrad optimizer (``tff.learning.optimizers.build_adagrad``).

    `learning_rate`, `initial_preconditioner_value` and `epsilon` must be >= 0.
    """
    return _Adagrad(
        {LEARNING_RATE_KEY: learning_rate, EPSILON_KEY: epsilon},
        {PRECONDITIONER_KEY: ("initial_preconditioner_value", initial_preconditioner_value)},
    )
