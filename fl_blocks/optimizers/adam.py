"""`build_adam`: TFF's Adam, with its formula, defaults and state keys.

State ``learning_rate, beta_1, beta_2, epsilon, step, accumulator,
preconditioner``; with ``t = step + 1``::

    acc = acc + (g - acc) * (1 - beta_1)
    pre = pre + (g**2 - pre) * (1 - beta_2)
    w = w - lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * acc / (sqrt(pre) + epsilon)

(epsilon outside the square root and not bias-corrected, as TFF).

>>> import numpy as np
>>> adam = build_adam(learning_rate=0.1)
>>> state = adam.initialize([np.zeros(2, np.float32)])
>>> state, w = adam.next(state, [np.zeros(2, np.float32)], [np.array([1.0, -3.0], np.float32)])
>>> np.round(w[0], 6), state["step"]  # the first step moves each weight by about lr
(array([-0.1,  0.1], dtype=float32), np.int32(1))
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from fl_blocks.optimizers.leafwise import (
    ACCUMULATOR_KEY,
    BETA_1_KEY,
    BETA_2_KEY,
    EPSILON_KEY,
    PRECONDITIONER_KEY,
    STEP_KEY,
    LeafUpdate,
    LeafwiseOptimizer,
)
from fl_blocks.optimizers.moments import bias_correction, first_moment, second_moment
from fl_blocks.optimizers.optimizer import LEARNING_RATE_KEY, Optimizer

__all__ = ["build_adam", "Adam", "ADAM_STATE_KEYS"]

ADAM_STATE_KEYS: tuple[str, ...] = (LEARNING_RATE_KEY, BETA_1_KEY, BETA_2_KEY, EPSILON_KEY, STEP_KEY, ACCUMULATOR_KEY, PRECONDITIONER_KEY)


class Adam(LeafwiseOptimizer):
    """TFF's Adam; Yogi and AdamW change `_precondition` and `_apply`."""

    state_keys = ADAM_STATE_KEYS
    _precondition = staticmethod(second_moment)

    def _leaf_update(self, hparams: Mapping[str, Any], step: Any) -> LeafUpdate:
        def update(w: Any, g: Any, a: Any, p: Any) -> tuple[Any, ...]:
            cast = g.dtype.type
            leaf_hparams = {key: cast(value) for key, value in hparams.items()}
            a = first_moment(g, a, leaf_hparams[BETA_1_KEY])
            p = self._precondition(g, p, leaf_hparams[BETA_2_KEY])
            return self._apply(w, a, p, leaf_hparams, step), a, p

        return update

    def _apply(self, w: Any, a: Any, p: Any, hparams: Mapping[str, Any], step: Any) -> Any:
        """The new weights from the new moments; `hparams` are cast to the leaf dtype."""
        lr = bias_correction(hparams[LEARNING_RATE_KEY], hparams[BETA_1_KEY], hparams[BETA_2_KEY], step)
        return w - lr * a / (np.sqrt(p) + hparams[EPSILON_KEY])


def build_adam(learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7) -> Optimizer:
    """Returns TFF's Adam optimizer (``tff.learning.optimizers.build_adam``).

    `learning_rate` and `epsilon` must be >= 0, `beta_1` and `beta_2` in [0, 1].
    """
    return Adam({LEARNING_RATE_KEY: learning_rate, BETA_1_KEY: beta_1, BETA_2_KEY: beta_2, EPSILON_KEY: epsilon})
