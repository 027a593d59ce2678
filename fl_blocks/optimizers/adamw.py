"""`build_adamw`: TFF's AdamW (Adam with decoupled weight decay).

State ``learning_rate, beta_1, beta_2, epsilon, step, accumulator,
preconditioner, weight_decay``; moments as Adam's, then::

    w = w - lr * (sqrt(1 - beta_2**t) / (1 - beta_1**t) * acc / (sqrt(pre) + epsilon) + weight_decay * w)

(the decay uses the weights before the step and is scaled by the learning rate).

>>> import numpy as np
>>> adamw = build_adamw(learning_rate=0.1, weight_decay=0.5)
>>> state = adamw.initialize([np.zeros(1)])
>>> adamw.next(state, [np.array([2.0])], [np.zeros(1)])[1]  # no gradient: w - 0.1 * 0.5 * w
[array([1.9])]
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from fl_blocks.optimizers.adam import ADAM_STATE_KEYS, Adam
from fl_blocks.optimizers.leafwise import BETA_1_KEY, BETA_2_KEY, EPSILON_KEY
from fl_blocks.optimizers.moments import bias_correction
from fl_blocks.optimizers.optimizer import LEARNING_RATE_KEY, Optimizer

__all__ = ["build_adamw", "WEIGHT_DECAY_KEY"]

WEIGHT_DECAY_KEY = "weight_decay"


class AdamW(Adam):
    """TFF's AdamW: Adam's step plus weight decay, both scaled by the learning rate."""

    state_keys = ADAM_STATE_KEYS + (WEIGHT_DECAY_KEY,)

    def _apply(self, w: Any, a: Any, p: Any, hparams: Mapping[str, Any], step: Any) -> Any:
        one = hparams[LEARNING_RATE_KEY].dtype.type(1)
        normalization = bias_correction(one, hparams[BETA_1_KEY], hparams[BETA_2_KEY], step)
        adam_step = normalization * a / (np.sqrt(p) + hparams[EPSILON_KEY])
        return w - hparams[LEARNING_RATE_KEY] * (adam_step + hparams[WEIGHT_DECAY_KEY] * w)


def build_adamw(
    learning_rate: float,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    weight_decay: float = 0.004,
) -> Optimizer:
    """Returns TFF's AdamW optimizer (``tff.learning.optimizers.build_adamw``).

    `learning_rate`, `epsilon` and `weight_decay` must be >= 0, `beta_1` and
    `beta_2` in [0, 1]; `weight_decay=0` is Adam.
    """
    return AdamW(
        {
            LEARNING_RATE_KEY: learning_rate,
            BETA_1_KEY: beta_1,
            BETA_2_KEY: beta_2,
            EPSILON_KEY: epsilon,
            WEIGHT_DECAY_KEY: weight_decay,
        }
    )
