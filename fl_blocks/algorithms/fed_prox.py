"""FedProx (TFF's ``build_weighted_fed_prox`` and ``build_unweighted_fed_prox``).

FedAvg whose clients add a proximal term to each gradient before the step::

    g = grad loss(w) + mu * (w_received - w)      # TFF 0.87's sign (the paper's is the opposite)

The proximal client work is stateless (no hyperparameters) and, unlike
FedAvg's, keeps a non-finite client's metrics (its update is still zeroed
with weight 0). ``mu = 0`` is exactly FedAvg.

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> from fl_blocks.optimizers import build_sgdm
>>> process = build_weighted_fed_prox(lambda: SoftmaxRegression(2, 2), 0.1, build_sgdm(0.1))
>>> process.initialize().client_work, dict(process.get_hparams(process.initialize()))["client_work"]
((), {})
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np

from fl_blocks.algorithms.composition import (
    compose_algorithm,
    weighted_or_unweighted_mean,
)
from fl_blocks.models.model import Model
from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.optimizers.optimizer import Optimizer
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

__all__ = ["build_proximal_client_work", "build_unweighted_fed_prox", "build_weighted_fed_prox"]


def _check_strength(proximal_strength: Any) -> float:
    if isinstance(proximal_strength, bool) or not isinstance(proximal_strength, numbers.Real):
        raise TypeError(f"proximal_strength must be a number >= 0 such as 0.1, got {type(proximal_strength).__name__}")
    if not np.isfinite(float(proximal_strength)) or proximal_strength < 0:
        raise ValueError(f"proximal_strength must be a finite number >= 0, got {proximal_strength!r}")
    return float(proximal_strength)


def build_proximal_client_work(
    model_fn: Callable[[], Model],
    optimizer: Optimizer,
    client_weighting: ClientWeighting,
    delta_l2_regularizer: float,
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> ClientWorkProcess:
    """Model-delta client work with TFF's proximal gradient term of strength `delta_l2_regularizer`."""
    optimizer = check_optimizer(optimizer, "optimizer")
    mu = _check_strength(delta_l2_regularizer)
    if not isinstance(client_weighting, ClientWeighting):
        raise TypeError(f"client_weighting must be a ClientWeighting (NUM_EXAMPLES or UNIFORM), got {client_weighting!r}")
    model, weights_spec = model_and_weights_spec(model_fn)

    def initialize_fn() -> tuple[()]:
        return ()

    def next_fn(state: tuple[()], weights: Sequence[ModelWeights], client_data: Sequence[Any]) -> MeasuredProcessOutput:
        def client_update(i: int, dataset: Any) -> tuple[ClientResult, Any]:
            return model_delta_update(
                model, optimizer, optimizer.initialize(weights_spec.trainable), weights[i], dataset, i,
                client_weighting, proximal_strength=mu, reset_metrics_if_non_finite=False,
            )

        results, measurements = client_results_and_metrics(client_data, client_update, metrics_aggregator)
        return MeasuredProcessOutput(state, results, measurements)

    return ClientWorkProcess(initialize_fn, next_fn, weights_spec=weights_spec, update_spec=weights_spec.trainable)


def build_weighted_fed_prox(
    model_fn: Callable[[], Model],
    proximal_strength: float,
    client_optimizer_fn: Any,
    server_optimizer_fn: Any = None,
    client_weighting: ClientWeighting = ClientWeighting.NUM_EXAMPLES,
    model_distributor: Optional[DistributionProcess] = None,
    model_aggregator: Optional[Any] = None,
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> LearningProcess:
    """FedProx with a weighted model aggregator (default `MeanFactory`); server default ``build_sgdm(1.0)``."""
    client_work = build_proximal_client_work(
        model_fn, check_optimizer(client_optimizer_fn, "client_optimizer_fn"), client_weighting,
        proximal_strength, metrics_aggregator,
    )
    server_optimizer = check_optimizer(server_optimizer_fn or build_sgdm(learning_rate=1.0), "server_optimizer_fn")
    return compose_algorithm(
        model_fn, client_work, server_optimizer, model_distributor, weighted_or_unweighted_mean(model_aggregator, True)
    )


def build_unweighted_fed_prox(
    model_fn: Callable[[], Model],
    proximal_strength: float,
    client_optimizer_fn: Any,
    server_optimizer_fn: Any = None,
    model_distributor: Optional[DistributionProcess] = None,
    model_aggregator: Optional[Any] = None,
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> LearningProcess:
    """FedProx with every client weighted 1.0 and an unweighted model aggregator (default `UnweightedMeanFactory`)."""
    return build_weighted_fed_prox(
        model_fn, proximal_strength, client_optimizer_fn, server_optimizer_fn, ClientWeighting.UNIFORM,
        model_distributor, weighted_or_unweighted_mean(model_aggregator, False), metrics_aggregator,
    )
