"""What a round computes from the data alone, kept for the next round: by-client chunks and their Gram matrices.

A group of clients is kept under the tuple of its clients' plan keys (see
`fl_blocks.execution.plans`), which exist only for read-only source arrays.
fl_blocks' loaders return read-only storage; for your own arrays, set
``array.flags.writeable = False`` before ``ClientData.from_arrays``. Maps are
assumed pure, as `ArrayPlan` assumes. The entry holds the objects the keys
name, so their ids stay unique while it lives.

Gram matrices are kept up to `GRAM_BYTES` in all, the chunk's float32 rows up
to `ROWS_BYTES` (beyond that they are rebuilt from the stored rows each round);
the least recently used entries go first. Entries (and remembered plans, see
`fl_blocks.execution.plans`) hold their datasets' arrays alive: `clear()`
empties the cache and lets them go.

>>> clear(); len(_ENTRIES)
0
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import numpy as np

from fl_blocks.execution.dual import by_client_rows, gram_of
from fl_blocks.execution.layout import Chunk, ClientSource, make_chunk
from fl_blocks.execution import plans
from fl_blocks.execution.plans import facts
from fl_blocks.models.softmax import SoftmaxRegression

__all__ = ["GRAM_BYTES", "ROWS_BYTES", "chunk_and_gram", "clear", "warm"]

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
_KEPT = {"gram": 0, "rows": 0}  # bytes held by _ENTRIES


def clear() -> None:
    """Forgets every kept chunk and Gram matrix, and the plans they were keyed by (freeing their data)."""
    _ENTRIES.clear()
    _KEPT.update(gram=0, rows=0)
    plans.forget()


def _group_key(model: SoftmaxRegression, group: Sequence[ClientSource]) -> tuple[Optional[tuple[Any, ...]], list[Any]]:
    references: list[Any] = []
    keys: list[Any] = [(model.input_dim, model.num_classes)]  # a hit skips make_chunk's checks against the model
    for source in group:
        if not len(source.sizes):  # a client without batches adds no rows
            keys.append(None)
            continue
        found = facts(source.plan) if source.plan is not None else None
        if found is None or found.key is None:
            return None, []
        keys.append(found.key)
        references.extend(found.references)
    return tuple(keys), references


def _store(key: tuple[Any, ...], references: list[Any], chunk: Chunk, gram: np.ndarray) -> None:
    if gram.nbytes > GRAM_BYTES:
        return
    rows_kept = _KEPT["rows"] + chunk.x.nbytes <= ROWS_BYTES
    if not rows_kept:  # keep labels and layout, not the float32 rows
        chunk = chunk._replace(x=np.empty((0,) + chunk.x.shape[1:], chunk.x.dtype))
    _ENTRIES[key] = _Entry(references, chunk, gram, rows_kept)
    _KEPT["gram"] += gram.nbytes
    _KEPT["rows"] += chunk.x.nbytes
    while _KEPT["gram"] > GRAM_BYTES:
        _, gone = _ENTRIES.popitem(last=False)
        _KEPT["gram"] -= gone.gram.nbytes
        _KEPT["rows"] -= gone.chunk.x.nbytes


def warm(model: SoftmaxRegression, groups: Sequence[list[ClientSource]]) -> None:
    """Computes and keeps every group that can be kept and is not yet (e.g. before forking helpers)."""
    for group in groups:
        group.sort(key=lambda s: -len(s.sizes))
        key, references = _group_key(model, group)
        if key is not None and key not in _ENTRIES:
            chunk = make_chunk(model, group, by_client=True)
            _store(key, references, chunk, gram_of(by_client_rows(chunk)))


def chunk_and_gram(model: SoftmaxRegression, group: list[ClientSource]) -> tuple[Chunk, np.ndarray]:
    """The group's by-client chunk and ``X X^T + 1``, from the cache when kept (and kept when it can be)."""
    group.sort(key=lambda s: -len(s.sizes))  # as make_chunk orders it
    key, references = _group_key(model, group)
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
