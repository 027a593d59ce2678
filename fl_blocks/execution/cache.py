"""What a round computes from the data alone, kept for the next round: by-client chunks and their Gram matrices.

A group of clients is kept under a key made from each client's `ArrayPlan`:
the identity of every source array, the pass's row order and batch sizes, and
its maps (one code, globals, defaults and closure values, as `same_function`
compares them). The entry holds references to those arrays and maps, so no
other object can take their ids while it lives.

Only plans whose source arrays are read-only all the way down (the array and
every base it views have ``flags.writeable`` False) are kept: NumPy cannot
change such data in place, so a key that matches means the same rows. fl_blocks'
loaders return read-only storage; for your own arrays, set
``array.flags.writeable = False`` before ``ClientData.from_arrays``. Maps are
assumed pure, as `ArrayPlan` assumes.

Gram matrices are kept up to `GRAM_BYTES` in all, the chunk's float32 rows up
to `ROWS_BYTES` (beyond that they are rebuilt from the stored rows each round);
the least recently used entries go first. `clear()` empties the cache.

>>> import numpy as np
>>> frozen = np.zeros(3); frozen.flags.writeable = False
>>> read_only_throughout(frozen[1:]), read_only_throughout(np.zeros(3)[1:])
(True, False)
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import optree

from fl_blocks.execution.dual import by_client_rows, gram_of
from fl_blocks.execution.layout import Chunk, ClientSource, make_chunk
from fl_blocks.models.softmax import SoftmaxRegression

__all__ = ["GRAM_BYTES", "ROWS_BYTES", "chunk_and_gram", "clear", "read_only_throughout", "warm"]

#: Bytes of Gram matrices kept across rounds (3,400 EMNIST clients need about 170 MB).
GRAM_BYTES = 384 << 20
#: Bytes of materialized float32 rows kept across rounds.
ROWS_BYTES = 64 << 20


class _Entry(NamedTuple):
    references: list[Any]
    chunk: Chunk
    gram: np.ndarray
    rows_kept: bool


_ENTRIES: "collections.OrderedDict[tuple[Any, ...], _Entry]" = collections.OrderedDict()


def clear() -> None:
    """Forgets every kept chunk and Gram matrix."""
    _ENTRIES.clear()


def read_only_throughout(array: Any) -> bool:
    """Whether `array` and every array it views are read-only (its bytes cannot change through NumPy)."""
    while isinstance(array, np.ndarray):
        if array.flags.writeable:
            return False
        array = array.base
    return array is None or isinstance(array, bytes)


def _function_key(fn: Callable[..., Any]) -> Optional[tuple[Any, ...]]:
    code = getattr(fn, "__code__", None)
    if code is None:
        return ("object", id(fn))
    try:
        cells = tuple(id(cell.cell_contents) for cell in fn.__closure__ or ())
    except ValueError:  # an empty closure cell
        return None
    keywords = tuple(sorted((k, id(v)) for k, v in (getattr(fn, "__kwdefaults__", None) or {}).items()))
    return code, id(fn.__globals__), tuple(map(id, getattr(fn, "__defaults__", None) or ())), cells, keywords


def _client_key(source: ClientSource, references: list[Any]) -> Optional[tuple[Any, ...]]:
    plan = source.plan
    if plan is None:
        return None
    leaves, structure = optree.tree_flatten(plan.columns)
    fns = plan.element_fns + plan.batch_fns
    functions = [_function_key(fn) for fn in fns]
    if not all(read_only_throughout(leaf) for leaf in leaves) or None in functions:
        return None
    references.extend(leaves + list(fns))
    rows = None if plan.rows is None else plan.rows.tobytes()
    return tuple(id(leaf) for leaf in leaves), structure, rows, tuple(functions), plan.drop_remainder, source.sizes.tobytes()


def _group_key(group: Sequence[ClientSource]) -> tuple[Optional[tuple[Any, ...]], list[Any]]:
    references: list[Any] = []
    keys = []
    for source in group:
        key = _client_key(source, references)
        if key is None:
            return None, []
        keys.append(key)
    return tuple(keys), references


def _store(key: tuple[Any, ...], references: list[Any], chunk: Chunk, gram: np.ndarray) -> None:
    rows_kept = chunk.x.nbytes + sum(e.chunk.x.nbytes for e in _ENTRIES.values() if e.rows_kept) <= ROWS_BYTES
    if gram.nbytes > GRAM_BYTES:
        return
    _ENTRIES[key] = _Entry(references, chunk if rows_kept else chunk._replace(x=chunk.x[:0]), gram, rows_kept)
    while sum(e.gram.nbytes for e in _ENTRIES.values()) > GRAM_BYTES:
        _ENTRIES.popitem(last=False)


def warm(model: SoftmaxRegression, groups: Sequence[list[ClientSource]]) -> None:
    """Computes and keeps every group that can be kept and is not yet (e.g. before forking helpers)."""
    for group in groups:
        group.sort(key=lambda s: -len(s.sizes))
        key, references = _group_key(group)
        if key is not None and key not in _ENTRIES:
            chunk = make_chunk(model, group, by_client=True)
            _store(key, references, chunk, gram_of(by_client_rows(chunk)))


def chunk_and_gram(model: SoftmaxRegression, group: list[ClientSource]) -> tuple[Chunk, np.ndarray]:
    """The group's by-client chunk and ``X X^T + 1``, from the cache when kept (and kept when it can be)."""
    group.sort(key=lambda s: -len(s.sizes))  # as make_chunk orders it
    key, references = _group_key(group)
    entry = _ENTRIES.get(key) if key is not None else None
    if entry is None:
        chunk = make_chunk(model, group, by_client=True)
        gram = gram_of(by_client_rows(chunk))
        if key is not None:
            _store(key, references, chunk, gram)
        return chunk, gram
    _ENTRIES.move_to_end(key)  # type: ignore[arg-type]
    clients = np.array([s.client for s in group], np.int64)  # this round's positions of the same datasets
    chunk = entry.chunk if entry.rows_kept else make_chunk(model, group, by_client=True)
    return chunk._replace(clients=clients), entry.gram
