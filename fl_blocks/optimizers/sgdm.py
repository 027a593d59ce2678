"""`build_sgdm`: SGD with optional momentum, TFF's formula and state keys.

Without momentum (or momentum 0) the state is ``{learning_rate}`` and
``w <- w - lr * g``. With momentum ``m > 0`` the state adds ``momentum`` and an
``accumulator`` tree: ``a <- m * a + g``, ``w <- w - lr * a``.

>>> import numpy as np
>>> sgd = build_sgdm(learning_rate=0.5)
>>> state = sgd.initialize([np.zeros(2, np.float32)])
>>> sgd.next(state, [np.ones(2, np.float32)], [np.ones(2, np.float32)])[1]
[array([0.5, 0.5], dtype=float32)]
"""

from __future__ import annotations

import collections
from typing import Any, Optional

import numpy as np

from fl_blocks.optimizers.optimizer import (
    LEARNING_RATE_KEY,
    Optimizer,
    State,
    check_learning_rate,
    check_weights_gradients_match,
    map_leaves,
)
from fl_blocks.specs import zeros_like_spec

__all__ = ["build_sgdm", "MOMENTUM_KEY", "ACCUMULATOR_KEY"]

MOMENTUM_KEY = "momentum"
ACCUMULATOR_KEY = "accumulator"


class _SGD(Optimizer):
    def __init__(self, learning_rate: float, momentum: Optional[float]) -> None:
        check_learning_rate(learning_rate)
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be None or in [0, 1], got {momentum!r}")
        self._lr = float(learning_rate)
        self._momentum = momentum
        self._hparams_keys = (LEARNING_RATE_KEY, MOMENTUM_KEY)

    def initialize(self, specs: Any) -> State[str, Any]:
        state = collections.OrderedDict([(LEARNING_RATE_KEY, self._lr)])
        if self._momentum is not None and self._momentum > 0:
            state[MOMENTUM_KEY] = float(self._momentum)
            state[ACCUMULATOR_KEY] = zeros_like_spec(specs)
        return state

    def next(self, state: State[str, Any], weights: Any, gradients: Any) -> tuple[State[str, Any], Any]:
        check_weights_gradients_match(weights, gradients)
        lr = state[LEARNING_RATE_KEY]
        if MOMENTUM_KEY not in state:
            new_weights = map_leaves(lambda w, g: w - np.asarray(lr, g.dtype) * g, weights, gradients)
            return collections.OrderedDict([(LEARNING_RATE_KEY, lr)]), new_weights
        momentum = state[MOMENTUM_KEY]
        accumulator = map_leaves(
            lambda a, g: np.asarray(momentum, g.dtype) * a + g, state[ACCUMULATOR_KEY], gradients
        )
        new_weights = map_leaves(lambda w, a: w - np.asarray(lr, a.dtype) * a, weights, accumulator)
        new_state = collections.OrderedDict(
            [(LEARNING_RATE_KEY, lr), (MOMENTUM_KEY, momentum), (ACCUMULATOR_KEY, accumulator)]
        )
        return new_state, new_weights


def build_sgdm(learning_rate: float = 0.01, momentum: Optional[float] = None) -> Optimizer:
    """Returns TFF's SGD-with-momentum optimizer (``tff.learning.optimizers.build_sgdm``)."""
    return _SGD(learning_rate, momentum)
