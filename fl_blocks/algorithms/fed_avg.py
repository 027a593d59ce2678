"""Federated Averaging (TFF's ``build_weighted_fed_avg`` and ``build_unweighted_fed_avg``).

Each round::

    broadcast w to the clients
    client i: train locally from w with the client optimizer; update_i = w - w_i
              weight_i = num_examples_i (NUM_EXAMPLES) or 1 (UNIFORM)
    server:   u = sum_i weight_i update_i / sum_i weight_i    (unweighted: sum_i update_i / #clients)
              w = server_optimizer.next(w, u)                  (default SGD, lr 1.0: w - u)

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> from fl_blocks.optimizers import build_sgdm
>>> process = build_weighted_fed_avg(lambda: SoftmaxRegression(2, 2), client_optimizer_fn=build_sgdm(0.1))
>>> batch = (np.ones((2, 2), np.float32), np.array([[0], [1]], np.int32))
>>> output = process.next(process.initialize(), [[batch], [batch, batch]])
>>> hparams = process.get_hparams(output.state)
>>> int(output.metrics["client_work"]["train"]["num_batches"]), dict(hparams["client_work"]), dict(hparams["finalizer"])
(3, {'learning_rate': 0.1}, {'learning_rate': 1.0})
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from fl_blocks.algorithms.composition import (
    compose_algorithm,
    weighted_or_unweighted_mean,
)
from fl_blocks.models.model import Model
from fl_blocks.optimizers.sgdm import build_sgdm
from fl_blocks.templates.distributors import DistributionProcess
from fl_blocks.templates.learning_process import LearningProcess
from fl_blocks.templates.model_delta_client_work import (
    ClientWeighting,
    MetricsAggregator,
    build_model_delta_client_work,
    check_optimizer,
)

__all__ = ["build_unweighted_fed_avg", "build_weighted_fed_avg"]


def build_weighted_fed_avg(
    model_fn: Callable[[], Model],
    client_optimizer_fn: Any,
    server_optimizer_fn: Any = None,
    *,
    client_weighting: ClientWeighting = ClientWeighting.NUM_EXAMPLES,
    model_distributor: Optional[DistributionProcess] = None,
    model_aggregator: Optional[Any] = None,
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> LearningProcess:
    """FedAvg with a weighted model aggregator (default `MeanFactory`) and `server_optimizer_fn`
    (default ``build_sgdm(learning_rate=1.0)``). Optimizers may be given as no-arg callables."""
    client_optimizer = check_optimizer(client_optimizer_fn, "client_optimizer_fn")
    server_optimizer = check_optimizer(server_optimizer_fn or build_sgdm(learning_rate=1.0), "server_optimizer_fn")
    client_work = build_model_delta_client_work(model_fn, client_optimizer, client_weighting, metrics_aggregator)
    return compose_algorithm(
        model_fn, client_work, server_optimizer, model_distributor, weighted_or_unweighted_mean(model_aggregator, True)
    )


def build_unweighted_fed_avg(
    model_fn: Callable[[], Model],
    client_optimizer_fn: Any,
    server_optimizer_fn: Any = None,
    model_distributor: Optional[DistributionProcess] = None,
    model_aggregator: Optional[Any] = None,
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> LearningProcess:
    """FedAvg with every client weighted 1.0 and an unweighted model aggregator (default `UnweightedMeanFactory`)."""
    return build_weighted_fed_avg(
        model_fn, client_optimizer_fn, server_optimizer_fn,
        client_weighting=ClientWeighting.UNIFORM,
        model_distributor=model_distributor,
        model_aggregator=weighted_or_unweighted_mean(model_aggregator, False),
        metrics_aggregator=metrics_aggregator,
    )
