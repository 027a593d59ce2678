"""Mime Lite (TFF's ``build_weighted_mime_lite`` and ``build_unweighted_mime_lite``).

The base optimizer's state s is global: clients use it but never change it,
and the server updates it from the clients' full gradients. Each round::

    client i: f_i = mean gradient over all batches at the received w   (metrics then reset)
              for each batch: w_i = base_optimizer.next(s, w_i, grad)  (s unchanged; metrics count)
              update_i = w - w_i;  weight_i = num_examples_i or 1      (zeroed, weight 0, if non-finite)
    server:   f = mean_i f_i (full_gradient_aggregator, same weights)
              s = base_optimizer.next(s, zeros, f).state
              w = server_optimizer.next(w, mean_i update_i)           (default SGD, lr 1.0)

The client work's state is ``(base optimizer state, full-gradient aggregator state)``.

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> from fl_blocks.optimizers import build_sgdm
>>> process = build_weighted_mime_lite(lambda: SoftmaxRegression(2, 2), build_sgdm(0.1, momentum=0.9))
>>> list(process.initialize().client_work[0])
['learning_rate', 'momentum', 'accumulator']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional

from fl_blocks.algorithms.composition import (
    compose_algorithm,
    create_weighted_aggregator,
    weighted_or_unweighted_mean,
)
from fl_blocks.algorithms.fed_sgd import mean_gradient
from fl_blocks.metrics.model_metrics import MetricSums
from fl_blocks.models.model import Model
from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.optimizers.optimizer import Optimizer
from fl_blocks.optimizers.sgdm import build_sgdm
from fl_blocks.specs import zeros_like_spec
from fl_blocks.templates.client_works import (
    ClientResult,
    ClientWorkProcess,
    unzip_client_results,
)
from fl_blocks.templates.distributors import DistributionProcess
from fl_blocks.templates.learning_process import LearningProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput
from fl_blocks.templates.model_delta_client_work import (
    ClientWeighting,
    MetricsAggregator,
    check_optimizer,
    choose_client_weight,
    client_results_and_metrics,
    model_and_weights_spec,
    reduce_batches,
    zero_all_if_any_non_finite,
)

__all__ = ["build_unweighted_mime_lite", "build_weighted_mime_lite"]


def _build_mime_lite_client_work(
    model_fn: Callable[[], Model],
    optimizer: Optimizer,
    client_weighting: ClientWeighting,
    full_gradient_aggregator: Any,
    metrics_aggregator: Optional[MetricsAggregator],
) -> ClientWorkProcess:
    if not isinstance(client_weighting, ClientWeighting):
        raise TypeError(f"client_weighting must be a ClientWeighting (NUM_EXAMPLES or UNIFORM), got {client_weighting!r}")
    model, weights_spec = model_and_weights_spec(model_fn)
    gradient_aggregator = create_weighted_aggregator(full_gradient_aggregator, weights_spec.trainable, "full_gradient_aggregator")

    def client_update(global_state: Any, weights: ModelWeights, dataset: Any, i: int) -> tuple[tuple[ClientResult, Any], MetricSums]:
        full_gradient, _ = mean_gradient(model, weights, dataset, i, no_nan=True)
        initial = list(weights.trainable)
        trained, _, sums = reduce_batches(
            model, dataset, i, initial, global_state, lambda state, w, g, n: (state, optimizer.next(state, w, g)[1])
        )
        update, non_finite = zero_all_if_any_non_finite([a - b for a, b in zip(initial, trained)])
        weight = choose_client_weight(client_weighting, non_finite, sums.num_examples)
        return (ClientResult(update, weight), full_gradient), sums

    def initialize_fn() -> tuple[Any, Any]:
        return (optimizer.initialize(weights_spec.trainable), gradient_aggregator.initialize())

    def next_fn(state: tuple[Any, Any], weights: Sequence[ModelWeights], client_data: Sequence[Any]) -> MeasuredProcessOutput:
        optimizer_state, aggregator_state = state
        outputs, measurements = client_results_and_metrics(
            client_data, lambda i, dataset: client_update(optimizer_state, weights[i], dataset, i), metrics_aggregator
        )
        results = [result for result, _ in outputs]
        _, update_weights = unzip_client_results(results)
        aggregated = gradient_aggregator.next(aggregator_state, [gradient for _, gradient in outputs], update_weights)
        optimizer_state, _ = optimizer.next(optimizer_state, zeros_like_spec(weights_spec.trainable), aggregated.result)
        return MeasuredProcessOutput((optimizer_state, aggregated.state), results, measurements)

    return ClientWorkProcess(initialize_fn, next_fn, weights_spec=weights_spec, update_spec=weights_spec.trainable)



def build_weighted_mime_lite(
    model_fn: Callable[[], Model],
    base_optimizer: Any,
    server_optimizer: Any = None,
    client_weighting: ClientWeighting = ClientWeighting.NUM_EXAMPLES,
    model_distributor: Optional[DistributionProcess] = None,
    model_aggregator: Optional[Any] = None,
    full_gradient_aggregator: Optional[Any] = None,
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> LearningProcess:
    """Mime Lite with weighted aggregators (default `MeanFactory` for both); server default ``build_sgdm(1.0)``."""
    client_work = _build_mime_lite_client_work(
        model_fn, check_optimizer(base_optimizer, "base_optimizer"), client_weighting,
        weighted_or_unweighted_mean(full_gradient_aggregator, True), metrics_aggregator,
    )
    server = check_optimizer(server_optimizer or build_sgdm(learning_rate=1.0), "server_optimizer")
    return compose_algorithm(model_fn, client_work, server, model_distributor, weighted_or_unweighted_mean(model_aggregator, True))


def build_unweighted_mime_lite(
    model_fn: Callable[[], Model],
    base_optimizer: Any,
    server_optimizer: Any = None,
    model_distributor: Optional[DistributionProcess] = None,
    model_aggregator: Optional[Any] = None,
    full_gradient_aggregator: Optional[Any] = None,
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> LearningProcess:
    """Mime Lite with every client weighted 1.0 and unweighted aggregators (default `UnweightedMeanFactory`)."""
    return build_weighted_mime_lite(
        model_fn, base_optimizer, server_optimizer, ClientWeighting.UNIFORM, model_distributor,
        weighted_or_unweighted_mean(model_aggregator, False),
        weighted_or_unweighted_mean(full_gradient_aggregator, False), metrics_aggregator,
    )
