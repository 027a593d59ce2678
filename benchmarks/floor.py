"""The least a round of the vectorized executor's design can take on this machine: the map, its products and its steps.

    python -m benchmarks.floor [--clients 3400] [--passes 3] [--rounds 5]

In dual form (`fl_blocks.execution.dual`) every round must, for every client
of the round, map its uint8 pixels to float32 with the dataset's map
(`pixels_to_float32`, which sees whole rows); compute ``X W0``, its rows times
the server kernel, over the columns its rows vary in (its span, from the first
varying column to the last); run its lockstep steps; and compute ``U X``, its
kernel update, over the same columns.

The map, ``X W0`` and ``U X`` are timed on their own, after an untimed warm-up pass, with BLAS kept to one
thread (threadpoolctl, from the ``test`` or ``parallel`` extra):

- over the round's real rows only (the executor's groups also hold padding
  rows, 8% more at 3,400 clients);
- in blocks of clients of up to `MAX_CHUNK_ROWS` rows in all, like the
  executor's groups (which sort clients by batch count first), each block's
  products right after its map, while its rows are warm;
- ``U X`` as one product per client (the executor makes one per batch count in
  a group; the 3,400 calls cost about 4 ms more).

The same three are then timed with every core busy at once: the clients cut
into one share of about equal rows per core, each share in a forked process of
its own with one BLAS thread, after an untimed warm-up pass, every pass started
by all shares together. The cores slow each other (here the mean share took
24-37% longer than half the one-core time, over three runs), so the shares'
times, not the one-core sum spread over the cores, are what a round on all
cores must spend on them. Their mean is the bound: it estimates the least the
busiest core could take with this work perfectly rebalanced (a different cut
also changes the blocks' spans a little).

The steps are timed inside real rounds of the tutorial's process: each
`train_dual` call less its products and the placing of its blank columns,
medians of `--rounds` rounds after three warm-up rounds. Prints the medians
(ms), and the mean share with the steps shared perfectly over the cores: a
lower bound on a round of this design here, which leaves out gathering the
rows, bookkeeping and writing the updates. It holds where a round's rows are
not kept between rounds (3,400 clients: their float32 rows would take
1.16 GB); at 10 and 105 clients the executor keeps each group's varying
columns and maps nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import threading
import time
from typing import Any, Callable

import numpy as np

from benchmarks import population
from benchmarks.machine import one_thread
from benchmarks.round_worker import tutorial_process
from fl_blocks.execution import dual, vectorized
from fl_blocks.execution.columns import client_span
from fl_blocks.execution.layout import MAX_CHUNK_ROWS
from fl_blocks.execution.processes import can_fork, run_shares, shared_empty, usable_cores
from fl_blocks.simulation.datasets import pixels_to_float32

#: A client's update has this many rows (classes) in ``U``.
CLASSES = 10
#: How long a share waits for the others to start a pass before giving up (one was killed; one that fails aborts
#: the wait). A pass over 3,400 clients takes about 0.15 s.
BARRIER_SECONDS = 120.0


def blocks(offsets: np.ndarray, most: int) -> list[tuple[int, int]]:
    """Client indices ``(first, end)`` grouped so that each group has at most `most` rows (or one client)."""
    found, first = [], 0
    for end in range(1, len(offsets)):
        if end - 1 > first and offsets[end] - offsets[first] > most:
            found.append((first, end - 1))
            first = end - 1
    return found + [(first, len(offsets) - 1)]


def map_rows(pixels: np.ndarray, labels: np.ndarray, a: int, b: int) -> np.ndarray:
    """Rows ``a:b`` through the dataset's map, as float32 ``(b - a, dim)``."""
    rows: np.ndarray = pixels_to_float32({"label": labels[a:b], "pixels": pixels[a:b]})["pixels"].reshape(b - a, -1)
    return rows


