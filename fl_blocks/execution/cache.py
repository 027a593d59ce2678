"""What a round computes from the data alone, kept for later rounds: clients' Gram matrices and chunks' rows.

Plain client SGD trains in dual form (`fl_blocks.execution.dual`) from each
client's Gram matrix ``X X^T + 1``, which depends only on its data. Computing
it costs more than a round of stepping the weights, so it pays only for data
that comes back: a group of clients most of whom are met for the first time
is trained by stepping (`chunk_and_gram` returns None); once at least half
are known (seen in an earlier round, or kept), the missing Gram matrices are
computed and kept, and a client's is reused in whatever group it lands in.

Clients are recognized by their plan keys (`fl_blocks.execution.plans`), which
exist only for read-only source arrays. fl_blocks' loaders return read-only
storage; for your own arrays, set ``array.flags.writeable = False`` before
``ClientData.from_arrays``. Maps are assumed pure, as `ArrayPlan` assumes.
Entries hold the objects their keys name, so those ids stay unique.

Kept, least recently used first out: each client's Gram matrix over its own
batches, and whether it was seen or its Gram matrix is not finite
(`fl_blocks.execution.client_grams`); and each group of clients trained together
(its chunk with the float32 rows, only their varying columns where enough
are constant, and the group's Gram matrix), up to `ROWS_BYTES`, so a round that repeats the last one's groups rebuilds nothing;
a round whose rows would not all fit keeps none (kept in part, a cycle of rounds
would evict each group before it comes back).
Entries and remembered plans hold their datasets' arrays alive: `clear()`
empties the cache and lets them go.

>>> clear(); len(_GROUPS), client_grams.kept_bytes()
(0, 0)
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import numpy as np

from fl_blocks.execution import client_grams, plans, processes
from fl_blocks.execution.columns import Columns, Span, constant_columns, group_span
from fl_blocks.execution.dual import by_client_rows, slot_width
from fl_blocks.execution.layout import Chunk, ClientSource, make_chunk
from fl_blocks.models.softmax import SoftmaxRegression

__all__ = ["DUAL", "ROWS_BYTES", "Planned", "chunk_and_gram", "clear", "note_seen", "warm"]

#: Bytes of groups' float32 rows (and their Gram matrices) kept across rounds.
ROWS_BYTES = 64 << 20
#: Which groups train in dual form: "auto" (every client's Gram matrix is kept, or it was seen in an
#: earlier round), "always" (also data that cannot be kept: its Gram matrices are computed and dropped)
#: or "never". Results agree to float32 rounding either way; "always" and "never" are for tests.
DUAL = "auto"

Key = Any


class Planned(NamedTuple):
    """A group ready for `fl_blocks.execution.dual.train_dual`: its by-client chunk, Gram matrices and,
    for kept rows, their `constant_columns`."""

    chunk: Chunk
    grams: np.ndarray
    columns: Optional[Columns] = None
    span: Optional[Span] = None  # else, where its rows vary (from its clients' kept spans)


class _Group(NamedTuple):
    references: list[Any]
    chunk: Chunk
    grams: np.ndarray
    columns: Optional[Columns]  # its rows' constant columns, if enough


_GROUPS: "collections.OrderedDict[Key, _Group]" = collections.OrderedDict()
_KEPT = {"rows": 0}  # bytes held by _GROUPS


def clear() -> None:
    """Forgets every kept Gram matrix, chunk and seen client, the plans they were keyed by, and the
    shared result mappings kept for reuse (`fl_blocks.execution.processes.release_shared`)."""
    _GROUPS.clear()
    _KEPT.update(rows=0)
    client_grams.clear()
    plans.forget()
    processes.release_shared()


def _client_keys(group: Sequence[ClientSource]) -> Optional[list[Optional[plans.PlanFacts]]]:
    """Each client's plan facts (None for a client without batches), or None if one cannot be kept."""
    found: list[Optional[plans.PlanFacts]] = []
    for source in group:
        facts = source.facts if len(source.sizes) else None
        if len(source.sizes) and (facts is None or facts.key is None):
            return None
        found.append(facts)
    return found


def note_seen(groups: Sequence[Sequence[ClientSource]]) -> None:
    """Remembers the clients of a round, so their Gram matrices are kept when they come back."""
    client_grams.note_seen(f.key for group in groups for f in _client_keys(group) or () if f is not None)


def _by_slot(group: Sequence[ClientSource], width: int) -> bool:
    """Whether every client's rows are the first of its slot (all its batches but the last are `width` wide)."""
    return all(len(s.sizes) <= 1 or (s.plan is not None and s.plan.batch_size == width) for s in group)


def _group_bytes(chunk: Chunk, grams: np.ndarray, columns: Optional[Columns] = None) -> int:
    return chunk.x.nbytes + grams.nbytes + (columns.nbytes if columns is not None else 0)


