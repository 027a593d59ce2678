"""The vectorized client work of `build_gradient_clipping_client_work`: all clients in lockstep chunks.

Chunks are trained one after another, or shared out between this process and
forked helpers when `processes` > 1; each writes its clients' updates into
shared result arrays, so the results are the same however the work is split.

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> from fl_blocks.optimizers import build_sgdm
>>> from fl_blocks.placements import AllEqual
>>> model = SoftmaxRegression(2, 2)
>>> batch = (np.ones((3, 2), np.float32), np.array([0, 1, 1]))
>>> result = client_results(model, build_sgdm(0.1), 1.0, AllEqual(model.initial_weights()), [[batch], []])
>>> result.stacked.update_weight.tolist()
[3.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fl_blocks.execution.layout import MAX_CHUNK_ROWS, client_source, group_clients, make_chunk
from fl_blocks.execution import cache
from fl_blocks.execution.dual import train_dual
from fl_blocks.execution.lockstep import plain_sgd_rate, train_chunk
from fl_blocks.execution.processes import balanced_shares, run_shares, shared_empty
from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.models.softmax import SoftmaxRegression
from fl_blocks.optimizers.optimizer import Optimizer
from fl_blocks.placements import AllEqual, StackedClients
from fl_blocks.templates.client_works import ClientResult

__all__ = ["client_results", "MIN_ROWS_PER_PROCESS"]

#: Fewer padded rows than this per process and helper processes would cost more than they save.
MIN_ROWS_PER_PROCESS = 16384


def client_results(model: SoftmaxRegression, optimizer: Optimizer, clip_norm: float,
                   weights: Sequence[ModelWeights] | AllEqual[ModelWeights], client_data: Sequence[Any],
                   processes: int = 1) -> StackedClients:
    """``StackedClients(ClientResult(update=[kernels, biases], update_weight))`` for every client.

    Plain SGD trains in dual form (`train_dual`) where `cache` has or will keep
    the clients' Gram matrices; everything else steps the weights (`train_chunk`).
    """
    sgd_rate, clip = plain_sgd_rate(optimizer), np.float32(clip_norm)
    sources = [client_source(model, dataset, i) for i, dataset in enumerate(client_data)]
    groups = group_clients(sources, MAX_CHUNK_ROWS)
    costs = [len(group) * len(group[0].sizes) * max(s.widest for s in group) for group in groups]  # padded rows
    processes = max(1, min(processes, len(groups), sum(costs) // MIN_ROWS_PER_PROCESS))
    keep_rows = sum(costs) * model.input_dim * 4 <= cache.ROWS_BYTES  # else a cycle of rounds would miss every time
    allocate = shared_empty if processes > 1 else np.empty
    count, shared = len(client_data), isinstance(weights, AllEqual)
    kernels = allocate((count, model.num_classes, model.input_dim), np.float32)  # transposed, as both paths compute them
    biases = allocate((count, model.num_classes), np.float32)
    num_examples = allocate((count,), np.float32)
    idle = [s.client for s in sources if not len(s.sizes)]  # no batches: in no group, a zero update
    kernels[idle], biases[idle], num_examples[idle] = 0, 0, 0

    def initial(clients: np.ndarray, transposed: bool) -> tuple[np.ndarray, np.ndarray]:
        """The clients' initial weights, stacked; the kernel ``(classes, dim)`` when `transposed`."""
        if shared:
            kernel, bias = weights.value.trainable  # type: ignore[union-attr]
            kernel = kernel.T if transposed else kernel
            return np.broadcast_to(kernel, (len(clients),) + kernel.shape), np.broadcast_to(bias, (len(clients),) + bias.shape)
        return (np.stack([weights[i].trainable[0].T if transposed else weights[i].trainable[0] for i in clients]),
                np.stack([weights[i].trainable[1] for i in clients]))

    def work(share: list[int]) -> None:
        for g in share:
            planned = cache.chunk_and_gram(model, groups[g], keep_rows) if sgd_rate is not None else None
            if planned is not None:
                kernels[planned.chunk.clients], biases[planned.chunk.clients] = train_dual(
                    planned.chunk, planned.grams, *initial(planned.chunk.clients, False), sgd_rate, clip, planned.columns, planned.span)
                chunk = planned.chunk
            else:
                chunk = make_chunk(model, groups[g])
                kernel, bias = initial(chunk.clients, True)
                trained = train_chunk(chunk, kernel, bias, optimizer, clip_norm)
                kernels[chunk.clients] = np.subtract(kernel, trained[0], out=trained[0])
                biases[chunk.clients] = np.subtract(bias, trained[1], out=trained[1])
            num_examples[chunk.clients] = chunk.num_examples

    if processes > 1 and sgd_rate is not None:  # helpers' caches die with them: fill this process's first
        cache.warm(model, groups, keep_rows)
    run_shares(work, balanced_shares(costs, processes) if processes > 1 else [list(range(len(groups)))])
    if sgd_rate is not None:
        cache.note_seen(groups)
    return StackedClients(ClientResult(update=[kernels.transpose(0, 2, 1), biases], update_weight=num_examples))
