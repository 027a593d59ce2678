"""FedAvg with a client learning-rate schedule (TFF's ``build_weighted_fed_avg_with_optimizer_schedule``).

The client work's state is an int32 round counter ``r`` starting at 0. In
round ``r`` every client trains with ``client_optimizer_fn(lr)``, made new,
where ``lr = float32(client_learning_rate_fn(r))``; clients are weighted by
their number of examples. Metrics add ``client_work.client_learning_rate``.

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> from fl_blocks.optimizers import build_sgdm
>>> process = build_weighted_fed_avg_with_optimizer_schedule(
...     lambda: SoftmaxRegression(2, 2), lambda r: 0.1 * 0.5**r, lambda lr: build_sgdm(lr))
>>> batch = (np.ones((2, 2), np.float32), np.array([[0], [1]], np.int32))
>>> state = process.next(process.initialize(), [[batch]]).state
>>> int(state.client_work), process.next(state, [[batch]]).metrics["client_work"]["client_learning_rate"]
(1, np.float32(0.05))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np

from fl_blocks.algorithms.composition import (
    compose_algorithm,
    weighted_or_unweighted_mean,
)
from fl_blocks.models.model import Model
from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.optimizers.sgdm import build_sgdm
from fl_blocks.templates.client_works import ClientResult, ClientWorkProcess
from fl_blocks.templates.distributors import DistributionProcess
from fl_blocks.templates.learning_process import LearningProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput
from fl_blocks.templates.model_delta_client_work import (
    ClientWeighting,
    MetricsAggregator,
    check_optimizer,
    client_results_and_metrics,
    model_and_weights_spec,
    model_delta_update,
)

__all__ = ["build_scheduled_client_work", "build_weighted_fed_avg_with_optimizer_schedule"]


def build_scheduled_client_work(
    model_fn: Callable[[], Model],
    learning_rate_fn: Callable[[int], float],
    optimizer_fn: Callable[[float], Any],
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> ClientWorkProcess:
    """Model-delta client work whose optimizer is ``optimizer_fn(learning_rate_fn(round_num))``."""
    if not callable(learning_rate_fn) or not callable(optimizer_fn):
        raise TypeError("client_learning_rate_fn (round -> rate) and client_optimizer_fn (rate -> Optimizer) must be callables")
    check_optimizer(optimizer_fn(1.0), "client_optimizer_fn(learning_rate)")
    model, weights_spec = model_and_weights_spec(model_fn)

    def initialize_fn() -> np.int32:
        return np.int32(0)

    def next_fn(state: np.int32, weights: Sequence[ModelWeights], client_data: Sequence[Any]) -> MeasuredProcessOutput:
        learning_rate = np.float32(learning_rate_fn(int(state)))
        optimizer = check_optimizer(optimizer_fn(float(learning_rate)), "client_optimizer_fn(learning_rate)")

        def client_update(i: int, dataset: Any) -> tuple[ClientResult, Any]:
            return model_delta_update(
                model, optimizer, optimizer.initialize(weights_spec.trainable), weights[i], dataset, i,
                ClientWeighting.NUM_EXAMPLES,
            )

        results, measurements = client_results_and_metrics(client_data, client_update, metrics_aggregator)
        measurements["client_learning_rate"] = learning_rate
        return MeasuredProcessOutput(np.int32(state + 1), results, measurements)

    return ClientWorkProcess(initialize_fn, next_fn, weights_spec=weights_spec, update_spec=weights_spec.trainable)


def build_weighted_fed_avg_with_optimizer_schedule(
    model_fn: Callable[[], Model],
    client_learning_rate_fn: Callable[[int], float],
    client_optimizer_fn: Callable[[float], Any],
    server_optimizer_fn: Any = None,
    model_distributor: Optional[DistributionProcess] = None,
    model_aggregator: Optional[Any] = None,
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> LearningProcess:
    """FedAvg (weighted by examples) whose client learning rate follows `client_learning_rate_fn(round_num)`."""
    client_work = build_scheduled_client_work(model_fn, client_learning_rate_fn, client_optimizer_fn, metrics_aggregator)
    server_optimizer = check_optimizer(server_optimizer_fn or build_sgdm(learning_rate=1.0), "server_optimizer_fn")
    return compose_algorithm(
        model_fn, client_work, server_optimizer, model_distributor, weighted_or_unweighted_mean(model_aggregator, True)
    )
