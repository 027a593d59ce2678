"""Light value specs: the shape, dtype and nested structure of a value.

A `TensorSpec` describes one array leaf; a spec tree mirrors a value's nested
structure (lists, tuples, NamedTuples, dicts) with `TensorSpec` leaves. Blocks
carry spec trees so `compose_learning_process` can check that they fit before
anything runs, and name the offending block and leaf when they don't.

>>> import numpy as np
>>> spec_of([np.zeros((784, 10), np.float32), np.zeros(10, np.float32)])
[TensorSpec(shape=(784, 10), dtype='float32'), TensorSpec(shape=(10,), dtype='float32')]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optree

__all__ = ["TensorSpec", "SpecMismatchError", "spec_of", "zeros_like_spec", "check_same_spec", "leaf_paths", "leading_dim"]


_DTYPE_NAMES: dict[Any, str] = {}  # what np.dtype(...).name gives, by what it was given (a dtype's .name is slow)


def _dtype_name(dtype: Any) -> str:
    try:
        return _DTYPE_NAMES[dtype]
    except (KeyError, TypeError):  # not seen yet, or not hashable
        name: str = np.dtype(dtype).name
    if isinstance(dtype, (str, np.dtype)) and len(_DTYPE_NAMES) < 1024:
        _DTYPE_NAMES[dtype] = name
    return name


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one array leaf, e.g. ``float32[784,10]``."""

    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", _dtype_name(self.dtype))

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"

    @classmethod
    def from_array(cls, value: Any) -> "TensorSpec":
        """The spec of an array (a `TensorSpec` is returned as it is)."""
        if isinstance(value, TensorSpec):
            return value
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"cannot make a TensorSpec of a {type(value).__name__}; pass arrays or TensorSpecs")
        return cls(array.shape, array.dtype.str)


class SpecMismatchError(TypeError):
    """Two blocks (or a block and a value) disagree on a value's spec."""


def spec_of(tree: Any) -> Any:
    """Returns the spec tree of a nested value of arrays (or of specs)."""
    return optree.tree_map(TensorSpec.from_array, tree)


def zeros_like_spec(spec_tree: Any) -> Any:
    """Returns a tree of new zero arrays with the given specs."""
    return optree.tree_map(lambda s: np.zeros(s.shape, s.dtype), spec_tree)


def leading_dim(tree: Any) -> int:
    """The size of the leading axis shared by every leaf; raises `ValueError` otherwise."""
    leaves = optree.tree_leaves(tree)
    if not leaves:
        raise ValueError("need at least one array leaf")
    shapes = [leaf.shape if isinstance(leaf, np.ndarray) else np.shape(leaf) for leaf in leaves]
    sizes = {shape[0] if shape else -1 for shape in shapes}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"every leaf needs the same leading dimension, got sizes {sorted(sizes)}")
    return int(sizes.pop())


def leaf_paths(tree: Any) -> list[str]:
    """Readable paths of a tree's leaves, e.g. ``trainable[0]``."""
    accessors, _, _ = optree.tree_flatten_with_accessor(tree)
    return [a.codify("").lstrip(".") or "<root>" for a in accessors]


def _join(prefix: str, path: str) -> str:
    if path == "<root>":
        return prefix or path
    return prefix + path if path.startswith("[") or not prefix else f"{prefix}.{path}"


def check_same_spec(expected: Any, actual: Any, *, consumer: str, producer: str, prefix: str = "") -> None:
    """Raises `SpecMismatchError` naming the first leaf where two spec trees differ.

    `consumer` names the block that expects `expected`; `producer` the block
    (or value) that gives `actual`; `prefix` is prepended to leaf paths.
    """
    expected_leaves, exp_struct = optree.tree_flatten(spec_of(expected))
    actual_leaves, act_struct = optree.tree_flatten(spec_of(actual))
    if exp_struct != act_struct:
        raise SpecMismatchError(
            f"{consumer} expects a value structured as {exp_struct}, "
            f"{producer} produces {act_struct}. Build both from the same model weights spec "
            "(an update spec is its .trainable part)."
        )
    if expected_leaves == actual_leaves:
        return
    paths = [_join(prefix, p) for p in leaf_paths(spec_of(expected))]
    for path, exp, act in zip(paths, expected_leaves, actual_leaves):
        if exp != act:
            raise SpecMismatchError(
                f"{consumer} expects {exp} at {path}, {producer} produces {act}."
            )
