"""Federated SGD (TFF's ``build_fed_sgd``): one server step along the clients' mean gradient.

Each round::

    client i: g_i = sum_b n_b grad_b(w) / sum_b n_b   at the received w (no local steps)
              weight_i = num_examples_i                 (g_i zeroed with weight 0 if non-finite)
    server:   g = sum_i weight_i g_i / sum_i weight_i;  w = server_optimizer.next(w, g)   (default SGD, lr 0.1)

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> process = build_fed_sgd(lambda: SoftmaxRegression(2, 2))
>>> hparams = process.get_hparams(process.initialize())
>>> dict(hparams["client_work"]), dict(hparams["finalizer"])
({}, {'learning_rate': 0.1})
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np

from fl_blocks.algorithms.composition import (
    compose_algorithm,
    weighted_or_unweighted_mean,
)
from fl_blocks.metrics.model_metrics import MetricSums
from fl_blocks.models.model import Model
from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.optimizers.sgdm import build_sgdm
from fl_blocks.specs import spec_of, zeros_like_spec
from fl_blocks.templates.client_works import ClientResult, ClientWorkProcess
from fl_blocks.templates.distributors import DistributionProcess
from fl_blocks.templates.learning_process import LearningProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput
from fl_blocks.templates.model_delta_client_work import (
    MetricsAggregator,
    check_optimizer,
    client_results_and_metrics,
    model_and_weights_spec,
    reduce_batches,
    zero_all_if_any_non_finite,
)

__all__ = ["build_fed_sgd", "mean_gradient"]


def _sum_weighted_gradients(total: list[np.ndarray], trainable: Any, gradients: Any, batch_size: int) -> tuple[Any, Any]:
    return [t + g.dtype.type(batch_size) * g for t, g in zip(total, gradients)], trainable


def mean_gradient(
    model: Model, weights: ModelWeights, dataset: Any, client_index: int, no_nan: bool = False
) -> tuple[list[np.ndarray], MetricSums]:
    """The example-weighted mean gradient ``sum_b n_b grad_b / sum_b n_b`` at `weights` and the batches' metrics.

    With no examples it is NaN, or zeros with `no_nan` (``divide_no_nan``).
    """
    trainable = list(weights.trainable)
    _, total, sums = reduce_batches(
        model, dataset, client_index, trainable, zeros_like_spec(spec_of(trainable)), _sum_weighted_gradients
    )
    if no_nan and sums.num_examples == 0:
        return total, sums
    with np.errstate(divide="ignore", invalid="ignore"):  # no examples: NaN, which FedSGD zeroes with weight 0
        return [t / t.dtype.type(sums.num_examples) for t in total], sums


def _build_fed_sgd_client_work(model_fn: Callable[[], Model], metrics_aggregator: Optional[MetricsAggregator]) -> ClientWorkProcess:
    model, weights_spec = model_and_weights_spec(model_fn)

    def client_update(weights: ModelWeights, dataset: Any, i: int) -> tuple[ClientResult, MetricSums]:
        gradient, sums = mean_gradient(model, weights, dataset, i)
        gradient, non_finite = zero_all_if_any_non_finite(gradient)
        return ClientResult(gradient, np.float32(0.0 if non_finite else sums.num_examples)), sums

    def initialize_fn() -> tuple[()]:
        return ()

    def next_fn(state: tuple[()], weights: Sequence[ModelWeights], client_data: Sequence[Any]) -> MeasuredProcessOutput:
        results, measurements = client_results_and_metrics(
            client_data, lambda i, dataset: client_update(weights[i], dataset, i), metrics_aggregator
        )
        return MeasuredProcessOutput(state, results, measurements)

    return ClientWorkProcess(initialize_fn, next_fn, weights_spec=weights_spec, update_spec=weights_spec.trainable)


def build_fed_sgd(
    model_fn: Callable[[], Model],
    server_optimizer_fn: Any = None,
    model_distributor: Optional[DistributionProcess] = None,
    model_aggregator: Optional[Any] = None,
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> LearningProcess:
    """FedSGD with a weighted model aggregator (default `MeanFactory`); server default ``build_sgdm(0.1)``."""
    server_optimizer = check_optimizer(server_optimizer_fn or build_sgdm(learning_rate=0.1), "server_optimizer_fn")
    client_work = _build_fed_sgd_client_work(model_fn, metrics_aggregator)
    return compose_algorithm(
        model_fn, client_work, server_optimizer, model_distributor, weighted_or_unweighted_mean(model_aggregator, True)
    )
