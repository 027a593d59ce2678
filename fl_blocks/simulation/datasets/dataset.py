"""`Dataset`: a small, re-iterable stand-in for ``tf.data.Dataset``.

Built from contiguous arrays with `from_tensor_slices`, so `batch` slices
arrays instead of looping over examples. `map` calls its function on every
element, unpacking tuple elements into arguments as tf.data does.

>>> import collections, numpy as np
>>> ds = Dataset.from_tensor_slices(collections.OrderedDict(pixels=np.zeros((5, 28, 28), np.float32), label=np.arange(5)))
>>> batches = ds.batch(2).map(lambda e: (e['pixels'].reshape(-1, 784), e['label'].reshape(-1, 1)))
>>> [x.shape for x, y in batches]
[(2, 784), (2, 784), (1, 784)]
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Iterator, Optional

import numpy as np
import optree

from fl_blocks.specs import leading_dim

__all__ = ["Dataset"]


def _rows(tensors: Any) -> int:
    try:
        return leading_dim(tensors)
    except ValueError as error:
        raise ValueError(f"from_tensor_slices: {error}") from None


class Dataset:
    """A re-iterable pipeline of elements; each ``iter`` starts from the beginning."""

    def __init__(self, make_iterator: Callable[[], Iterator[Any]], *, slices: Optional[Any] = None, batch_size: Optional[int] = None, drop_remainder: bool = False) -> None:
        self._make_iterator = make_iterator
        self._slices = slices  # the source arrays, while the pipeline is slicing them
        self._batch_size = batch_size
        self._drop_remainder = drop_remainder

    @classmethod
    def from_tensor_slices(cls, tensors: Any) -> "Dataset":
        """One element per row of `tensors` (a dict, tuple or array of equal-length arrays)."""
        tensors = optree.tree_map(np.asarray, tensors)
        num = _rows(tensors)
        return cls(lambda: (optree.tree_map(lambda a: a[i], tensors) for i in range(num)), slices=tensors)

    @classmethod
    def from_generator(cls, generator: Callable[[], Iterator[Any]]) -> "Dataset":
        """Elements of ``generator()``, called afresh on every iteration."""
        return cls(generator)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._make_iterator())

    @property
    def cardinality(self) -> Optional[int]:
        """Number of elements when known without iterating, else ``None``."""
        if self._slices is None:
            return None
        rows = _rows(self._slices)
        if self._batch_size is None:
            return rows
        full, rest = divmod(rows, self._batch_size)
        return full + (1 if rest and not self._drop_remainder else 0)

    def batch(self, batch_size: int, drop_remainder: bool = False) -> "Dataset":
        """Stacks consecutive elements into batches of `batch_size` (the last may be smaller)."""
        batch_size = operator.index(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self._slices is not None and self._batch_size is None:
            tensors = self._slices
            num = _rows(tensors)
            stop = num - num % batch_size if drop_remainder else num

            def sliced() -> Iterator[Any]:
                for start in range(0, stop, batch_size):
                    yield optree.tree_map(lambda a: a[start:start + batch_size], tensors)

            return Dataset(sliced, slices=tensors, batch_size=batch_size, drop_remainder=drop_remainder)

        def grouped() -> Iterator[Any]:
            group: list[Any] = []
            for element in self:
                group.append(element)
                if len(group) == batch_size:
                    yield optree.tree_map(lambda *xs: np.stack(xs), *group)
                    group = []
            if group and not drop_remainder:
                yield optree.tree_map(lambda *xs: np.stack(xs), *group)

        return Dataset(grouped)

    def map(self, map_func: Callable[..., Any]) -> "Dataset":
        """Applies `map_func` to every element (tuple elements are unpacked)."""

        def mapped() -> Iterator[Any]:
            for element in self:
                yield map_func(*element) if isinstance(element, tuple) else map_func(element)

        return Dataset(mapped)
