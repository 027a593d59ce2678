"""The array-backed pipeline behind `Dataset`: rows, element maps, batching, batch maps; and its iteration.

Iteration runs every map on blocks of rows when `array_plan.verdict` finds it
row-wise, and falls back to exact per-element (per-batch) calls otherwise.

>>> plan = Pipeline(columns=np.arange(5), num_rows=5, element_fns=(lambda x: x + 1,), batch_size=2)
>>> [b.tolist() for b in iterate(plan)]
[[1, 2], [3, 4], [5]]
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
import optree

from fl_blocks.simulation.datasets import row_ops
from fl_blocks.simulation.datasets.array_plan import ArrayPlan, call, gather, verdict

__all__ = ["Pipeline", "iterate", "array_plan", "read_only"]

_BLOCK_ROWS = 2048
Fns = tuple[Callable[..., Any], ...]


def read_only(leaf: Any) -> np.ndarray:
    """A read-only view of `leaf` as an array (the caller's array stays writable)."""
    view = np.asarray(leaf).view()
    view.flags.writeable = False
    return view


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """Source `columns`, the pass's `rows` (None: all in order), then maps and batching; `num_rows` rows per pass."""

    columns: Any
    num_rows: int
    rows: Optional[row_ops.Pass] = None
    element_fns: Fns = ()
    batch_size: Optional[int] = None
    drop_remainder: bool = False
    batch_fns: Fns = ()
    memo: dict[str, Any] = dataclasses.field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def source_rows(self) -> int:
        return int(np.shape(optree.tree_leaves(self.columns)[0])[0])

    @property
    def cardinality(self) -> int:
        if self.batch_size is None or self.num_rows == row_ops.INFINITE:
            return self.num_rows
        full, rest = divmod(self.num_rows, self.batch_size)
        return full + (1 if rest and not self.drop_remainder else 0)

    def row_pass(self) -> row_ops.Pass:
        return self.rows if self.rows is not None else row_ops.in_order(self.source_rows)


def _verify(plan: Pipeline) -> tuple[bool, bool]:
    """(element maps row-wise?, batch maps row-wise?) on up to 3 sample source rows; memoized per pipeline."""
    if "verdict" in plan.memo:
        return plan.memo["verdict"]  # type: ignore[no-any-return]
    n = plan.source_rows
    sample = np.unique([0, n // 2, n - 1]) if n > 1 else np.zeros(2 * n, np.int64)  # one row: sampled twice
    done: list[Callable[..., Any]] = []
    block: Any = gather(plan.columns, sample)
    result = (True, True)
    for kind, fns in (("element", plan.element_fns), ("batch", plan.batch_fns)):
        for fn in fns:
            if block is None:  # verdicts came from the cache: rebuild the sample block
                block = gather(plan.columns, sample)
                for earlier in done:
                    block = call(earlier, block)
            ok, block, _ = verdict(kind, fn, block, len(sample)) if len(sample) else (True, None, None)
            if not ok:
                result = (False, False) if kind == "element" else (True, False)
                plan.memo["verdict"] = result
                return result
            done.append(fn)
    plan.memo["verdict"] = result
    return result


def array_plan(plan: Pipeline) -> Optional[ArrayPlan]:
    """One pass of `plan` as an `ArrayPlan`, or None (infinite, empty with maps, or a map not row-wise)."""
    if "array_plan" in plan.memo:  # an in-order pipeline's one plan (its fields are frozen)
        return plan.memo["array_plan"]  # type: ignore[no-any-return]
    if plan.num_rows == row_ops.INFINITE or (plan.source_rows == 0 and plan.element_fns + plan.batch_fns):
        return None
    if _verify(plan) != (True, True):
        return None
    if plan.rows is None:  # every pass is the same: one ArrayPlan object for all of them
        plan.memo["array_plan"] = ArrayPlan(plan.columns, None, plan.element_fns, plan.batch_size, plan.drop_remainder, plan.batch_fns)
        return plan.memo["array_plan"]  # type: ignore[no-any-return]
    rows = np.concatenate([np.zeros(0, np.int64), *plan.rows()])
    return ArrayPlan(plan.columns, rows, plan.element_fns, plan.batch_size, plan.drop_remainder, plan.batch_fns)


def _blocks(plan: Pipeline) -> Iterator[Union[slice, np.ndarray]]:
    """Row selections of one pass, each a multiple of the batch size except the last."""
    unit = plan.batch_size or 1
    size = max(unit, _BLOCK_ROWS // unit * unit)
    if plan.rows is None:
        yield from (slice(s, min(s + size, plan.source_rows)) for s in range(0, plan.source_rows, size))
        return
    pending, count = [np.zeros(0, np.int64)], 0
    for chunk in plan.rows():
        pending.append(chunk)
        count += len(chunk)
        while count >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            pending, count = [joined[size:]], count - size
    if count:
        yield np.concatenate(pending)


def _length(rows: Union[slice, np.ndarray], total: int) -> int:
    return len(range(*rows.indices(total))) if isinstance(rows, slice) else len(rows)


def _vectorized(plan: Pipeline, batch_rowwise: bool) -> Iterator[Any]:
    size = plan.batch_size
    fns = plan.element_fns + (plan.batch_fns if batch_rowwise else ())
    for rows in _blocks(plan):
        n = _length(rows, plan.source_rows)
        if size is not None and plan.drop_remainder and n % size:
            n -= n % size
            rows = rows[:n] if isinstance(rows, np.ndarray) else slice(rows.start, rows.start + n)
        if n == 0:
            continue
        block = gather(plan.columns, rows)
        for fn in fns:
            block = call(fn, block)
        leaves, spec = optree.tree_flatten(block)
        if size is None:
            yield from (optree.tree_unflatten(spec, [leaf[i] for leaf in leaves]) for i in range(n))
        elif batch_rowwise:
            yield from (optree.tree_unflatten(spec, [leaf[s:s + size] for leaf in leaves]) for s in range(0, n, size))
        else:
            yield from (_batch_maps(plan, optree.tree_unflatten(spec, [leaf[s:s + size] for leaf in leaves]))
                        for s in range(0, n, size))


def _batch_maps(plan: Pipeline, batch: Any) -> Any:
    for fn in plan.batch_fns:
        batch = call(fn, batch)
    return batch


def _per_element(plan: Pipeline) -> Iterator[Any]:
    leaves, spec = optree.tree_flatten(plan.columns)

    def elements() -> Iterator[Any]:
        for chunk in plan.row_pass()():
            for i in chunk:
                element = optree.tree_unflatten(spec, [leaf[i] for leaf in leaves])
                for fn in plan.element_fns:
                    element = call(fn, element)
                yield element

    if plan.batch_size is None:
        yield from elements()
        return
    stream = elements()
    while group := list(itertools.islice(stream, plan.batch_size)):
        if len(group) == plan.batch_size or not plan.drop_remainder:
            yield _batch_maps(plan, optree.tree_map(lambda *xs: np.stack(xs), *group))


def iterate(plan: Pipeline) -> Iterator[Any]:
    """One pass over `plan`'s elements (or batches)."""
    elements_rowwise, batches_rowwise = _verify(plan)
    if elements_rowwise:
        return _vectorized(plan, batches_rowwise)
    return _per_element(plan)
