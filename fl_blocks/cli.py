"""The ``fl-blocks`` command: ``fl-blocks train`` runs the tutorial's algorithm.

On the embedded synthetic data by default: 10 training clients, batch 20,
client SGD 0.01 with gradient clipping at 1.0, server SGD 1.0. Each round
prints its time and the global model's loss and accuracy on held-out clients.
``--data`` picks real EMNIST instead (digits only, as in the tutorial): ``emnist``
(TFF's file, downloaded once into ``--cache-dir``), ``sqlite:PATH`` (a file in
TFF's EMNIST format, ``.sqlite`` or ``.sqlite.lzma``) or ``leaf:DIR`` (LEAF's
FEMNIST JSON folder); these are evaluated on all clients of their test split.
``--sample-clients N`` draws a new cohort of N training clients every round with
`build_uniform_sampling_fn` (seeded by ``--sampling-seed``), as TFF's simulations do.

>>> _ = main(["train", "--rounds", "1", "--clients", "2"])  # doctest: +ELLIPSIS
synthetic EMNIST-like data: 2 training clients, ... test examples from 20 held-out clients
round   0 ...
round   1  time ... ms  test loss ...  test accuracy ...
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time
from typing import IO, Any, Callable, Optional, Sequence

import numpy as np

from fl_blocks.algorithms import build_fed_avg_with_clipping
from fl_blocks.models import SoftmaxRegression
from fl_blocks.models.model import evaluate
from fl_blocks.optimizers import build_sgdm
from fl_blocks.cli_data import DataError, load_train_test, parse_data_spec
from fl_blocks.simulation.datasets import Dataset
from fl_blocks.simulation.sampling import build_uniform_sampling_fn

__all__ = ["main", "preprocess", "cohorts"]


def batch_format_fn(element: Any) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's batch format: flattened pixels [B, 784] and labels [B, 1]."""
    return (np.reshape(element["pixels"], [-1, 784]), np.reshape(element["label"], [-1, 1]))


def preprocess(dataset: Dataset, batch_size: int) -> Dataset:
    """The tutorial's ``preprocess``: batch, then flatten pixels and reshape labels.

    One module-level `batch_format_fn` for every client lets the vectorized
    executor map all clients' rows at once.
    """
    return dataset.batch(batch_size).map(batch_format_fn)


