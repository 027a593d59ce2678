"""Median time of one round of the tutorial's algorithm (`process.next`), as a user calls it.

    python benchmarks/bench_round.py [--rounds 50]

Uses the tutorial's 10 real EMNIST clients from ../shared/data when present,
else 10 synthetic clients. TFF's time comes from the shared reference file,
recorded on this machine kind (its steady-state last round; not run side by side here).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fl_blocks.algorithms import build_fed_avg_with_clipping  # noqa: E402
from fl_blocks.models import SoftmaxRegression  # noqa: E402
from fl_blocks.optimizers import build_sgdm  # noqa: E402

SHARED = ROOT.parent / "shared"


def emnist_clients(batch: int):
    with np.load(SHARED / "tff_reference" / "seed_clip_r3.npz", allow_pickle=False) as ref:
        ids, tff_seconds = list(ref["client_ids"]), ref["round_seconds"]
    with np.load(SHARED / "data" / "femnist_leaf_subset.npz", allow_pickle=False) as data:
        all_ids, offsets = list(data["train_client_ids"]), data["train_offsets"]
        pixels, labels = data["train_pixels"], data["train_labels"]
    clients = []
    for cid in ids:
        i = all_ids.index(cid)
        px, lb = pixels[offsets[i]:offsets[i + 1]], labels[offsets[i]:offsets[i + 1]]
        x = (px[lb < 10].astype(np.float32) / np.float32(255)).reshape(-1, 784)
        y = lb[lb < 10].astype(np.int32).reshape(-1, 1)
        clients.append([(x[s:s + batch], y[s:s + batch]) for s in range(0, len(x), batch)])
    return "10 real EMNIST clients", clients, float(tff_seconds[-1])  # TFF's steady state: its last round


def synthetic_clients(batch: int):
    from fl_blocks.cli import preprocess
    from fl_blocks.simulation.datasets import synthetic

    train, _ = synthetic.load_data(num_clients=10)
    return "10 synthetic clients", [list(preprocess(train.create_dataset_for_client(c), batch)) for c in train.client_ids], None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    have_shared = (SHARED / "data" / "femnist_leaf_subset.npz").exists()
    label, clients, tff_round = emnist_clients(20) if have_shared else synthetic_clients(20)
    process = build_fed_avg_with_clipping(lambda: SoftmaxRegression(784, 10), build_sgdm(0.01), build_sgdm(1.0), 1.0)
    state = process.initialize()
    times = []
    for _ in range(args.rounds + 3):
        start = time.perf_counter()
        state, _ = process.next(state, clients)
        times.append(time.perf_counter() - start)
    times = times[3:]  # warm-up
    examples = sum(len(y) for c in clients for _, y in c)
    median = statistics.median(times)
    result = {
        "data": label,
        "examples_per_round": examples,
        "rounds_timed": len(times),
        "median_round_ms": round(median * 1e3, 3),
        "p10_round_ms": round(sorted(times)[len(times) // 10] * 1e3, 3),
        "p90_round_ms": round(sorted(times)[9 * len(times) // 10] * 1e3, 3),
        "examples_per_s": round(examples / median),
    }
    if tff_round:
        result["tff_recorded_round_ms"] = round(tff_round * 1e3, 1)
        result["speedup_vs_recorded_tff"] = round(tff_round / median, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
