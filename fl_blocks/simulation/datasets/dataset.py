"""`Dataset`: a small, re-iterable stand-in for ``tf.data.Dataset``.

Built from contiguous arrays with `from_tensor_slices`, a pipeline of
shuffle/take/skip/repeat, element `map`s, `batch` and batch `map`s stays
array-backed: rows are index arrays, and maps verified row-wise run on whole
blocks of rows (see `array_plan`). Anything else falls back to exact per-element
iteration. `map` unpacks tuple elements into arguments as tf.data does.
`shuffle` has tf.data's buffer semantics and is deterministic for a seed, but
its order cannot equal TensorFlow's RNG.

>>> import collections, numpy as np
>>> ds = Dataset.from_tensor_slices(collections.OrderedDict(pixels=np.zeros((5, 28, 28), np.float32), label=np.arange(5)))
>>> batches = ds.batch(2).map(lambda e: (e['pixels'].reshape(-1, 784), e['label'].reshape(-1, 1)))
>>> [x.shape for x, y in batches], batches.array_plan().batch_size
([(2, 784), (2, 784), (1, 784)], 2)
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from typing import Any, Callable, Iterator, Optional

import numpy as np
import optree

from fl_blocks.simulation.datasets import pipeline, row_ops
from fl_blocks.simulation.datasets.array_plan import ArrayPlan, call
from fl_blocks.specs import leading_dim

__all__ = ["Dataset", "INFINITE_CARDINALITY"]

INFINITE_CARDINALITY = row_ops.INFINITE


def _stack(group: list[Any]) -> Any:
    return optree.tree_map(lambda *xs: np.stack(xs), *group)


def _times(count: Optional[int], times: int) -> Optional[int]:
    if count is None or count == INFINITE_CARDINALITY:
        return count
    return count * times


class Dataset:
    """A re-iterable pipeline of elements; each ``iter`` starts from the beginning."""

    def __init__(self, make_iterator: Callable[[], Iterator[Any]], *, cardinality: Optional[int] = None,
                 _pipeline: Optional[pipeline.Pipeline] = None) -> None:
        self._make_iterator = make_iterator
        self._cardinality = cardinality
        self._pipeline = _pipeline

    @classmethod
    def from_tensor_slices(cls, tensors: Any) -> "Dataset":
        """One element per row of `tensors` (a dict, tuple or array of equal-length arrays); no copy."""
        tensors = optree.tree_map(pipeline.read_only, tensors)
        try:
            num = leading_dim(tensors)
        except ValueError as error:
            raise ValueError(f"from_tensor_slices: {error}") from None
        return cls._of(pipeline.Pipeline(columns=tensors, num_rows=num))

    @classmethod
    def from_generator(cls, generator: Callable[[], Iterator[Any]]) -> "Dataset":
        """Elements of ``generator()``, called afresh on every iteration."""
        return cls(generator)

    @classmethod
    def _of(cls, plan: pipeline.Pipeline) -> "Dataset":
        return cls(lambda: pipeline.iterate(plan), cardinality=plan.cardinality, _pipeline=plan)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._make_iterator())

    def as_numpy_iterator(self) -> Iterator[Any]:
        """An iterator over the elements (they are NumPy already)."""
        return iter(self)

    @property
    def cardinality(self) -> Optional[int]:
        """Number of elements; `INFINITE_CARDINALITY` (-1) if infinite, ``None`` if unknown without iterating."""
        return self._cardinality

    def array_plan(self) -> Optional[ArrayPlan]:
        """The next pass as an `ArrayPlan`, or None if not array-backed, infinite or a map is not row-wise.

        Each call is one iteration: a reshuffling `shuffle` draws its next order.
        """
        return None if self._pipeline is None else pipeline.array_plan(self._pipeline)

    def _rows_op(self, make: Callable[[row_ops.Pass], row_ops.Pass], count: Optional[int],
                 generic: Callable[[], Iterator[Any]]) -> "Dataset":
        plan = self._pipeline
        if plan is None or plan.batch_size is not None or count is None:
            return Dataset(generic, cardinality=count)
        return Dataset._of(dataclasses.replace(plan, rows=make(plan.row_pass()), num_rows=count))

    @staticmethod
    def _on_rows_of_batches(plan: pipeline.Pipeline, op: str, count: int) -> "Dataset":
        assert plan.batch_size is not None
        inner = dataclasses.replace(plan, batch_size=None, batch_fns=(), drop_remainder=False)
        rows = getattr(Dataset._of(inner), op)(count * plan.batch_size)._pipeline
        return Dataset._of(dataclasses.replace(plan, rows=rows.rows, num_rows=rows.num_rows))

    def take(self, count: int) -> "Dataset":
        """The first `count` elements (all if `count` is -1)."""
        count = operator.index(count)
        if count < 0:
            return self
        size = self._cardinality
        new = count if size is None or size == INFINITE_CARDINALITY else min(count, size)
        plan = self._pipeline
        if plan is not None and plan.batch_size is not None:  # batch(b).take(n) == take(n * b).batch(b)
            return self._on_rows_of_batches(plan, "take", count)
        return self._rows_op(lambda p: row_ops.take(p, count), new if plan is not None else None,
                             lambda: itertools.islice(self, count))

    def skip(self, count: int) -> "Dataset":
        """All but the first `count` elements (none if `count` is -1)."""
        count = operator.index(count)
        size = self._cardinality
        if count < 0:
            return self.take(0)
        new = size if size is None or size == INFINITE_CARDINALITY else max(size - count, 0)
        plan = self._pipeline
        if plan is not None and plan.batch_size is not None:  # batch(b).skip(n) == skip(n * b).batch(b)
            return self._on_rows_of_batches(plan, "skip", count)
        return self._rows_op(lambda p: row_ops.skip(p, count), new if plan is not None else None,
                             lambda: itertools.islice(self, count, None))

    def repeat(self, count: Optional[int] = None) -> "Dataset":
        """`count` passes back to back (forever if None or -1); each pass re-iterates (and reshuffles)."""
        count = None if count is None else operator.index(count)
        forever = count is None or count < 0
        size = self._cardinality
        new = (INFINITE_CARDINALITY if size != 0 else 0) if forever and size is not None else _times(size, count or 0)

        def generic() -> Iterator[Any]:
            for _ in itertools.count() if forever else range(count or 0):
                empty = True
                for element in self:
                    empty = False
                    yield element
                if empty:
                    return

        plan = self._pipeline
        return self._rows_op(lambda p: row_ops.repeat(p, count), new if plan is not None else None, generic)

    def shuffle(self, buffer_size: int, seed: Optional[int] = None, reshuffle_each_iteration: bool = True) -> "Dataset":
        """tf.data's buffer shuffle (buffer 1: no shuffle; buffer >= size: a uniform permutation)."""
        buffer_size = operator.index(buffer_size)
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        size = self._cardinality
        known = -1 if size is None else size
        plan = self._pipeline
        if plan is not None and plan.batch_size is None:
            return Dataset._of(dataclasses.replace(plan, rows=row_ops.shuffle(
                plan.row_pass(), buffer_size, seed, reshuffle_each_iteration, known)))
        new_rng = row_ops.rng_factory(seed, reshuffle_each_iteration)
        return Dataset(lambda: row_ops.buffer_shuffle(self, buffer_size, new_rng()), cardinality=size)

    def batch(self, batch_size: int, drop_remainder: bool = False) -> "Dataset":
        """Stacks consecutive elements into batches of `batch_size` (the last may be smaller)."""
        batch_size = operator.index(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        size = self._cardinality
        if size is not None and size != INFINITE_CARDINALITY:
            full, rest = divmod(size, batch_size)
            size = full + (1 if rest and not drop_remainder else 0)
        plan = self._pipeline
        if plan is not None and plan.batch_size is None:
            return Dataset._of(dataclasses.replace(plan, batch_size=batch_size, drop_remainder=drop_remainder))

        def grouped() -> Iterator[Any]:
            elements = iter(self)
            while group := list(itertools.islice(elements, batch_size)):
                if len(group) == batch_size or not drop_remainder:
                    yield _stack(group)

        return Dataset(grouped, cardinality=size)

    def map(self, map_func: Callable[..., Any]) -> "Dataset":
        """Applies `map_func` to every element (tuple elements are unpacked)."""
        plan = self._pipeline
        if plan is not None:
            if plan.batch_size is None:
                return Dataset._of(dataclasses.replace(plan, element_fns=plan.element_fns + (map_func,)))
            return Dataset._of(dataclasses.replace(plan, batch_fns=plan.batch_fns + (map_func,)))
        return Dataset(lambda: (call(map_func, element) for element in self), cardinality=self._cardinality)
