"""Times rounds of the tutorial's algorithm for one setting, in a process of its own; prints JSON.

    python -m benchmarks.round_worker --clients 3400 --executor vectorized --processes 1 --rounds 5

A round is ``process.next(state, client_datasets)`` as a user calls it: the
datasets are ``create_dataset_for_client(c).batch(20).map(batch_format_fn)``
over a uint8-backed `ClientData` (see `benchmarks.population`), so the time
includes batching, the uint8 -> float32 maps and stacking. The first
`--warmup` rounds (2) are not among the timed ones and are reported on their own
(``first_round_seconds``): the vectorized executor steps clients it sees for the
first time and computes and keeps their Gram matrices in the second round. The peak RSS is this whole process's
(``ru_maxrss``): the data, the model and every round.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from benchmarks import population
from fl_blocks.execution import vectorized
from fl_blocks.algorithms import build_fed_avg_with_clipping
from fl_blocks.models import SoftmaxRegression
from fl_blocks.optimizers import build_sgdm
from fl_blocks.templates import LearningProcess


def tutorial_process(executor: str = "auto", processes: int = 1) -> LearningProcess:
    """The tutorial's FedAvg with clipping: softmax 784 -> 10, client SGD 0.01 clipped at 1, server SGD 1.0."""
    return build_fed_avg_with_clipping(lambda: SoftmaxRegression(784, 10), build_sgdm(0.01), build_sgdm(1.0), 1.0,
                                       executor=executor, processes=processes)


def time_rounds(num_clients: int, executor: str, processes: int, rounds: int, warmup: int) -> dict[str, object]:
    """Per-round seconds of `rounds` timed rounds after `warmup` untimed ones, and the data's size."""
    client_datasets = population.datasets(num_clients)
    shares_used = [1]
    run_shares = vectorized.run_shares

    def counting_run_shares(work, shares):  # type: ignore[no-untyped-def]
        shares_used.append(len(shares))
        return run_shares(work, shares)

    vectorized.run_shares = counting_run_shares  # records how many processes really ran
    process = tutorial_process(executor, processes)
    state = process.initialize()
    seconds = []
    for _ in range(warmup + rounds):
        start = time.perf_counter()
        state, _ = process.next(state, client_datasets)
        seconds.append(time.perf_counter() - start)
    first, seconds = seconds[:warmup], seconds[warmup:]
    return {"clients": num_clients, "executor": executor, "processes": processes, "first_round_seconds": first,
            "processes_used": max(shares_used), "examples": population.num_examples(client_datasets), "round_seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--executor", choices=("loop", "vectorized"), required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(time_rounds(args.clients, args.executor, args.processes, args.rounds, args.warmup)))


if __name__ == "__main__":
    main()