def block_spans(offsets: np.ndarray, pixels: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    """Per block of `blocks`, the columns ``(first, end)`` its clients' real rows vary in, joined (after the map)."""
    found = []
    for first, end in blocks(offsets, MAX_CHUNK_ROWS):
        a, b = int(offsets[first]), int(offsets[end])
        if a == b:  # (an empty share's one block)
            found.append((0, 0))
            continue
        x = map_rows(pixels, labels, a, b)
        spans = [client_span(x[int(offsets[c]) - a:int(offsets[c + 1]) - a]) for c in range(first, end) if offsets[c + 1] > offsets[c]]
        lo, hi = min((s.first for s in spans), default=0), max((s.end for s in spans), default=0)
        found.append((min(lo, hi), max(lo, hi)))  # (no client varies: none)
    return found


def one_pass(offsets: np.ndarray, pixels: np.ndarray, labels: np.ndarray, kernel: np.ndarray,
             updates: list[np.ndarray], spans: list[tuple[int, int]]) -> tuple[float, float, float]:
    """Seconds of one core spent mapping, on ``X W0`` and on ``U X`` over every client of the round (`spans` from `block_spans`)."""
    mapping = forward = backward = 0.0
    for (first, end), (lo, hi) in zip(blocks(offsets, MAX_CHUNK_ROWS), spans, strict=True):
        a, b = int(offsets[first]), int(offsets[end])
        if a == b:
            continue
        start = time.perf_counter()
        x = map_rows(pixels, labels, a, b)
        mapped = time.perf_counter()
        np.matmul(x[:, lo:hi], kernel[lo:hi])
        forwarded = time.perf_counter()
        for c in range(first, end):
            np.matmul(updates[c], x[int(offsets[c]) - a:int(offsets[c + 1]) - a, lo:hi])
        done = time.perf_counter()
        mapping += mapped - start
        forward += forwarded - mapped
        backward += done - forwarded
    return mapping, forward, backward


def shares_by_rows(offsets: np.ndarray, count: int) -> list[tuple[int, int]]:
    """Client indices ``(first, end)`` cut into `count` runs of about equal rows (a run may be empty)."""
    targets = offsets[-1] * np.arange(1, count) / count
    after = np.clip(np.searchsorted(offsets, targets), 1, len(offsets) - 1)  # the first client boundary at or after each
    nearer = np.where(targets - offsets[after - 1] < offsets[after] - targets, after - 1, after)
    cuts = [0] + nearer.tolist() + [len(offsets) - 1]
    return [(int(a), int(b)) for a, b in zip(cuts, cuts[1:])]


def at_once(offsets: np.ndarray, pixels: np.ndarray, labels: np.ndarray, kernel: np.ndarray, updates: list[np.ndarray],
            count: int, passes: int) -> np.ndarray:
    """Per share of `shares_by_rows`, the medians of `passes` `one_pass` timings ``(map, X W0, U X)``, with every
    share in a process of its own (forked), all at once, each with one BLAS thread: an untimed warm-up pass, then
    each pass started by all shares together."""
    cuts = shares_by_rows(offsets, count)
    parts = []
    for first, end in cuts:
        a, b = int(offsets[first]), int(offsets[end])
        own = offsets[first:end + 1] - a
        parts.append((own, pixels[a:b], labels[a:b], updates[first:end], block_spans(own, pixels[a:b], labels[a:b])))
    seconds = shared_empty((count, passes, 3), np.float64)
    failed = shared_empty((count,), np.int8)
    failed[:] = 0
    together = multiprocessing.get_context("fork").Barrier(count) if count > 1 and can_fork() else None

    def work(share: list[int]) -> None:
        try:
            for i in share:
                own, rows, own_labels, own_updates, spans = parts[i]
                one_pass(own, rows, own_labels, kernel, own_updates, spans)  # warm-up, not timed
                for p in range(passes):
                    if together is not None:  # every share starts each pass at once, so all of them overlap
                        together.wait(timeout=BARRIER_SECONDS)
                    seconds[i, p] = one_pass(own, rows, own_labels, kernel, own_updates, spans)
        except threading.BrokenBarrierError:
            if not failed.any():  # no share failed: one waited longer than BARRIER_SECONDS
                raise
            # else stop quietly: the failed share's own error is the one run_shares raises
        except BaseException:
            failed[share] = 1
            if together is not None:  # the others stop waiting for this share at once
                together.abort()
            raise

    run_shares(work, [[i] for i in range(count)])
    return np.median(seconds, axis=1)


#: What `train_dual` calls besides its steps: the two products and the placing of the blank columns.
NOT_STEPS = ("forward", "forward_by_span", "forward_by_columns", "_by_batch_count", "fill_outside", "with_constant_columns")


def step_seconds(num_clients: int, rounds: int) -> list[float]:
    """Per round, seconds spent in the lockstep steps of the tutorial's process (one process), after three warm-up rounds."""
    client_datasets = population.datasets(num_clients)
    process = tutorial_process()
    state = process.initialize()
    for _ in range(3):
        state, _ = process.next(state, client_datasets)
    spent = {"steps": 0.0}

    def timed(fn: Callable[..., Any], sign: float) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                spent["steps"] += sign * (time.perf_counter() - start)
        return call

    patches = [(dual, name, -1.0) for name in NOT_STEPS] + [(vectorized, "train_dual", 1.0)]  # as the executor calls them
    saved = [getattr(module, name) for module, name, _ in patches]
    try:
        for (module, name, sign), fn in zip(patches, saved):
            setattr(module, name, timed(fn, sign))
        per_round = []
        for _ in range(rounds):
            spent["steps"] = 0.0
            state, _ = process.next(state, client_datasets)
            per_round.append(spent["steps"])
    finally:
        for (module, name, _), fn in zip(patches, saved):
            setattr(module, name, fn)
    return per_round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=3400)
    parser.add_argument("--passes", type=int, default=3, help="passes over the round's clients; medians are printed")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the process whose steps are timed")
    args = parser.parse_args()
    if min(args.clients, args.passes, args.rounds) < 1:
        parser.error(f"--clients, --passes and --rounds must be at least 1, got {args.clients}, {args.passes} and {args.rounds}")
    _, offsets, pixels, labels = population.client_arrays(args.clients)
    pixels = pixels.reshape(len(pixels), -1)
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((pixels.shape[1], CLASSES)).astype(np.float32)
    updates = [rng.standard_normal((CLASSES, int(n))).astype(np.float32) for n in np.diff(offsets)]
    spans = block_spans(offsets, pixels, labels)
    passes = one_thread(lambda: [one_pass(offsets, pixels, labels, kernel, updates, spans) for _ in range(args.passes + 1)][1:])  # after a warm-up
    if passes is None:
        raise SystemExit("benchmarks.floor needs threadpoolctl (the test or parallel extra) to keep BLAS to one thread")
    mapping, forward, backward = (float(np.median([p[i] for p in passes])) for i in range(3))
    cores = usable_cores()
    total = mapping + forward + backward
    print(f"{args.clients} clients, {int(offsets[-1]):,} examples, one core alone (medians of {args.passes} passes): "
          f"map {mapping * 1e3:.3g} ms, X W0 {forward * 1e3:.3g} ms, U X {backward * 1e3:.3g} ms; "
          f"{total * 1e3:.3g} ms in all, so at least {total / cores * 1e3:.3g} ms a round on {cores} cores if shared perfectly, "
          "before any step (where a round's rows are not kept, as at 3,400 clients).")
    bound = total / cores  # (one core, or no fork: the one-core sum spread over the cores)
    if cores > 1 and can_fork():
        shares = at_once(offsets, pixels, labels, kernel, updates, cores, args.passes)
        busiest, bound = float(shares.sum(axis=1).max()), float(shares.sum(axis=1).mean())
        each = ", ".join(f"{a * 1e3:.3g} + {b * 1e3:.3g} + {c * 1e3:.3g}" for a, b, c in shares)
        print(f"The same on {cores} cores at once, a process each over its share of the rows (map + X W0 + U X, medians "
              f"of {args.passes} passes): {each} ms. The busiest share took {busiest * 1e3:.3g} ms, the mean share "
              f"{bound * 1e3:.3g} ms; with this work perfectly rebalanced, at least {bound * 1e3:.3g} ms a round, before any step.")
    steps = one_thread(lambda: statistics.median(step_seconds(args.clients, args.rounds)))
    assert steps is not None
    print(f"The lockstep steps in real rounds: {steps * 1e3:.3g} ms of one core (median of {args.rounds} rounds); "
          f"with them shared perfectly, at least {(bound + steps / cores) * 1e3:.3g} ms a round on {cores} cores.")


if __name__ == "__main__":
    main()
