"""Multi-process vectorized client work: the same results as one process, and errors named as there."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fl_blocks.algorithms import build_fed_avg_with_clipping, build_gradient_clipping_client_work
from fl_blocks.execution import cache, layout
from fl_blocks.execution import processes as processes_module
from fl_blocks.execution import vectorized
from fl_blocks.models import ModelWeights, SoftmaxRegression
from fl_blocks.optimizers import build_sgdm
from fl_blocks.placements import AllEqual

DIM, CLASSES = 5, 3
needs_fork = pytest.mark.skipif(not processes_module.can_fork(), reason="helper processes need fork (POSIX)")


def clients(rng, count):
    data = []
    for n in rng.integers(0, 45, size=count):
        x = rng.normal(scale=3.0, size=(n, DIM)).astype(np.float32)
        y = rng.integers(0, CLASSES, size=(n, 1)).astype(np.int32)
        data.append([(x[s:s + 4], y[s:s + 4]) for s in range(0, n, 4)])
    return data


def stacked_updates(data, weights, processes, monkeypatch, max_rows=64, momentum=0.5):
    monkeypatch.setattr(vectorized, "MIN_ROWS_PER_PROCESS", 1)  # share out even this small round
    monkeypatch.setattr(cache, "DUAL", "always")  # plain SGD in dual form even on lists of batches
    monkeypatch.setattr(vectorized, "group_clients", lambda sources, _rows: layout.group_clients(sources, max_rows))
    shares_used = []
    run_shares = vectorized.run_shares
    monkeypatch.setattr(vectorized, "run_shares", lambda work, shares: (shares_used.append(len(shares)), run_shares(work, shares)))
    work = build_gradient_clipping_client_work(lambda: SoftmaxRegression(DIM, CLASSES), build_sgdm(0.3, momentum=momentum),
                                               1.0, executor="vectorized", processes=processes)
    result = work.next(work.initialize(), weights, data).result.stacked
    assert shares_used == [processes]  # really shared out (or really not)
    return result


@needs_fork
@pytest.mark.parametrize("momentum", [0.5, None])  # stepped weights; plain SGD in dual form
@pytest.mark.parametrize("processes", [2, 3])
def test_helper_processes_give_identical_results(processes, momentum, monkeypatch):
    rng = np.random.default_rng(7)
    data = clients(rng, 60)
    weights = AllEqual(ModelWeights([rng.normal(size=(DIM, CLASSES)).astype(np.float32),
                                     rng.normal(size=CLASSES).astype(np.float32)], []))
    one = stacked_updates(data, weights, 1, monkeypatch, momentum=momentum)
    many = stacked_updates(data, weights, processes, monkeypatch, momentum=momentum)
    np.testing.assert_array_equal(many.update_weight, one.update_weight)
    for a, b in zip(many.update, one.update):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one.update_weight, [sum(len(y) for _, y in c) for c in data])


@needs_fork
def test_helper_process_error_is_raised_here_with_the_client_named(monkeypatch):
    rng = np.random.default_rng(3)
    data = clients(rng, 40)
    data[-1] = [(np.ones((2, DIM), np.float32), np.array([[0], [9]], np.int32))]
    weights = AllEqual(SoftmaxRegression(DIM, CLASSES).initial_weights())
    with pytest.raises(ValueError, match=r"client 39, batch 0: label 9 is outside \[0, 3\)"):
        stacked_updates(data, weights, 2, monkeypatch)


def test_balanced_shares_cover_every_index_once():
    costs = [5, 1, 1, 3, 2, 2, 8]
    shares = processes_module.balanced_shares(costs, 3)
    assert sorted(i for s in shares for i in s) == list(range(len(costs)))
    totals = sorted(sum(costs[i] for i in s) for s in shares)
    assert totals[-1] - totals[0] <= max(costs)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_processes_are_named(bad):
    with pytest.raises(ValueError, match="processes must be a positive int or None"):
        build_fed_avg_with_clipping(lambda: SoftmaxRegression(DIM, CLASSES), build_sgdm(0.1), build_sgdm(1.0),
                                    processes=bad)


@pytest.mark.parametrize("processes", [1, 2])
def test_without_fork_every_share_runs_here_with_the_same_results(processes, monkeypatch):
    rng = np.random.default_rng(11)
    data = clients(rng, 30)
    weights = AllEqual(SoftmaxRegression(DIM, CLASSES).initial_weights())
    forked = stacked_updates(data, weights, processes, monkeypatch)
    monkeypatch.setattr(processes_module, "can_fork", lambda: False)
    monkeypatch.setattr(processes_module.multiprocessing, "get_context",
                        lambda *a: pytest.fail("no process may be started where fork is unavailable"))
    here = stacked_updates(data, weights, processes, monkeypatch)
    for a, b in zip(here.update + [here.update_weight], forked.update + [forked.update_weight]):
        np.testing.assert_array_equal(a, b)



def test_shared_memory_is_reused_only_once_no_array_views_it():
    """A reused mapping still holds what was written to it (a new one is zero-filled)."""
    first = processes_module.shared_empty((3, 5), np.float32)
    first[...] = 7
    view = first[1:]
    del first
    alive = processes_module.shared_empty((3, 5), np.float32)  # the first mapping is still viewed: a new one
    assert not np.shares_memory(alive, view) and (alive == 0).all() and (view == 7).all()
    del view
    again = processes_module.shared_empty((5, 3), np.float32)  # same size, no longer viewed: reused
    assert (again == 7).all()
    other = processes_module.shared_empty((4,), np.int64)  # another size: a new mapping
    assert (other == 0).all() and not np.shares_memory(other, again)


def freed_mapping_of(value):
    """A shared (3, 5) float32 array filled with `value`, then dropped: kept for reuse."""
    array = processes_module.shared_empty((3, 5), np.float32)
    array[...] = value


@pytest.mark.skipif(not processes_module.can_fork(), reason="needs fork")
def test_a_fork_elsewhere_forgets_the_mappings_kept_for_reuse():
    """The forked process may still view them: neither it nor this one reuses them."""
    processes_module.release_shared()
    freed_mapping_of(7)
    pid = os.fork()
    if pid == 0:  # the child
        os._exit(0 if (processes_module.shared_empty((3, 5), np.float32) == 0).all() else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert (processes_module.shared_empty((3, 5), np.float32) == 0).all()


@pytest.mark.skipif(not processes_module.can_fork(), reason="needs fork")
def test_run_shares_helpers_neither_reuse_nor_spoil_the_mappings_kept_for_reuse():
    processes_module.release_shared()
    freed_mapping_of(7)
    parent = os.getpid()

    def work(share):
        if os.getpid() != parent and not (processes_module.shared_empty((3, 5), np.float32) == 0).all():
            raise ValueError("a helper reused its parent's mapping")

    processes_module.run_shares(work, [[0], [1]])
    assert (processes_module.shared_empty((3, 5), np.float32) == 7).all()  # still reused here
