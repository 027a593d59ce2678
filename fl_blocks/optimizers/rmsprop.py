"""`build_rmsprop`: TFF's RMSprop, with its formula, defaults and state keys.

State ``learning_rate, decay, epsilon, preconditioner`` (no step counter, no
bias correction); the preconditioner starts at 0::

    pre = pre + (g**2 - pre) * (1 - decay)
    w = w - lr * g / (sqrt(pre) + epsilon)

>>> import numpy as np
>>> rmsprop = build_rmsprop(learning_rate=0.1, decay=0.75, epsilon=0.0)
>>> state = rmsprop.initialize([np.zeros(1)])
>>> rmsprop.next(state, [np.zeros(1)], [np.array([2.0])])[1]  # pre = 1: w = -0.1 * 2 / 1
[array([-0.2])]
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
from fl_blocks.optimizers.moments import second_moment
from fl_blocks.optimizers.optimizer import LEARNING_RATE_KEY, Optimizer

__all__ = ["build_rmsprop", "DECAY_KEY"]

DECAY_KEY = "decay"


class _RMSProp(LeafwiseOptimizer):
    state_keys = (LEARNING_RATE_KEY, DECAY_KEY, EPSILON_KEY, PRECONDITIONER_KEY)

    def _leaf_update(self, hparams: Mapping[str, Any], step: Any) -> LeafUpdate:
        def update(w: Any, g: Any, p: Any) -> tuple[Any, ...]:
            cast = g.dtype.type
            p = second_moment(g, p, cast(hparams[DECAY_KEY]))
            return w - cast(hparams[LEARNING_RATE_KEY]) * g / (np.sqrt(p) + cast(hparams[EPSILON_KEY])), p

        return update


def build_rmsprop(learning_rate: float, decay: float = 0.9, epsilon: float = 1e-7) -> Optimizer:
    """Returns TFF's RMSprop optimizer (``tff.learning.optimizers.build_rmsprop``).

    `learning_rate` and `epsilon` must be >= 0, `decay` in [0, 1].
    """
    return _RMSProp({LEARNING_RATE_KEY: learning_rate, DECAY_KEY: decay, EPSILON_KEY: epsilon})