def _build(model: SoftmaxRegression, group: list[ClientSource], found: list[Optional[plans.PlanFacts]],
           key: Key, keep_rows: bool) -> Optional[Planned]:
    """The group's chunk and Gram matrices from the clients' kept ones, computing (and keeping) only the missing.

    None when a client's Gram matrix is not finite, now or in an earlier round: the group is stepped,
    as the loop computes it.
    """
    if client_grams.not_finite(found):
        return None
    chunk = make_chunk(model, group, by_client=True)
    width = slot_width(chunk)
    x = by_client_rows(chunk)
    if not _by_slot(group, width):  # no client's block can be cut out: the group's own, kept with the group only
        grams = client_grams.group_grams(x, width, found)
    else:  # clients' blocks in their slots; padding rows have x = 0, so 1 there
        grams = client_grams.assemble(x, width, len(chunk.steps), [s.sizes for s in group], found)
    if grams is None:
        return None
    columns = None
    if keep_rows and _KEPT["rows"] + _group_bytes(chunk, grams) <= ROWS_BYTES:  # worked out once, for every round
        columns = constant_columns(x, chunk.denominators)
        if columns is not None:  # its varying columns are all train_dual reads
            chunk = chunk._replace(x=np.empty((0, x.shape[-1]), np.float32))
        _GROUPS[key] = _Group([f.references for f in found if f is not None], chunk, grams, columns)
        _KEPT["rows"] += _group_bytes(chunk, grams, columns)
    while _KEPT["rows"] > ROWS_BYTES and _GROUPS:
        gone = _GROUPS.popitem(last=False)[1]
        _KEPT["rows"] -= _group_bytes(gone.chunk, gone.grams, gone.columns)
    spans = client_grams.spans(found) if columns is None and _by_slot(group, width) else None
    return Planned(chunk, grams, columns, group_span(spans, x.shape[-1]) if spans else None)


def _worth_it(found: Sequence[Optional[plans.PlanFacts]]) -> bool:
    """Dual form for a group when at least half its clients are known (Gram matrix kept, or seen before)."""
    if DUAL != "auto":
        return DUAL == "always"
    known = [client_grams.is_known(f.key) for f in found if f is not None]
    return 2 * sum(known) >= len(known)


def _prepare(model: SoftmaxRegression, group: list[ClientSource]) -> tuple[Optional[Key], list[Optional[plans.PlanFacts]]]:
    group.sort(key=lambda s: -len(s.sizes))  # as make_chunk orders it
    found = _client_keys(group)
    if found is None:
        return None, []
    return ((model.input_dim, model.num_classes), tuple(f.key if f else None for f in found)), found


def warm(model: SoftmaxRegression, groups: Sequence[list[ClientSource]], keep_rows: bool = True) -> None:
    """Computes and keeps the Gram matrices `chunk_and_gram` would compute for `groups` (before forking helpers)."""
    for group in groups:
        key, found = _prepare(model, group) if DUAL != "never" else (None, [])
        missing = any(f is not None and not client_grams.is_kept(f.key) for f in found)
        if key is not None and missing and key not in _GROUPS and _worth_it(found):  # what helpers could not keep
            _build(model, group, found, key, keep_rows)  # (None: the helper steps the group)


def chunk_and_gram(model: SoftmaxRegression, group: list[ClientSource],
                   keep_rows: bool = True) -> Optional[Planned]:
    """The group's by-client chunk and its Gram matrices (see `fl_blocks.execution.dual.grams_of`), or None to train it by stepping.

    None means its data may change between rounds, fewer than half its
    clients are known (neither kept nor seen in an earlier round: see
    `note_seen` and `DUAL`), or a Gram matrix is not finite. Otherwise the
    missing Gram matrices are computed and kept, and the group's rows too when
    `keep_rows` (all the round's rows fit in `ROWS_BYTES`).
    """
    if DUAL == "never":
        return None
    key, found = _prepare(model, group)
    if key is None:
        if DUAL != "always":
            return None
        chunk = make_chunk(model, group, by_client=True)
        grams = client_grams.group_grams(by_client_rows(chunk), slot_width(chunk), [None] * len(group))
        return None if grams is None else Planned(chunk, grams)
    clients = np.array([s.client for s in group], np.int64)  # this round's positions of the datasets
    entry = _GROUPS.get(key)
    if entry is not None:
        _GROUPS.move_to_end(key)
        return Planned(entry.chunk._replace(clients=clients), entry.grams, entry.columns)
    if not _worth_it(found):
        return None
    built = _build(model, group, found, key, keep_rows)
    return None if built is None else built._replace(chunk=built.chunk._replace(clients=clients))
