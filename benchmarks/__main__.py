"""One round of the tutorial's algorithm at 10, 105 and 3,400 clients: every executor, and TFF, in one run.

    python -m benchmarks [--clients 10 105 3400] [--rounds 7] [--small-rounds 50] [--repeats 3] [--tff-python ../tff-venv/bin/python]

Each setting runs in a fresh process (`benchmarks.round_worker`), one after
another, so its peak RSS is its own; with `--repeats N` every setting runs in N
processes, the settings of a client count taking turns in a rotated order, since
on this machine one process's median can differ from the next one's by a third.
Prints a Markdown table: the median of the processes' median rounds (and their
range), the two untimed first rounds, rounds/s, examples/s, % of the compute
floor (47 kFLOP per example at 2 x 100 GFLOP/s), peak RSS, and the loop's median
over the setting's, then what this machine does on the rounds' kinds of work
(`benchmarks.machine`). With `--tff-python` (a TFF 0.87 venv, see
``../shared/TFF.md``) real TFF runs the 10-client seed setting in the same run,
taking its turn among them in each repeat
(`benchmarks/tff_reference/make_clip_reference.py`); its first round is dropped,
and the speed-up of each vectorized setting over TFF is given overall and per
repeat (the two timed in the same turn of settings).
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
#: Real TFF's seed setting, a turn of its own among the 10-client settings with `--tff-python`.
TFF = ("TFF 0.87", 1)


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


def process_medians(runs: list[dict[str, object]]) -> list[float]:
    """Each process's median round, in seconds."""
    return [statistics.median(run["round_seconds"]) for run in runs]  # type: ignore[arg-type]


def row(runs: list[dict[str, object]], examples: int, loop_median: float | None) -> str:
    """One setting's table row from its runs (one per repeat): medians over the processes' medians."""
    result, medians = runs[0], process_medians(runs)
    median = statistics.median(medians)
    floor = examples * FLOOR_SECONDS_PER_EXAMPLE
    rss = [r["peak_rss_mb"] for r in runs if r["peak_rss_mb"] is not None]
    name = str(result["executor"])
    if name == "vectorized":
        used = sorted({int(r.get("processes_used", r["processes"])) for r in runs})  # type: ignore[call-overload]
        name += f", {result['processes']} proc" + ("" if used == [result["processes"]] else f" ({'/'.join(map(str, used))} used)")
    firsts: list[list[float]] = [list(r.get("first_round_seconds") or []) for r in runs]  # type: ignore[call-overload]
    first = [statistics.median(f[i] for f in firsts) for i in range(min(len(f) for f in firsts))]
    spread = f"{min(medians) * 1e3:.2f}-{max(medians) * 1e3:.2f} ms" if len(medians) > 1 else "-"
    cells = [str(result["clients"]), str(name), f"{median * 1e3:.2f} ms", spread,
             " / ".join(f"{s * 1e3:.0f}" for s in first) + " ms" if first else "-", f"{1 / median:.1f}", f"{examples / median:,.0f}",
             f"{100 * floor / median:.1f}%", f"{max(rss):.0f} MB" if rss else "-",  # type: ignore[type-var]
             "-" if loop_median is None else f"{loop_median / median:.2f}x"]
    return "| " + " | ".join(cells) + " |"


def speedups_over_tff(runs: dict[tuple[str, int], list[dict[str, object]]]) -> list[str]:
    """Lines giving each vectorized setting's speed-up over TFF, overall and per repeat (the same turn of settings)."""
    tff = process_medians(runs[TFF])
    lines = []
    for (executor, processes), own in runs.items():
        if executor != "vectorized":
            continue
        medians = process_medians(own)
        each = ", ".join(f"{t / m:.0f}x" for t, m in zip(tff, medians))
        lines.append(f"At 10 clients, vectorized with {processes} proc: {statistics.median(tff) / statistics.median(medians):.0f}x "
                     f"faster than TFF 0.87 ({statistics.median(tff) * 1e3:.0f} against {statistics.median(medians) * 1e3:.2f} ms"
                     + (f"; per repeat {each})" if len(medians) > 1 else ")"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 105, 3400])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per setting (after two warm-up rounds)")
    parser.add_argument("--small-rounds", type=int, default=50,
                        help=f"timed rounds of settings up to {SMALL_CLIENTS} clients, which take milliseconds (TFF: --rounds)")
    parser.add_argument("--repeats", type=int, default=1, help="processes per setting, taking turns with the other settings")
    parser.add_argument("--tff-python", help="the python of a TFF 0.87 venv, to time TFF side by side")
    parser.add_argument("--json", help="also write every round's time to this file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    print("| clients | executor | median round | process medians | rounds 1 / 2 | rounds/s | examples/s | % of floor | peak RSS | loop / this |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    everything: list[dict[str, object]] = []  # every run, in the order they ran
    tff_lines: list[str] = []
    for clients in args.clients:
        rounds = args.small_rounds if clients <= SMALL_CLIENTS else args.rounds
        settings = [s for s in SETTINGS if s[0] != "loop" or clients <= LOOP_MAX_CLIENTS]
        if args.tff_python and clients == 10:
            settings.append(TFF)
        runs: dict[tuple[str, int], list[dict[str, object]]] = {s: [] for s in settings}
        for repeat in range(args.repeats):
            for executor, processes in settings[repeat % len(settings):] + settings[:repeat % len(settings)]:
                run = (run_tff(args.tff_python, args.rounds) if (executor, processes) == TFF
                       else run_worker(clients, executor, processes, rounds))
                runs[(executor, processes)].append(dict(run, repeat=repeat, order=len(everything)))
                everything.append(runs[(executor, processes)][-1])
        examples = int(runs[settings[0]][0]["examples"])  # type: ignore[call-overload]
        loops = runs.get(("loop", 1))
        for own in runs.values():
            print(row(own, examples, statistics.median(process_medians(loops)) if loops else None), flush=True)
        if TFF in runs:
            tff_lines = speedups_over_tff(runs)
    if tff_lines:
        print("\n" + "\n".join(tff_lines))
    figures = machine.probe()
    print("\n" + machine.describe(figures))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"rounds": everything, "machine": figures}, indent=1))


if __name__ == "__main__":
    main()
