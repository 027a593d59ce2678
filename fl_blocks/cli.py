"""The ``fl-blocks`` command: ``fl-blocks train`` runs the tutorial's algorithm.

On the embedded synthetic data by default: 10 training clients, batch 20,
client SGD 0.01 with gradient clipping at 1.0, server SGD 1.0. Each round
prints its time and the global model's loss and accuracy on held-out clients.

>>> _ = main(["train", "--rounds", "1", "--clients", "2"])  # doctest: +ELLIPSIS
synthetic EMNIST-like data: 2 training clients, ... test examples from 20 held-out clients
round   0 ...
round   1  time ... ms  test loss ...  test accuracy ...
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import IO, Any, Callable, Optional, Sequence

import numpy as np

from fl_blocks.algorithms import build_fed_avg_with_clipping
from fl_blocks.models import SoftmaxRegression
from fl_blocks.models.model import evaluate
from fl_blocks.optimizers import build_sgdm
from fl_blocks.simulation.datasets import Dataset, synthetic

__all__ = ["main", "preprocess"]

NUM_HELD_OUT = 20


def preprocess(dataset: Dataset, batch_size: int) -> Dataset:
    """The tutorial's ``preprocess``: batch, then flatten pixels and reshape labels."""

    def batch_format_fn(element: Any) -> tuple[np.ndarray, np.ndarray]:
        return (np.reshape(element["pixels"], [-1, 784]), np.reshape(element["label"], [-1, 1]))

    return dataset.batch(batch_size).map(batch_format_fn)


def _number(kind: Callable[[str], Any], minimum: float, inclusive: bool) -> Callable[[str], Any]:
    """An argparse type: a finite `kind` number above `minimum` (or equal to it when `inclusive`)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a valid {kind.__name__}: {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if inclusive else '>'} {minimum}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``fl-blocks`` argument parser."""
    parser = argparse.ArgumentParser(prog="fl-blocks", description="TFF's composable learning blocks in NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="run FedAvg with client gradient clipping (the tutorial's algorithm) on the embedded synthetic data",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("--rounds", type=_number(int, 1, True), default=30, help="training rounds")
    train.add_argument("--clients", type=_number(int, 1, True), default=10, help="training clients, the same each round")
    train.add_argument("--batch-size", type=_number(int, 1, True), default=20, help="client batch size")
    train.add_argument("--client-lr", type=_number(float, 0, True), default=0.01, help="client SGD learning rate")
    train.add_argument("--server-lr", type=_number(float, 0, True), default=1.0, help="server SGD learning rate")
    train.add_argument("--clip-norm", type=_number(float, 0, False), default=1.0, help="client gradient global-norm clip")
    train.add_argument("--seed", type=_number(int, 0, True), default=0, help="seed of the initial model weights")
    return parser


def train(args: argparse.Namespace, out: Optional[IO[str]] = None) -> list[float]:
    """Runs the training job, printing to `out` (stdout); returns the test accuracy after each round."""
    out = out or sys.stdout
    train_data, test_data = synthetic.load_data(num_clients=args.clients + NUM_HELD_OUT)
    train_ids = train_data.client_ids[: args.clients]
    held_out = test_data.client_ids[args.clients:]
    client_datasets = [preprocess(train_data.create_dataset_for_client(c), args.batch_size) for c in train_ids]
    test_batches = [b for c in held_out for b in preprocess(test_data.create_dataset_for_client(c), 1000)]

    model_fn: Callable[[], SoftmaxRegression] = lambda: SoftmaxRegression(784, 10, seed=args.seed)  # noqa: E731
    process = build_fed_avg_with_clipping(
        model_fn, build_sgdm(args.client_lr), build_sgdm(args.server_lr), clip_norm=args.clip_norm
    )
    model = model_fn()
    state = process.initialize()
    loss, accuracy, count = evaluate(model, process.get_model_weights(state).trainable, test_batches)
    print(f"synthetic EMNIST-like data: {len(train_ids)} training clients, {count} test examples "
          f"from {len(held_out)} held-out clients", file=out)
    print(f"round   0                 test loss {loss:.4f}  test accuracy {accuracy:.4f}", file=out)
    accuracies = []
    for round_num in range(1, args.rounds + 1):
        start = time.perf_counter()
        state, metrics = process.next(state, client_datasets)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        loss, accuracy, _ = evaluate(model, process.get_model_weights(state).trainable, test_batches)
        accuracies.append(accuracy)
        flag = "  (update rejected: non-finite)" if metrics["finalizer"]["update_non_finite"] else ""
        print(f"round {round_num:3d}  time {elapsed_ms:7.2f} ms  test loss {loss:.4f}  test accuracy {accuracy:.4f}{flag}", file=out)
    return accuracies


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs ``fl-blocks`` with `argv` (default: the command line); returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "train":
        train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
