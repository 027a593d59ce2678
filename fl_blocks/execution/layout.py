"""Lockstep data layout: clients sorted by number of batches, in chunks, one row block per step.

Step ``k`` of a chunk holds batch ``k`` of its ``A_k`` still-active clients (a
prefix: clients are sorted by number of batches, most first), each padded to
the step's widest batch. Padding rows are zero and carry an infinite
denominator, so they add nothing to a gradient. A chunk's rows come from
`fl_blocks.execution.rows`, gathered in lockstep order.

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> model = SoftmaxRegression(2, 2)
>>> one = [(np.ones((2, 2), np.float32), np.array([0, 1]))]
>>> two = one + [(np.ones((1, 2), np.float32), np.array([1]))]
>>> [chunk] = build_chunks(model, [one, two])
>>> chunk.clients.tolist(), chunk.steps, chunk.denominators.tolist()
([1, 0], [(0, 2, 2), (4, 1, 1)], [2.0, 2.0, 2.0, 2.0, 1.0])
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from fl_blocks.execution.batches import check_label_range, unpack_batch
from fl_blocks.execution.rows import ClientSource, client_source, gather_plans, plan_batches, shared_maps, stack_rows
from fl_blocks.models.softmax import SoftmaxRegression

__all__ = ["Chunk", "ClientSource", "client_source", "group_clients", "make_chunk", "build_chunks", "MAX_CHUNK_ROWS"]

#: Rows (examples plus padding) per chunk: its float32 rows stay in the last-level cache.
MAX_CHUNK_ROWS = 2048


class Chunk(NamedTuple):
    """Clients trained together; `steps` are ``(first row, active clients, width)``."""

    clients: np.ndarray
    num_examples: np.ndarray
    x: np.ndarray
    labels: np.ndarray
    denominators: np.ndarray
    steps: list[tuple[int, int, int]]


def _geometry(sizes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row: slot client, slot step, real count and position in the slot; per step: active, width."""
    active, width = (sizes > 0).sum(axis=0), sizes.max(axis=0, initial=0)
    slot_step = np.repeat(np.arange(len(active)), active)
    slot_client = np.arange(len(slot_step)) - np.repeat(np.cumsum(active) - active, active)
    slot_width = width[slot_step]
    row_slot = np.repeat(np.arange(len(slot_step)), slot_width)
    position = np.arange(len(row_slot)) - np.repeat(np.cumsum(slot_width) - slot_width, slot_width)
    return slot_client[row_slot], slot_step[row_slot], sizes[slot_client, slot_step][row_slot], position, active, width


def _client_geometry(sizes: np.ndarray) -> tuple[np.ndarray, ...]:
    """`_geometry` client by client: each client's batches in order, every slot `width` rows wide."""
    clients, steps = sizes.shape
    width = int(sizes.max(initial=0))
    client = np.repeat(np.arange(clients), steps * width)
    step = np.tile(np.repeat(np.arange(steps), width), clients)
    position = np.tile(np.arange(width), clients * steps)
    active = (sizes > 0).sum(axis=0)
    return client, step, sizes[client, step], position, active, np.full(steps, width)


_SKELETONS: "collections.OrderedDict[tuple[bytes, tuple[int, ...], bool], tuple[Any, ...]]" = collections.OrderedDict()
#: Layouts remembered (a round of 3,400 clients has about 200 groups).
MAX_SKELETONS = 4096


