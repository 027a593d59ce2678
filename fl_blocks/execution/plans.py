"""What a round needs to know about a client's `ArrayPlan`, worked out once per plan object.

A dataset whose passes are all alike returns one `ArrayPlan` object every round
(see `Dataset.array_plan`), so its batch sizes and its cache key (see
`fl_blocks.execution.cache`) are remembered by the plan's identity. Entries hold
the plan, so its id stays unique while they live; the least recently used go
first beyond `MAX_PLANS`.

A plan's cache key is made of the identity of every source array, its batch
sizes and its maps (one code, globals dict, bound object, defaults and closure
values, as `same_function` compares them: maps are assumed pure, so a map that
reads a module global reassigned between rounds is not told apart). It exists
only for passes over all rows in order (no shuffle, take or skip) whose source
arrays are read-only all the way down, and whose maps capture no writable
array: NumPy cannot change such data in place. An array that owns its data
can be made writable again; that is checked every round and retires the keys
made before, but an array changed
and frozen again between two rounds is not noticed: call
`fl_blocks.execution.cache.clear()` after changing data in place.

>>> import numpy as np
>>> frozen = np.zeros(3); frozen.flags.writeable = False
>>> read_only_throughout(frozen[1:]), read_only_throughout(np.zeros(3)[1:])
(True, False)
"""

from __future__ import annotations

import collections
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import optree

from fl_blocks.execution.functions import function_parts
from fl_blocks.simulation.datasets.array_plan import ArrayPlan

__all__ = ["PlanFacts", "facts", "forget", "maps_part", "read_only_throughout", "MAX_PLANS"]

#: Plans remembered at once (a round of 3,400 clients needs 3,400).
MAX_PLANS = 1 << 16


class PlanFacts(NamedTuple):
    """A plan's batch sizes (and the widest), and, when its data is read-only, its cache key and the objects the key names."""

    sizes: np.ndarray
    widest: int
    key: Optional[tuple[Any, ...]]
    references: tuple[Any, ...]
    arrays: tuple[np.ndarray, ...] = ()


class _Key(tuple):  # type: ignore[type-arg]
    """A plan's cache key: a tuple whose hash is worked out once (a round looks each key up several times)."""

    _hash: int

    def __new__(cls, parts: tuple[Any, ...]) -> "_Key":
        key = super().__new__(cls, parts)
        key._hash = tuple.__hash__(key)
        return key

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:  # unpickled, its hash is worked out again
        return _Key, (tuple(self),)


_FACTS: "collections.OrderedDict[int, tuple[ArrayPlan, PlanFacts]]" = collections.OrderedDict()
_EPOCHS: dict[tuple[int, ...], int] = {}  # source arrays (by id) found writeable again after being keyed


def forget() -> None:
    """Forgets every remembered plan (and so the data it holds)."""
    _FACTS.clear()
    _EPOCHS.clear()


def read_only_throughout(array: Any) -> bool:
    """Whether `array` and every array it views are read-only (its bytes cannot change through NumPy)."""
    while isinstance(array, np.ndarray):
        if array.flags.writeable:
            return False
        array = array.base
    return array is None or isinstance(array, bytes)


def _value_key(value: Any) -> Optional[int]:
    """A closure or default value's id; None for an array that may change in place (no cache then)."""
    return None if isinstance(value, np.ndarray) and not read_only_throughout(value) else id(value)


def _function_key(fn: Callable[..., Any]) -> Optional[tuple[Any, ...]]:
    """`function_parts` by identity (what `same_function` compares); None where it may not be kept."""
    parts = function_parts(fn)
    if parts is None:  # a callable object without code is its own key; an empty closure cell is not kept
        return ("object", id(fn)) if getattr(getattr(fn, "__func__", fn), "__code__", None) is None else None
    code, namespace, owner, keywords, values = parts
    ids = [_value_key(v) for v in values]
    if None in ids:
        return None
    return code, id(namespace), id(owner), keywords, tuple(ids)


def maps_part(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """The part of a plan key that names its column structure and maps: equal for plans whose rows one map call serves."""
    return key[2:4]


def _sizes(plan: ArrayPlan) -> np.ndarray:
    assert plan.batch_size is not None
    full, rest = divmod(plan.num_rows, plan.batch_size)
    sizes = np.full(full + (1 if rest and not plan.drop_remainder else 0), plan.batch_size, np.int64)
    if rest and not plan.drop_remainder:
        sizes[-1] = rest
    return sizes


def _work_out(plan: ArrayPlan) -> PlanFacts:
    sizes = _sizes(plan)
    widest = int(sizes.max(initial=0))
    leaves, structure = optree.tree_flatten(plan.columns)
    fns = plan.element_fns + plan.batch_fns
    functions = tuple(_function_key(fn) for fn in fns)
    if plan.rows is not None or not all(read_only_throughout(leaf) for leaf in leaves) or None in functions:
        return PlanFacts(sizes, widest, None, ())  # a reordered pass (shuffle, take, skip) may differ next round
    ids = tuple(id(leaf) for leaf in leaves)
    key = _Key((ids, _EPOCHS.get(ids, 0), structure, functions, plan.drop_remainder, sizes.tobytes()))  # see `maps_part`
    return PlanFacts(sizes, widest, key, (plan, *leaves, *fns), tuple(leaves))


def facts(plan: ArrayPlan) -> PlanFacts:
    """The batch sizes and cache key of a batched `plan` (its arrays' read-only flags checked every call)."""
    found = _FACTS.get(id(plan))
    if found is not None and found[0] is plan:
        if all(read_only_throughout(a) for a in found[1].arrays):
            _FACTS.move_to_end(id(plan))
            return found[1]
        del _FACTS[id(plan)]  # made writeable again: what was kept under its key may be stale
        ids = tuple(id(a) for a in found[1].arrays)
        _EPOCHS[ids] = _EPOCHS.get(ids, 0) + 1
    worked_out = _work_out(plan)
    if plan.rows is None and worked_out.key is not None:  # an in-order plan comes back each round
        _FACTS[id(plan)] = (plan, worked_out)
        if len(_FACTS) > MAX_PLANS:
            _FACTS.popitem(last=False)
    return worked_out
