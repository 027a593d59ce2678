"""How far each executor's client updates are from an exact float64 oracle, on badly scaled random data.

    python -m benchmarks.accuracy [--trials 100] [--lr 0.01] [--fill 255]

Clients of 3-20 rows of 16 normal features, some leading columns set to
`--fill` (255: pixels left unscaled), 3 classes, batches of 2, 3 or 5, clip
1 or 1e6, plain client SGD at `--lr`. Prints the largest absolute difference
from `tests/oracle.py` (per example, float64) of the per-client loop, the
vectorized executor in dual form (``cache.DUAL = "always"``) and stepping
(``"never"``), and their largest update. On well-scaled data all three stay
within float32 rounding; with ``--fill 255`` SGD oscillates and float32 error
grows in every executor, most in the dual form (see the README's "Fidelity").
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import sys
from typing import Any

import numpy as np

from fl_blocks.algorithms import build_gradient_clipping_client_work
from fl_blocks.execution import cache
from fl_blocks.models import ModelWeights, SoftmaxRegression
from fl_blocks.optimizers import build_sgdm
from fl_blocks.placements import AllEqual
from fl_blocks.simulation.datasets import ClientData

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import oracle  # noqa: E402  (the tests' independent per-example oracle)

DIM, CLASSES = 16, 3


def _trial(seed: int, lr: float, fill: float) -> tuple[list[Any], list[Any], float]:
    """One random round's datasets, their batch lists, and its clip norm."""
    rng = np.random.default_rng(seed)
    columns = collections.OrderedDict()
    for i in range(int(rng.integers(1, 6))):
        rows = int(rng.choice([3, 5, 9, 13, 20]))
        x = rng.normal(size=(rows, DIM)).astype(np.float32)
        x[:, :int(rng.integers(0, 6))] = fill
        y = rng.integers(0, CLASSES, rows).astype(np.int32)
        x.flags.writeable = y.flags.writeable = False
        columns[f"c{i}"] = collections.OrderedDict(x=x, y=y)
    clip, batch = float(rng.choice([1.0, 1e6])), int(rng.choice([2, 3, 5]))
    train = ClientData.from_arrays(columns)
    datasets = [train.create_dataset_for_client(c).batch(batch).map(lambda e: (e["x"].reshape(-1, DIM), e["y"].reshape(-1, 1)))
                for c in columns]
    return datasets, [[(np.array(a), np.array(b)) for a, b in d] for d in datasets], clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--fill", type=float, default=255.0)
    args = parser.parse_args()
    worst = {"loop": 0.0, "vectorized, dual form": 0.0, "vectorized, stepping": 0.0}
    largest = 0.0
    for seed in range(args.trials):
        datasets, lists, clip = _trial(seed, args.lr, args.fill)
        rng = np.random.default_rng(seed + 10**6)
        weights = ModelWeights([rng.normal(size=(DIM, CLASSES)).astype(np.float32) * 0.01, np.zeros(CLASSES, np.float32)], [])
        exact = [np.float64(weights.trainable[0]) - oracle.local_training(*weights.trainable, batches, args.lr, clip)[0]
                 for batches in lists]
        largest = max(largest, max(float(np.abs(e).max(initial=0)) for e in exact))
        for name, executor, dual in (("loop", "loop", None), ("vectorized, dual form", "vectorized", "always"),
                                     ("vectorized, stepping", "vectorized", "never")):
            cache.clear()
            before, cache.DUAL = cache.DUAL, dual or cache.DUAL
            try:
                work = build_gradient_clipping_client_work(lambda: SoftmaxRegression(DIM, CLASSES), build_sgdm(args.lr), clip,
                                                           executor=executor)
                for _ in range(3):  # the dual form starts in the second round (see `fl_blocks.execution.cache`)
                    result = work.next((), AllEqual(weights), lists if executor == "loop" else datasets).result
            finally:
                cache.DUAL = before
            for i, e in enumerate(exact):
                worst[name] = max(worst[name], float(np.abs(np.asarray(result[i].update[0], np.float64) - e).max(initial=0)))
    print(f"{args.trials} trials, lr {args.lr}, fill {args.fill}: largest kernel update {largest:.3g}")
    for name, error in worst.items():
        print(f"  {name:24s} max |update - float64 oracle| = {error:.3g}")


if __name__ == "__main__":
    main()
