"""`schedule_learning_rate`: an optimizer whose learning rate follows a schedule.

As TFF's ``tff.learning.optimizers.schedule_learning_rate``: the state is
``{"round_num": int32, "optimizer": inner_state}`` and the i-th call of
`next` (from 0) steps with learning rate ``schedule_fn(i)``: `initialize`
sets ``schedule_fn(0)``, each `next` steps, then stores ``schedule_fn(i + 1)``.
Its `get_hparams` is empty, as TFF's.

>>> import numpy as np
>>> from fl_blocks.optimizers.sgdm import build_sgdm
>>> sgd = schedule_learning_rate(build_sgdm(), lambda i: 1.0 / (i + 1))
>>> state = sgd.initialize([np.zeros(1)])
>>> state, w = sgd.next(state, [np.zeros(1)], [np.ones(1)])  # lr 1
>>> state, w = sgd.next(state, w, [np.ones(1)])  # lr 1/2
>>> w, state["round_num"], state["optimizer"]["learning_rate"]
([array([-1.5])], np.int32(2), 0.3333333333333333)
"""

from __future__ import annotations

import collections
import collections.abc
from typing import Any, Callable

import numpy as np

from fl_blocks.optimizers.optimizer import (
    LEARNING_RATE_KEY,
    Optimizer,
    State,
    check_hparam,
)

__all__ = ["schedule_learning_rate", "ROUND_NUM_KEY", "OPTIMIZER_KEY"]

ROUND_NUM_KEY = "round_num"
OPTIMIZER_KEY = "optimizer"


class _ScheduledLearningRate(Optimizer):
    _hparams_keys = ()

    def __init__(self, optimizer: Optimizer, schedule_fn: Callable[[Any], Any]) -> None:
        self._optimizer = optimizer
        self._schedule_fn = schedule_fn

    def initialize(self, specs: Any) -> State[str, Any]:
        """Returns ``{round_num: 0, optimizer: inner state with learning rate schedule_fn(0)}``."""
        inner = self._optimizer.initialize(specs)
        if not isinstance(inner, collections.abc.Mapping) or LEARNING_RATE_KEY not in inner:
            raise KeyError(
                f"the optimizer to schedule must keep its learning rate under {LEARNING_RATE_KEY!r} in its state; "
                f"{type(self._optimizer).__name__} state is {inner!r}"
            )
        return self._state(np.int32(0), inner)

    def next(self, state: State[str, Any], weights: Any, gradients: Any) -> tuple[State[str, Any], Any]:
        """Steps the inner optimizer at its current learning rate, then sets the next scheduled one."""
        inner, new_weights = self._optimizer.next(state[OPTIMIZER_KEY], weights, gradients)
        return self._state(np.int32(state[ROUND_NUM_KEY] + 1), inner), new_weights

    def _state(self, round_num: np.int32, inner: Any) -> State[str, Any]:
        learning_rate = self._schedule_fn(round_num)
        check_hparam(f"schedule_fn({int(round_num)})", LEARNING_RATE_KEY, learning_rate)
        inner = collections.OrderedDict(inner)
        inner[LEARNING_RATE_KEY] = float(learning_rate)
        return collections.OrderedDict([(ROUND_NUM_KEY, round_num), (OPTIMIZER_KEY, inner)])


def schedule_learning_rate(optimizer: Optimizer, schedule_fn: Callable[[Any], Any]) -> Optimizer:
    """Returns `optimizer` stepping with learning rate ``schedule_fn(i)`` at its i-th `next` (from 0).

    `schedule_fn` maps an int32 round number to a learning rate (a finite
    number >= 0); `optimizer`'s state must hold ``learning_rate``.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"schedule_learning_rate needs an fl_blocks Optimizer such as build_sgdm(0.1), got {type(optimizer).__name__}"
        )
    if not callable(schedule_fn):
        raise TypeError(f"schedule_fn must map a round number to a learning rate, got {type(schedule_fn).__name__}")
    return _ScheduledLearningRate(optimizer, schedule_fn)
