"""The benchmark suite's own bookkeeping: how `floor` blocks clients and how `python -m benchmarks` sums up runs.

Expected values are worked out by hand from the tiny inputs.
"""

import numpy as np
import pytest

from benchmarks import __main__ as suite
from benchmarks.floor import blocks


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
