"""One round of the tutorial's algorithm at 10, 105 and 3,400 clients: every executor, and TFF, in one run.

    python -m benchmarks [--clients 10 105 3400] [--rounds 7] [--small-rounds 50] [--tff-python ../tff-venv/bin/python]

Each setting runs in a fresh process (`benchmarks.round_worker`), one after
another, so its peak RSS is its own. Prints a Markdown table: median round, the two
untimed first rounds, rounds/s, examples/s, % of the compute floor (47 kFLOP per example at
2 x 100 GFLOP/s), peak RSS, and the loop's median over the vectorized one,
then what this machine does on the rounds' kinds of work (`benchmarks.machine`).
With `--tff-python` (a TFF 0.87 venv, see ``../shared/TFF.md``) real TFF runs
the 10-client seed setting in the same run
(`benchmarks/tff_reference/make_clip_reference.py`); its first round is dropped.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from benchmarks import machine

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLOOR_SECONDS_PER_EXAMPLE = 47e3 / 200e9
#: (executor, processes) settings timed at every client count; the loop is skipped above `LOOP_MAX_CLIENTS`.
SETTINGS = (("loop", 1), ("vectorized", 1), ("vectorized", 2))
LOOP_MAX_CLIENTS = 3400
#: Settings up to this many clients run `--small-rounds` rounds: a median of 7 millisecond rounds is mostly noise here.
SMALL_CLIENTS = 105


def run_worker(clients: int, executor: str, processes: int, rounds: int) -> dict[str, object]:
    command = [sys.executable, "-m", "benchmarks.round_worker", "--clients", str(clients), "--executor", executor,
               "--processes", str(processes), "--rounds", str(rounds)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {' '.join(command[2:])} failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_tff(python: str, rounds: int) -> dict[str, object]:
    """Real TFF's seed setting (10 clients, batch 20, clip 1), timed by its own script."""
    script = ROOT / "benchmarks" / "tff_reference" / "make_clip_reference.py"
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "tff.npz"
        done = subprocess.run([python, str(script), "--rounds", str(rounds + 1), "--out", str(out)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the TFF run failed:\n{done.stderr[-2000:]}")
        with np.load(out, allow_pickle=False) as ref:
            seconds = [float(s) for s in ref["round_seconds"][1:]]
            init = float(ref["init_seconds"])
    return {"clients": 10, "executor": "TFF 0.87", "processes": 1, "examples": None, "round_seconds": seconds,
            "peak_rss_mb": None, "init_seconds": init}


def row(result: dict[str, object], examples: int, loop_median: float | None) -> str:
    median = statistics.median(result["round_seconds"])  # type: ignore[arg-type]
    floor = examples * FLOOR_SECONDS_PER_EXAMPLE
    rss = result["peak_rss_mb"]
    name = str(result["executor"])
    if name == "vectorized":
        used = result.get("processes_used", result["processes"])
        name += f", {result['processes']} proc" + ("" if used == result["processes"] else f" ({used} used)")
    first = result.get("first_round_seconds") or []
    cells = [str(result["clients"]), str(name), f"{median * 1e3:.2f} ms",
             " / ".join(f"{s * 1e3:.0f}" for s in first) + " ms" if first else "-", f"{1 / median:.1f}", f"{examples / median:,.0f}",
             f"{100 * floor / median:.1f}%", "-" if rss is None else f"{rss:.0f} MB",
             "-" if loop_median is None else f"{loop_median / median:.2f}x"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 105, 3400])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per setting (after two warm-up rounds)")
    parser.add_argument("--small-rounds", type=int, default=50,
                        help=f"timed rounds of settings up to {SMALL_CLIENTS} clients, which take milliseconds (TFF: --rounds)")
    parser.add_argument("--tff-python", help="the python of a TFF 0.87 venv, to time TFF side by side")
    parser.add_argument("--json", help="also write every round's time to this file")
    args = parser.parse_args()
    print("| clients | executor | median round | rounds 1 / 2 | rounds/s | examples/s | % of floor | peak RSS | loop / this |")
    print("|---|---|---|---|---|---|---|---|---|")
    everything = []
    for clients in args.clients:
        rounds = args.small_rounds if clients <= SMALL_CLIENTS else args.rounds
        results = [run_worker(clients, e, p, rounds) for e, p in SETTINGS if e != "loop" or clients <= LOOP_MAX_CLIENTS]
        if args.tff_python and clients == 10:
            results.append(run_tff(args.tff_python, args.rounds))
        examples = int(results[0]["examples"])  # type: ignore[arg-type]
        loops = [statistics.median(r["round_seconds"]) for r in results if r["executor"] == "loop"]  # type: ignore[arg-type]
        for result in results:
            print(row(result, examples, loops[0] if loops else None), flush=True)
        everything += results
    figures = machine.probe()
    print("\n" + machine.describe(figures))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"rounds": everything, "machine": figures}, indent=1))


if __name__ == "__main__":
    main()
