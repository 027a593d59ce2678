"""The benchmark suite's own bookkeeping: how `floor` blocks clients and how `python -m benchmarks` sums up runs.

Expected values are worked out by hand from the tiny inputs.
"""

import os
import sys
import time

import numpy as np
import pytest

from benchmarks import __main__ as suite
from benchmarks import floor
from benchmarks.floor import CLASSES, blocks, shares_by_rows
from fl_blocks.execution.processes import can_fork, usable_cores
from conftest import DATA_NPZ, require


def test_blocks_take_every_client_once_within_the_row_limit():
    offsets = np.cumsum([0, 3, 4, 2, 9, 1, 1])  # clients of 3, 4, 2, 9, 1 and 1 rows
    found = blocks(offsets, 7)
    assert found == [(0, 2), (2, 3), (3, 4), (4, 6)]  # 3+4, 2, 9 (alone, over the limit), 1+1
    assert [c for first, end in found for c in range(first, end)] == list(range(6))


def test_blocks_of_one_client():
    assert blocks(np.array([0, 5]), 2) == [(0, 1)]


def run(executor, processes, seconds, first=(), rss=None, used=None):
    result = {"clients": 10, "executor": executor, "processes": processes, "round_seconds": list(seconds),
              "first_round_seconds": list(first), "peak_rss_mb": rss}
    if used is not None:
        result["processes_used"] = used
    return result


def test_row_gives_the_median_of_process_medians_and_their_range():
    runs = [run("vectorized", 2, [0.001, 0.003, 0.002], [0.010, 0.020], 60.0, 1),
            run("vectorized", 2, [0.004, 0.004, 0.005], [0.030, 0.010], 70.0, 2),
            run("vectorized", 2, [0.001, 0.001, 0.009], [0.020, 0.030], 65.0, 1)]
    cells = [c.strip() for c in suite.row(runs, 100, loop_median=0.008).strip("|").split("|")]
    # process medians 2, 4 and 1 ms: median 2 ms; first rounds' medians 20 and 20 ms
    assert cells[:5] == ["10", "vectorized, 2 proc (1/2 used)", "2.00 ms", "1.00-4.00 ms", "20 / 20 ms"]
    assert cells[5:] == ["500.0", "50,000", f"{100 * 100 * 47e3 / 200e9 / 0.002:.1f}%", "70 MB", "4.00x"]


def test_speedups_over_tff_pair_runs_of_the_same_repeat():
    runs = {("vectorized", 1): [run("vectorized", 1, [0.001]), run("vectorized", 1, [0.002])],
            suite.TFF: [run("TFF 0.87", 1, [0.5]), run("TFF 0.87", 1, [0.6])]}
    [line] = suite.speedups_over_tff(runs)
    assert "367x faster" in line  # median 0.55 s against median 1.5 ms
    assert "per repeat 500x, 300x" in line


@pytest.mark.parametrize("repeats", [0, -1])
def test_repeats_below_one_are_refused(repeats, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["benchmarks", "--repeats", str(repeats)])
    with pytest.raises(SystemExit):
        suite.main()
    assert "--repeats must be at least 1" in capsys.readouterr().err


def test_shares_by_rows_cut_at_the_nearest_client_boundary():
    offsets = np.cumsum([0, 3, 4, 2, 9, 1, 1])  # 20 rows: boundaries at 0, 3, 7, 9, 18, 19, 20
    assert shares_by_rows(offsets, 2) == [(0, 3), (3, 6)]  # 9 and 11 rows (a cut at 18 would leave 18 and 2)
    assert shares_by_rows(offsets, 3) == [(0, 2), (2, 3), (3, 6)]  # boundaries nearest 6.7 and 13.3: 7, and 9 (4.3 off; 18 is 4.7)
    assert shares_by_rows(offsets, 1) == [(0, 6)]


def test_shares_by_rows_without_rows():
    assert shares_by_rows(np.array([0, 0, 0]), 2) == [(0, 1), (1, 2)]


#: Six clients of 3, 4, 2, 9, 1 and 1 rows: `shares_by_rows` cuts them into clients 0-2 (9 rows) and 3-5 (11).
OFFSETS = np.cumsum([0, 3, 4, 2, 9, 1, 1])


def _at_once_of_two(pixels=None):
    """`floor.at_once` over the six clients of `OFFSETS` in two shares, three passes (`one_pass` faked by the test)."""
    pixels = np.zeros((20, 4), np.uint8) if pixels is None else pixels
    updates = [np.ones((CLASSES, n), np.float32) for n in np.diff(OFFSETS)]
    return floor.at_once(OFFSETS, pixels, np.zeros(20, np.int32), np.zeros((4, CLASSES), np.float32), updates, 2, passes=3)


