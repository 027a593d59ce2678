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

__all__ = [
    "Optimizer",
    "State",
    "LEARNING_RATE_KEY",
    "check_weights_gradients_match",
    "check_weights_match",
    "check_learning_rate",
    "check_hparam",
    "map_leaves",
    "map_leaves_n",
]

State = collections.OrderedDict
LEARNING_RATE_KEY = "learning_rate"
# TFF's ranges, the same for every optimizer that has the hyperparameter; the others are nonnegative.
_UNIT_INTERVAL_HPARAMS = frozenset({"beta_1", "beta_2", "decay", "momentum"})


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
        """Returns a copy of `state` with the given hyperparameters replaced (checked as the builder checks them).

        Only keys that `get_hparams` returns can be set; other state (``step``,
        ``accumulator``, ...) belongs to the optimizer.
        """
        if not isinstance(hparams, collections.abc.Mapping):
            raise TypeError(f"hparams must be a mapping such as {dict(self.get_hparams(state))}, got {type(hparams).__name__}")
        allowed = list(self.get_hparams(state))
        unknown = [k for k in hparams if k not in allowed]
        if unknown:
            raise KeyError(
                f"{type(self).__name__} state has no hyperparameter(s) {unknown}; its hyperparameters are {allowed} "
                f"(state keys {list(state)}: only hyperparameters can be set)"
            )
        owner = type(self).__name__.lstrip("_")
        for key, value in hparams.items():
            check_hparam(owner, key, value)
        new_state = collections.OrderedDict(state)
        new_state.update(hparams)
        return new_state

def check_learning_rate(learning_rate: float) -> None:
    """Rejects a negative or non-finite learning rate."""
    if not np.isfinite(learning_rate) or learning_rate < 0:
        raise ValueError(f"learning_rate must be a finite number >= 0, got {learning_rate!r}")


def check_hparam(owner: str, name: str, value: Any) -> float:
    """Returns `value` as a float after TFF's range check: [0, 1] for betas, decay and momentum, else finite >= 0."""
    if np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "fiu":
        raise TypeError(f"{owner} `{name}` must be a real number, found {value!r}")
    number = float(value)
    if name in _UNIT_INTERVAL_HPARAMS:
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"{owner} `{name}` must be in the range [0.0, 1.0], found {value!r}.")
    elif not 0.0 <= number < np.inf:
        raise ValueError(f"{owner} `{name}` must be nonnegative and finite, found {value!r}.")
    return number


def _flat_arrays(*trees: Any) -> bool:
    """Whether every tree is a list of arrays of one length: the per-batch case, mapped without a tree walk."""
    size = len(trees[0]) if type(trees[0]) is list else -1
    for tree in trees:
        if type(tree) is not list or len(tree) != size:
            return False
        for leaf in tree:
            if type(leaf) is not np.ndarray:
                return False
    return True


def _flat_and_matching(weights: Any, other: Any) -> bool:
    """Whether both are equally long lists of arrays with pairwise equal shapes and dtypes (the per-batch case)."""
    if type(weights) is not list or type(other) is not list or len(weights) != len(other):
        return False
    for w, o in zip(weights, other):
        if type(w) is not np.ndarray or type(o) is not np.ndarray or w.shape != o.shape or w.dtype != o.dtype:
            return False
    return True


def map_leaves(fn: Callable[..., Any], *trees: Any) -> Any:
    """``optree.tree_map(fn, *trees)``, with a fast path for flat lists of arrays."""
    if _flat_arrays(*trees):
        return [fn(*leaves) for leaves in zip(*trees)]
    return optree.tree_map(fn, *trees)


def map_leaves_n(fn: Callable[..., tuple[Any, ...]], num_outputs: int, *trees: Any) -> tuple[Any, ...]:
    """Maps `fn` (returning `num_outputs` arrays) over matching leaves; returns `num_outputs` trees shaped as `trees[0]`."""
    if _flat_arrays(*trees):
        outputs = [fn(*leaves) for leaves in zip(*trees)]
        return tuple([out[i] for out in outputs] for i in range(num_outputs))
    leaves, treedef = optree.tree_flatten(trees[0])
    outputs = [fn(*leaves) for leaves in zip(leaves, *(treedef.flatten_up_to(tree) for tree in trees[1:]))]
    return tuple(treedef.unflatten([out[i] for out in outputs]) for i in range(num_outputs))


def check_weights_gradients_match(weights: Any, gradients: Any) -> None:
    """Raises a clear error when weights and gradients differ in structure, shape or dtype."""
    check_weights_match(weights, gradients, "gradient")


def check_weights_match(weights: Any, other: Any, name: str) -> None:
    """Raises a clear error when `other` (gradients, or a state tree such as the accumulator) does not fit `weights`."""
    if _flat_and_matching(weights, other):
        return
    advice = "" if name == "gradient" else "; was the optimizer initialized with specs of other weights?"
    if _flat_arrays(weights, other):
        w_leaves, o_leaves = weights, other
    else:
        w_leaves, w_def = optree.tree_flatten(weights)
        o_leaves, o_def = optree.tree_flatten(other)
        if w_def != o_def:
            raise ValueError(f"{name}s are structured as {o_def}, but weights as {w_def}{advice}")
    for i, (w, o) in enumerate(zip(w_leaves, o_leaves)):
        if np.shape(w) != np.shape(o) or np.result_type(w) != np.result_type(o):
            raise ValueError(
                f"leaf {i}: {name} {np.result_type(o).name}{list(np.shape(o))} does not match "
                f"weight {np.result_type(w).name}{list(np.shape(w))}{advice}"
            )
