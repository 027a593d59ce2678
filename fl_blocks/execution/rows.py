"""A client group's rows: stored arrays gathered through their shared maps, or checked batches stacked.

Array-backed `Dataset`\\ s are read through their `ArrayPlan`: stored rows (e.g.
uint8 pixels) are gathered in a layout's row order and the dataset's maps run
once on the whole block. Other datasets are iterated and their batches checked.

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> source = client_source(SoftmaxRegression(2, 2), [(np.ones((3, 2), np.float32), np.array([0, 1, 1]))], 0)
>>> source.sizes.tolist(), source.plan is None
([3], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import numpy as np
import optree

from fl_blocks.execution.batches import checked_batch_list
from fl_blocks.execution.functions import same_functions
from fl_blocks.execution.plans import PlanFacts, facts, maps_part
from fl_blocks.models.softmax import SoftmaxRegression
from fl_blocks.simulation.datasets.array_plan import ArrayPlan, call

__all__ = ["ClientSource", "client_source", "gather_plans", "plan_batches", "shared_maps", "stack_rows"]

Batches = list[tuple[np.ndarray, np.ndarray]]


class ClientSource(NamedTuple):
    """One client's data: checked batches or an `ArrayPlan` (and its `PlanFacts`, read this round), and its batch
    sizes (and the widest, 0 without batches)."""

    client: int
    sizes: np.ndarray
    widest: int
    batches: Optional[Batches]
    plan: Optional[ArrayPlan]
    facts: Optional[PlanFacts] = None


def client_source(model: SoftmaxRegression, dataset: Any, index: int) -> ClientSource:
    """Reads one client's dataset: its `ArrayPlan` when it has one, else its checked batches."""
    plan_fn = getattr(dataset, "array_plan", None)
    plan = plan_fn() if callable(plan_fn) else None
    if isinstance(plan, ArrayPlan) and plan.batch_size is not None:
        found = facts(plan)
        return ClientSource(index, found.sizes, found.widest, None, plan, found)
    batches = checked_batch_list(model, model.input_dim, dataset, index)
    sizes = np.array([len(y) for _, y in batches], np.int64)
    return ClientSource(index, sizes, int(sizes.max(initial=0)), batches, None)


def plan_batches(model: SoftmaxRegression, source: ClientSource) -> ClientSource:
    """A plan client as checked batches (one `materialize` call, sliced)."""
    assert source.plan is not None
    batches: list[Any] = []
    if len(source.sizes):
        block = source.plan.materialize(0, int(source.sizes.sum()))
        ends = np.cumsum(source.sizes)
        batches = [optree.tree_map(lambda leaf, e=e, n=n: leaf[e - n:e], block) for e, n in zip(ends, source.sizes)]
    return source._replace(batches=checked_batch_list(model, model.input_dim, batches, source.client), plan=None, facts=None)


def _in_slots(per_client: list[np.ndarray], slot: int) -> np.ndarray:
    """Each client's rows of one leaf at the start of its `slot`-row slot, padding repeating its row 0."""
    block = np.empty((len(per_client), slot) + per_client[0].shape[1:], np.result_type(*per_client))
    for i, rows in enumerate(per_client):
        block[i, :len(rows)] = rows
        block[i, len(rows):] = rows[0]
    return block.reshape((-1,) + block.shape[2:])


def gather_plans(group: Sequence[ClientSource], sizes: np.ndarray, geometry: tuple[np.ndarray, ...], by_client: bool) -> Any:
    """The group's rows in `geometry`'s order through their shared maps (padding rows repeat row 0)."""
    client, step, count, position = geometry[:4]
    plans = [s.plan for s in group if s.plan is not None]
    used = [int(s.sizes.sum()) for s in group if s.plan is not None]  # rows in its batches: drop_remainder drops the tail
    leaves = [optree.tree_leaves(p.columns) for p in plans]
    per_leaf = [[ls[j][:n] if p.rows is None else ls[j][p.rows[:n]] for ls, p, n in zip(leaves, plans, used)]
                for j in range(len(leaves[0]))]  # each leaf's rows, client by client
    width = int(geometry[5][0]) if len(geometry[5]) else 0
    if by_client and ((sizes[:, :-1] == width) | (sizes[:, 1:] == 0)).all():  # each client's rows fill its slot's start
        gathered = [_in_slots(per_client, len(client) // len(group)) for per_client in per_leaf]
    else:
        stored = [np.concatenate(per_client) for per_client in per_leaf]
        totals = sizes.sum(axis=1)
        starts = np.cumsum(sizes, axis=1) - sizes
        source_rows = np.where(position < count, (np.cumsum(totals) - totals)[client] + starts[client, step] + position, 0)
        gathered = [leaf[source_rows] for leaf in stored]
    block = optree.tree_unflatten(optree.tree_structure(plans[0].columns), gathered)
    for fn in plans[0].element_fns + plans[0].batch_fns:
        block = call(fn, block)
    return block


def shared_maps(group: Sequence[ClientSource]) -> bool:
    first = group[0].plan
    keys = [s.facts.key if s.facts is not None else None for s in group]
    if first is not None and None not in keys:
        return all(maps_part(k) == maps_part(keys[0]) for k in keys)  # type: ignore[arg-type]
    return first is not None and all(
        (s.plan is None and not s.sizes.size)  # a client without batches adds no rows
        or (s.plan is not None and same_functions(s.plan.element_fns, first.element_fns)
            and same_functions(s.plan.batch_fns, first.batch_fns)
            and optree.tree_structure(s.plan.columns) == optree.tree_structure(first.columns)) for s in group
    )


def stack_rows(group: Sequence[ClientSource], geometry: tuple[np.ndarray, ...], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The group's batches in `geometry`'s row order, padding rows zero (one copy per batch)."""
    client, step, count, position = geometry[:4]
    x, labels = np.zeros((len(client), dim), np.float32), np.zeros(len(client), np.intp)
    firsts = np.flatnonzero((position == 0) & (count > 0))
    for row, i, k in zip(firsts, client[firsts], step[firsts]):
        bx, by = group[i].batches[k]
        x[row:row + len(by)] = bx
        labels[row:row + len(by)] = by
    return x, labels