def _number(kind: Callable[[str], Any], minimum: float, inclusive: bool, maximum: float = math.inf) -> Callable[[str], Any]:
    """An argparse type: a finite `kind` number above `minimum` (or equal to it when `inclusive`), at most `maximum`."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a valid {kind.__name__}: {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if inclusive else '>'} {minimum}, got {text}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``fl-blocks`` argument parser."""
    parser = argparse.ArgumentParser(prog="fl-blocks", description="TFF's composable learning blocks in NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="run FedAvg with client gradient clipping (the tutorial's algorithm) on synthetic or EMNIST data",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("--data", type=parse_data_spec, default="synthetic", metavar="{synthetic,emnist,leaf:DIR,sqlite:PATH}",
                       help="training data: embedded synthetic, TFF's EMNIST (download), a LEAF FEMNIST folder, "
                       "or a TFF-format EMNIST .sqlite[.lzma] file; real data is digits only")
    train.add_argument("--cache-dir", type=pathlib.Path, default=None,
                       help="emnist: the download cache (None: ~/.cache/fl_blocks); sqlite:*.lzma: where the decompressed "
                       "file is kept and reused (None: a temporary folder, removed after loading)")
    train.add_argument("--rounds", type=_number(int, 1, True), default=30, help="training rounds")
    train.add_argument("--clients", type=_number(int, 1, True), default=10,
                       help="training clients, the first N and the same each round (synthetic: also the population sampled from)")
    train.add_argument("--sample-clients", type=_number(int, 1, True), default=None, metavar="N",
                       help="sample N training clients uniformly each round (TFF's build_uniform_sampling_fn) instead of the first --clients")
    train.add_argument("--sampling-seed", type=_number(int, 0, True, 2**32 - 1), default=None, metavar="S",
                       help="seed of --sample-clients, 0 to 2**32-1 (None: different cohorts every run)")
    train.add_argument("--batch-size", type=_number(int, 1, True), default=20, help="client batch size")
    train.add_argument("--client-lr", type=_number(float, 0, True), default=0.01, help="client SGD learning rate")
    train.add_argument("--server-lr", type=_number(float, 0, True), default=1.0, help="server SGD learning rate")
    train.add_argument("--clip-norm", type=_number(float, 0, False), default=1.0, help="client gradient global-norm clip")
    train.add_argument("--seed", type=_number(int, 0, True), default=0, help="seed of the initial model weights")
    return parser


def cohorts(args: argparse.Namespace, population: list[str]) -> Callable[[int], list[str]]:
    """Round number -> its training clients: sampled with `build_uniform_sampling_fn`, else the first ``--clients``."""
    if args.sample_clients is None:
        if args.clients > len(population):
            raise DataError(f"--clients {args.clients} but the data has only {len(population)} training clients")
        return lambda round_num: population[: args.clients]
    if args.sample_clients > len(population):
        raise DataError(f"--sample-clients {args.sample_clients} but the data has only {len(population)} training clients"
                        + (" (synthetic data: --clients sets how many)" if args.data[0] == "synthetic" else ""))
    sample_fn = build_uniform_sampling_fn(population, random_seed=args.sampling_seed)
    return lambda round_num: sample_fn(round_num, args.sample_clients)


def train(args: argparse.Namespace, out: Optional[IO[str]] = None) -> list[float]:
    """Runs the training job, printing to `out` (stdout); returns the test accuracy after each round."""
    out = out or sys.stdout
    train_data, test_data, description = load_train_test(args.data, args.cache_dir, args.clients)
    synthetic_data = args.data[0] == "synthetic"
    population = train_data.client_ids[: args.clients] if synthetic_data else train_data.client_ids
    cohort = cohorts(args, population)
    held_out = test_data.client_ids[args.clients:] if synthetic_data else test_data.client_ids
    test_batches = [b for c in held_out for b in preprocess(test_data.create_dataset_for_client(c), 1000)]
    datasets: dict[str, Dataset] = {}

    def client_datasets(round_num: int) -> list[Dataset]:
        ids = cohort(round_num)
        for c in ids:
            if c not in datasets:
                datasets[c] = preprocess(train_data.create_dataset_for_client(c), args.batch_size)
        return [datasets[c] for c in ids]

    model_fn: Callable[[], SoftmaxRegression] = lambda: SoftmaxRegression(784, 10, seed=args.seed)  # noqa: E731
    process = build_fed_avg_with_clipping(
        model_fn, build_sgdm(args.client_lr), build_sgdm(args.server_lr), clip_norm=args.clip_norm
    )
    model = model_fn()
    state = process.initialize()
    loss, accuracy, count = evaluate(model, process.get_model_weights(state).trainable, test_batches)
    first = f" (the first of {len(population)})" if len(population) > args.clients else ""
    clients = (f"{args.clients} training clients{first}" if args.sample_clients is None else
               f"{args.sample_clients} of {len(population)} training clients sampled per round (seed {args.sampling_seed})")
    print(f"{description}: {clients}, {count} test examples from {len(held_out)} "
          f"{'held-out' if synthetic_data else 'test'} clients", file=out)
    print(f"round   0                 test loss {loss:.4f}  test accuracy {accuracy:.4f}", file=out)
    accuracies = []
    for round_num in range(1, args.rounds + 1):
        start = time.perf_counter()
        state, metrics = process.next(state, client_datasets(round_num))
        elapsed_ms = (time.perf_counter() - start) * 1e3
        loss, accuracy, _ = evaluate(model, process.get_model_weights(state).trainable, test_batches)
        accuracies.append(accuracy)
        flag = "  (update rejected: non-finite)" if metrics["finalizer"]["update_non_finite"] else ""
        print(f"round {round_num:3d}  time {elapsed_ms:7.2f} ms  test loss {loss:.4f}  test accuracy {accuracy:.4f}{flag}", file=out)
    return accuracies


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs ``fl-blocks`` with `argv` (default: the command line); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        if args.sampling_seed is not None and args.sample_clients is None:
            parser.error("--sampling-seed needs --sample-clients")
        try:
            train(args)
        except DataError as error:  # missing or corrupt data, too few clients, offline download
            parser.error(f"--data {':'.join(filter(None, args.data))}: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