def _skeleton(sizes: np.ndarray, by_client: bool) -> tuple[tuple[np.ndarray, ...], list[tuple[int, int, int]], np.ndarray, np.ndarray]:
    """The layout of batch `sizes` ``(clients, steps)``: geometry, steps, real rows and denominators (remembered)."""
    key = (sizes.tobytes(), sizes.shape, by_client)
    found = _SKELETONS.get(key)
    if found is None:
        geometry = _client_geometry(sizes) if by_client else _geometry(sizes)
        client, step, count, position, active, width = geometry
        starts = np.cumsum(active * width) - active * width if not by_client else np.arange(len(active)) * width
        steps = [(int(s), int(a), int(w)) for s, a, w in zip(starts, active, width)]
        real = position < count
        found = geometry, steps, real, np.where(real, count.astype(np.float32), np.float32(np.inf))
        for array in (*geometry, real, found[3]):
            array.flags.writeable = False  # shared by every chunk of this layout
        _SKELETONS[key] = found
        if len(_SKELETONS) > MAX_SKELETONS:
            _SKELETONS.popitem(last=False)
    _SKELETONS.move_to_end(key)
    return found


def make_chunk(model: SoftmaxRegression, group: list[ClientSource], by_client: bool = False) -> Chunk:
    """One group's lockstep layout (see the module docstring).

    With `by_client`, rows are ordered client by client instead (``x`` reshapes
    to ``(clients, steps * width, dim)``, one `width` for all steps).
    """
    group.sort(key=lambda s: -len(s.sizes))  # stable: ties keep client order
    sizes = np.zeros((len(group), max(len(s.sizes) for s in group)), np.int64)
    for i, s in enumerate(group):
        sizes[i, :len(s.sizes)] = s.sizes
    geometry, steps, real, denominators = _skeleton(sizes, by_client)
    client = geometry[0]
    x = labels = None
    if len(client) and shared_maps(group):
        x, labels = unpack_batch(gather_plans(group, sizes, geometry, by_client))
        ok = isinstance(x, np.ndarray) and isinstance(labels, np.ndarray) and x.dtype == np.float32
        ok = ok and x.shape == (len(client), model.input_dim) and labels.dtype.kind in "iu" and labels.size == len(client)
        if ok and not x.flags.writeable:
            x = x.copy()
        x, labels = (x, labels.reshape(-1)) if ok else (None, None)
    if x is None:
        group = [plan_batches(model, s) if s.plan is not None else s for s in group]
        x, labels = stack_rows(group, geometry, model.input_dim)
    else:
        x[~real] = 0
    assert labels is not None
    if labels.size and (labels.min() < 0 or labels.max() >= model.num_classes):
        ordered = sorted((plan_batches(model, s) if s.plan is not None else s) for s in group)
        check_label_range(model, labels, model.num_classes, [(s.client, s.batches or []) for s in ordered])
    indices = np.array([s.client for s in group], np.int64)
    return Chunk(indices, sizes.sum(axis=1).astype(np.float32), x, labels, denominators, list(steps))


def group_clients(sources: Sequence[ClientSource], max_rows: int = MAX_CHUNK_ROWS) -> list[list[ClientSource]]:
    """Clients with batches, sorted by number of batches (most first), in groups of at most about `max_rows` rows.

    A group's rows are its clients times its steps times its widest batch (its
    by-client footprint, which bounds the lockstep one); clients without
    batches are in no group (their update is zero).
    """
    order = sorted((i for i in range(len(sources)) if len(sources[i].sizes)), key=lambda i: -len(sources[i].sizes))
    groups: list[list[ClientSource]] = []
    steps = width = 0
    for i in order:
        source = sources[i]
        wider = max(width, source.widest)
        if not groups or (len(groups[-1]) + 1) * steps * wider > max_rows:
            groups.append([])
            steps, wider = len(source.sizes), source.widest
        groups[-1].append(source)
        width = wider
    return groups


def build_chunks(model: SoftmaxRegression, client_data: Sequence[Any], max_rows: int = MAX_CHUNK_ROWS) -> Iterator[Chunk]:
    """All clients' data in lockstep chunks of at most about `max_rows` rows each, made one at a time."""
    sources = [client_source(model, dataset, i) for i, dataset in enumerate(client_data)]
    return (make_chunk(model, group) for group in group_clients(sources, max_rows))
