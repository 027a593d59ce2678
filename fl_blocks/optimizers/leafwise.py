"""`LeafwiseOptimizer`: the shared frame of TFF's adaptive optimizers.

Their state is, in TFF's key order, scalar hyperparameters (Python floats),
an optional int32 ``step`` and per-weight trees (``accumulator``,
``preconditioner``); one step maps a per-leaf update over weights, gradients
and those trees. Hyperparameters are cast to each leaf's dtype before use, as
TFF casts them, so float32 weights get TFF's float32 arithmetic.

>>> import numpy as np
>>> class _Sign(LeafwiseOptimizer):
...     state_keys = ("learning_rate",)
...     def _leaf_update(self, hparams, step):
...         return lambda w, g: (w - g.dtype.type(hparams["learning_rate"]) * np.sign(g),)
>>> opt = _Sign({"learning_rate": 0.5})
>>> opt.next(opt.initialize([np.zeros(2)]), [np.zeros(2)], [np.array([2.0, -1.0])])[1]
[array([-0.5,  0.5])]
"""

from __future__ import annotations

import abc
import collections
import functools
from typing import Any, Callable, Mapping, Optional

import numpy as np
import optree

from fl_blocks.optimizers.optimizer import (
    Optimizer,
    State,
    check_hparam,
    check_weights_gradients_match,
    check_weights_match,
    map_leaves_n,
)

__all__ = ["LeafwiseOptimizer", "STEP_KEY", "ACCUMULATOR_KEY", "PRECONDITIONER_KEY", "EPSILON_KEY", "BETA_1_KEY", "BETA_2_KEY"]

STEP_KEY = "step"
ACCUMULATOR_KEY = "accumulator"
PRECONDITIONER_KEY = "preconditioner"
EPSILON_KEY = "epsilon"
BETA_1_KEY = "beta_1"
BETA_2_KEY = "beta_2"
_TREE_KEYS = (ACCUMULATOR_KEY, PRECONDITIONER_KEY)

LeafUpdate = Callable[..., tuple[Any, ...]]


def _full(value: float, spec: Any) -> Any:
    return np.full(spec.shape, value, spec.dtype)


class LeafwiseOptimizer(Optimizer):
    """Base of optimizers whose state is hyperparameters, an optional ``step`` and per-weight trees.

    Subclasses set `state_keys` (TFF's order) and `_leaf_update`; trees start
    at the values given in `initial_values` (default 0).
    """

    state_keys: tuple[str, ...]

    def __init__(self, hparams: Mapping[str, Any], initial_values: Optional[Mapping[str, Any]] = None) -> None:
        owner = type(self).__name__.lstrip("_")
        self._hparams = {key: check_hparam(owner, key, value) for key, value in hparams.items()}
        self._initial_values = {key: check_hparam(owner, name, value) for key, (name, value) in (initial_values or {}).items()}
        self._hparams_keys = tuple(k for k in self.state_keys if k in self._hparams)
        self._tree_keys = tuple(k for k in self.state_keys if k in _TREE_KEYS)

    def initialize(self, specs: Any) -> State[str, Any]:
        """Returns TFF's initial state for weights of the given spec tree."""
        state: State[str, Any] = collections.OrderedDict()
        for key in self.state_keys:
            if key == STEP_KEY:
                state[key] = np.int32(0)
            elif key in self._tree_keys:
                state[key] = optree.tree_map(functools.partial(_full, self._initial_values.get(key, 0.0)), specs)
            else:
                state[key] = self._hparams[key]
        return state

    def next(self, state: State[str, Any], weights: Any, gradients: Any) -> tuple[State[str, Any], Any]:
        """Returns ``(new_state, new_weights)`` after one step along `gradients`."""
        check_weights_gradients_match(weights, gradients)
        trees = [state[key] for key in self._tree_keys]
        for key, tree in zip(self._tree_keys, trees):
            check_weights_match(weights, tree, key)
        new_state = collections.OrderedDict(state)
        if STEP_KEY in state:
            new_state[STEP_KEY] = np.int32(state[STEP_KEY] + 1)
        update = self._leaf_update({k: state[k] for k in self._hparams_keys}, new_state.get(STEP_KEY))
        new_weights, *new_trees = map_leaves_n(update, 1 + len(trees), weights, gradients, *trees)
        new_state.update(zip(self._tree_keys, new_trees))
        return new_state, new_weights

    @abc.abstractmethod
    def _leaf_update(self, hparams: Mapping[str, Any], step: Any) -> LeafUpdate:
        """Returns ``fn(w, g, *trees) -> (new_w, *new_trees)`` for one leaf, trees in `state_keys` order."""