@pytest.mark.skipif(not can_fork(), reason="at_once forks a process per share")
def test_at_once_times_each_share_over_its_own_rows_in_a_process_of_its_own(monkeypatch):
    parent = os.getpid()
    calls = []

    def fake_pass(own, rows, own_labels, kernel, own_updates, spans):  # what one share's process saw
        calls.append(1)
        return float(own[-1]), float(rows[0, 0]), float(os.getpid() != parent) + len(calls)

    monkeypatch.setattr(floor, "one_pass", fake_pass)
    found = _at_once_of_two(np.arange(20 * 4, dtype=np.uint8).reshape(20, 4))
    # share 0: clients 0-2, 9 rows from row 0, here; share 1: clients 3-5, 11 rows from row 9, in a child.
    # The third figure is the median over the timed passes of (1 if forked) + calls so far in that process, the
    # first call being the untimed warm-up: calls 2, 3, 4 give 3 here, and 1 + 3 in the child.
    assert found.tolist() == [[9.0, 0.0, 3.0], [11.0, 36.0, 4.0]]


@pytest.mark.skipif(not can_fork(), reason="at_once forks a process per share")
def test_at_once_starts_every_pass_in_all_shares_together(monkeypatch):
    parent = os.getpid()

    def fake_pass(*args):  # the share here is slow; the forked one would run ahead unless held back
        start = time.monotonic()
        if os.getpid() == parent:
            time.sleep(0.1)
        return start, 0.0, 0.0

    monkeypatch.setattr(floor, "one_pass", fake_pass)
    found = _at_once_of_two()
    # Timed passes start 0.1, 0.2 and 0.3 s after the warm-up's start here; held back, the child's start with them
    # (median 0.2 s), else right after its own warm-up (median ~0 s).
    assert abs(found[0, 0] - found[1, 0]) < 0.05


def test_floor_runs_from_start_to_end_on_a_few_real_clients(monkeypatch, capsys):
    require(DATA_NPZ)
    pytest.importorskip("threadpoolctl", reason="benchmarks.floor keeps BLAS to one thread with threadpoolctl")
    monkeypatch.setattr(sys, "argv", ["floor", "--clients", "12", "--passes", "1", "--rounds", "1"])
    floor.main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("12 clients, ") and "one core alone" in lines[0]
    cores = usable_cores()
    assert len(lines) == (3 if can_fork() and cores > 1 else 2)
    assert all(_bound(line) > 0 for line in lines)


def _bound(line):
    """The 'at least N ms' figure of one of floor's lines."""
    return float(line.rsplit("at least ", 1)[1].split(" ms")[0])


@pytest.mark.skipif(not can_fork(), reason="floor.main times shares at once only where it can fork")
def test_floor_bounds_a_round_by_the_mean_share_plus_the_steps_shared_out(monkeypatch, capsys):
    require(DATA_NPZ)
    pytest.importorskip("threadpoolctl", reason="benchmarks.floor keeps BLAS to one thread with threadpoolctl")
    shares = np.array([[0.010, 0.020, 0.030], [0.050, 0.060, 0.070]])  # 60 and 180 ms: mean 120, busiest 180
    monkeypatch.setattr(floor, "at_once", lambda *args: shares)
    monkeypatch.setattr(floor, "usable_cores", lambda: 2)
    monkeypatch.setattr(floor, "step_seconds", lambda clients, rounds: [0.030, 0.040, 0.050])  # median 40 ms
    monkeypatch.setattr(sys, "argv", ["floor", "--clients", "3", "--passes", "1", "--rounds", "3"])
    floor.main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert "busiest share took 180 ms, the mean share 120 ms" in lines[1] and _bound(lines[1]) == 120
    assert "40 ms of one core" in lines[2] and _bound(lines[2]) == 140  # 120 + 40 / 2


@pytest.mark.skipif(not can_fork(), reason="at_once forks a process per share")
def test_a_failing_share_stops_the_others_waiting(monkeypatch):
    parent = os.getpid()

    def fake_pass(*args):  # the forked share fails in its warm-up; the share here would wait at the barrier
        if os.getpid() != parent:
            raise RuntimeError("share failed")
        return 0.0, 0.0, 0.0

    monkeypatch.setattr(floor, "one_pass", fake_pass)
    monkeypatch.setattr(floor, "BARRIER_SECONDS", 60.0)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="share failed"):  # the failing share's own error, not the barrier's
        _at_once_of_two()
    assert time.monotonic() - start < 10  # aborted, not timed out
