"""`ArrayPlan`: an array-backed `Dataset` pass as arrays plus row-wise functions, for vectorized executors.

A map function is *row-wise* when calling it once on a block of rows gives, row for
row, bit for bit, what calling it on each element (element maps) or on each batch
(batch maps) gives. That is checked once on a few sample rows and the verdict is
cached per (function, input structure, dtypes and trailing shapes). The check
assumes pure functions and can only sample the data, so a function that is row-wise
on the sampled rows but not elsewhere would be misjudged.

>>> import numpy as np
>>> plan = ArrayPlan(columns=(np.arange(5),), rows=np.array([4, 0, 2]), element_fns=(lambda x: x * 10,),
...                  batch_size=2, drop_remainder=False, batch_fns=())
>>> plan.materialize(1).tolist()
[0, 20]
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import optree

__all__ = ["ArrayPlan", "call", "gather", "signature", "verdict"]

Signature = tuple[Any, tuple[tuple[str, tuple[int, ...]], ...]]
_CACHE: "weakref.WeakKeyDictionary[Callable[..., Any], dict[tuple[str, Signature], Optional[Signature]]]"
_CACHE = weakref.WeakKeyDictionary()


def call(fn: Callable[..., Any], value: Any) -> Any:
    """``fn(*value)`` for a tuple (tf.data unpacks tuple elements), else ``fn(value)``."""
    return fn(*value) if isinstance(value, tuple) else fn(value)


def gather(columns: Any, rows: Any) -> Any:
    """The tree `columns` restricted to `rows` (an int array or a slice) along the leading axis."""
    leaves, spec = optree.tree_flatten(columns)
    return optree.tree_unflatten(spec, [leaf[rows] for leaf in leaves])


def signature(block: Any) -> Signature:
    """Tree structure plus (dtype, trailing shape) of each leaf of a block of rows."""
    leaves, spec = optree.tree_flatten(block)
    return spec, tuple((np.asarray(leaf).dtype.str, np.shape(leaf)[1:]) for leaf in leaves)


class ArrayPlan(NamedTuple):
    """One pass of an array-backed dataset: ``batches = materialize(...)`` sliced by `batch_size`.

    `columns` are the source arrays in stored dtype; `rows` the pass's row indices
    into them (None: all rows in order); `element_fns` then `batch_fns` are verified
    row-wise maps. `materialize(start, stop)` applies them, at once, to plan rows
    ``[start:stop]``; slicing its result in steps of `batch_size` gives the batches
    (dropping a short last batch when `drop_remainder`).
    """

    columns: Any
    rows: Optional[np.ndarray]
    element_fns: tuple[Callable[..., Any], ...]
    batch_size: Optional[int]
    drop_remainder: bool
    batch_fns: tuple[Callable[..., Any], ...]

    @property
    def num_rows(self) -> int:
        """Rows in this pass (before batching)."""
        if self.rows is not None:
            return len(self.rows)
        return int(np.shape(optree.tree_leaves(self.columns)[0])[0])

    def materialize(self, start: int = 0, stop: Optional[int] = None) -> Any:
        """The tree of arrays for plan rows ``[start:stop]`` after all element and batch maps."""
        rows = slice(start, stop) if self.rows is None else self.rows[start:stop]
        block = gather(self.columns, rows)
        for fn in self.element_fns + self.batch_fns:
            block = call(fn, block)
        return block


def _same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return bool(a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())


def _rowwise_output(out: Any, rows: int) -> Optional[tuple[list[Any], Any]]:
    leaves, spec = optree.tree_flatten(out)
    if not leaves or not all(isinstance(leaf, np.ndarray) and leaf.ndim and len(leaf) == rows for leaf in leaves):
        return None
    return leaves, spec


def _check(kind: str, fn: Callable[..., Any], block: Any, rows: int) -> Any:
    """fn(block) if it matches per-row (kind "element") or per-part (kind "batch") calls, else None."""
    try:
        out = call(fn, block)
        checked = _rowwise_output(out, rows)
        if checked is None:
            return None
        leaves, spec = checked
        parts = [[i] for i in range(rows)] if kind == "element" else [list(range(rows - 1)), [rows - 1]]
        for part in parts:
            piece = gather(block, part[0] if kind == "element" else np.asarray(part))
            got_leaves, got_spec = optree.tree_flatten(call(fn, piece))
            want = [leaf[part[0]] if kind == "element" else leaf[part] for leaf in leaves]
            if got_spec != spec or not all(_same(g, w) for g, w in zip(got_leaves, want)):
                return None
        return out
    except Exception:  # a function that fails on a block is simply not row-wise
        return None


def _distinct(block: Any, rows: int) -> bool:
    leaves = optree.tree_leaves(block)
    return rows >= 2 and any(not _same(leaf[0], leaf[i]) for leaf in leaves for i in range(1, rows))


def verdict(kind: str, fn: Callable[..., Any], block: Any, rows: int) -> tuple[bool, Any, Optional[Signature]]:
    """(row-wise?, fn(block) or None when taken from the cache, output signature) for a sample block."""
    key = (kind, signature(block))
    try:
        cached = _CACHE.get(fn, {})
    except TypeError:  # not weak-referenceable: no cache
        cached = {}
    if key in cached:
        out_sig = cached[key]
        return out_sig is not None, None, out_sig
    out = _check(kind, fn, block, rows) if rows >= (1 if kind == "element" else 2) else None
    out_sig = None if out is None else signature(out)
    if _distinct(block, rows):
        try:
            _CACHE.setdefault(fn, {})[key] = out_sig
        except TypeError:
            pass
    return out is not None, out, out_sig
