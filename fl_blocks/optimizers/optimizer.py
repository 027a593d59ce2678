"""TFF's functional optimizer protocol.

``initialize(specs) -> state`` and ``next(state, weights, gradients) ->
(state, weights)``, both pure: new arrays are returned, inputs are untouched.
State is an ``OrderedDict`` keyed as in TFF (``learning_rate``, ...).

>>> import numpy as np
>>> class SignSGD(Optimizer):
...     def initialize(self, specs):
...         return collections.OrderedDict(learning_rate=0.1)
...     def next(self, state, weights, gradients):
...         return state, [w - state["learning_rate"] * np.sign(g) for w, g in zip(weights, gradients)]
>>> SignSGD().next(SignSGD().initialize(None), [np.zeros(2)], [np.array([3.0, -2.0])])[1]
[array([-0.1,  0.1])]
"""

from __future__ import annotations

import abc
import collections
import collections.abc
from typing import Any, Callable

import numpy as np
import optree

__all__ = ["Optimizer", "State", "LEARNING_RATE_KEY", "check_weights_gradients_match", "check_learning_rate", "map_leaves"]

State = collections.OrderedDict
LEARNING_RATE_KEY = "learning_rate"


class Optimizer(abc.ABC):
    """Base class of functional optimizers (TFF's ``tff.learning.optimizers.Optimizer``)."""

    _hparams_keys: tuple[str, ...] = (LEARNING_RATE_KEY,)

    @abc.abstractmethod
    def initialize(self, specs: Any) -> State[str, Any]:
        """Returns the initial state for weights of the given spec tree."""

    @abc.abstractmethod
    def next(self, state: State[str, Any], weights: Any, gradients: Any) -> tuple[State[str, Any], Any]:
        """Returns ``(new_state, new_weights)`` after one step along `gradients`."""

    def get_hparams(self, state: State[str, Any]) -> State[str, Any]:
        """Returns the hyperparameters held in `state`."""
        return collections.OrderedDict((k, state[k]) for k in self._hparams_keys if k in state)

    def set_hparams(self, state: State[str, Any], hparams: Any) -> State[str, Any]:
        """Returns a copy of `state` with the given hyperparameters replaced."""
        if not isinstance(hparams, collections.abc.Mapping):
            raise TypeError(f"hparams must be a mapping such as {dict(self.get_hparams(state))}, got {type(hparams).__name__}")
        unknown = sorted(set(hparams) - set(state))
        if unknown:
            raise KeyError(f"{type(self).__name__} state has no hyperparameter(s) {unknown}; it has {list(state)}")
        new_state = collections.OrderedDict(state)
        new_state.update(hparams)
        return new_state


def check_learning_rate(learning_rate: float) -> None:
    """Rejects a negative or non-finite learning rate."""
    if not np.isfinite(learning_rate) or learning_rate < 0:
        raise ValueError(f"learning_rate must be a finite number >= 0, got {learning_rate!r}")


def _flat_arrays(*trees: Any) -> bool:
    """Whether every tree is a list of arrays of one length: the per-batch case, mapped without a tree walk."""
    first = trees[0]
    return all(
        type(tree) is list and len(tree) == len(first) and all(type(leaf) is np.ndarray for leaf in tree) for tree in trees
    )


def map_leaves(fn: Callable[..., Any], *trees: Any) -> Any:
    """``optree.tree_map(fn, *trees)``, with a fast path for flat lists of arrays."""
    if _flat_arrays(*trees):
        return [fn(*leaves) for leaves in zip(*trees)]
    return optree.tree_map(fn, *trees)


def check_weights_gradients_match(weights: Any, gradients: Any) -> None:
    """Raises a clear error when weights and gradients differ in structure, shape or dtype."""
    if _flat_arrays(weights, gradients):
        w_leaves, g_leaves = weights, gradients
    else:
        w_leaves, w_def = optree.tree_flatten(weights)
        g_leaves, g_def = optree.tree_flatten(gradients)
        if w_def != g_def:
            raise ValueError(f"gradients are structured as {g_def}, but weights as {w_def}")
    for i, (w, g) in enumerate(zip(w_leaves, g_leaves)):
        if np.shape(w) != np.shape(g) or np.result_type(w) != np.result_type(g):
            raise ValueError(
                f"leaf {i}: gradient {np.result_type(g).name}{list(np.shape(g))} does not match "
                f"weight {np.result_type(w).name}{list(np.shape(w))}"
            )

