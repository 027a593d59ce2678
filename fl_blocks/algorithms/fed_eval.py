"""Federated evaluation (TFF's ``build_fed_eval``): the global weights' loss and accuracy on client data.

Each ``next`` evaluates the current global weights on every client (forward
pass only, no training) and reports, under ``client_work.eval``, the metrics
of this round and the running totals over every round so far (the client
work's state is the `SumThenFinalizeFactory` state). The weights never change.

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> process = build_fed_eval(lambda: SoftmaxRegression(2, 2))
>>> batch = (np.array([[3.0, 0.0]], np.float32), np.array([[0]], np.int32))
>>> state = process.set_model_weights(process.initialize(), process.get_model_weights(process.initialize()))
>>> output = process.next(state, [[batch], [batch, batch]])
>>> int(output.metrics["client_work"]["eval"]["total_rounds_metrics"]["num_examples"])
3
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any, Callable, Optional

from fl_blocks.algorithms.composition import initial_weights_and_spec
from fl_blocks.metrics.model_metrics import (
    MetricSums,
    metric_finalizers,
    unfinalized_metrics,
)
from fl_blocks.metrics.sum_aggregation_factory import SumThenFinalizeFactory
from fl_blocks.models.model import Model
from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.specs import spec_of
from fl_blocks.templates.aggregation_process import AggregationProcess
from fl_blocks.templates.client_works import ClientResult, ClientWorkProcess
from fl_blocks.templates.composers import compose_learning_process
from fl_blocks.templates.distributors import (
    DistributionProcess,
    build_broadcast_process,
)
from fl_blocks.templates.finalizers import FinalizerProcess
from fl_blocks.templates.learning_process import LearningProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput
from fl_blocks.templates.model_delta_client_work import (
    model_and_weights_spec,
    reduce_batches,
)

__all__ = ["build_fed_eval", "build_identity_finalizer"]


def _evaluate(model: Model, weights: ModelWeights, dataset: Any, client_index: int) -> MetricSums:
    _, _, sums = reduce_batches(model, dataset, client_index, list(weights.trainable), None, lambda c, w, g, n: (c, w))
    return sums


def _build_fed_eval_client_work(
    model_fn: Callable[[], Model], metrics_aggregation_process: Optional[AggregationProcess]
) -> ClientWorkProcess:
    model, weights_spec = model_and_weights_spec(model_fn)
    if metrics_aggregation_process is None:
        metrics_spec = spec_of(unfinalized_metrics(MetricSums()))
        metrics_aggregation_process = SumThenFinalizeFactory(metric_finalizers()).create(metrics_spec)
    elif not isinstance(metrics_aggregation_process, AggregationProcess):
        raise TypeError(f"metrics_aggregation_process must be an AggregationProcess, got {type(metrics_aggregation_process).__name__}")
    metrics_process = metrics_aggregation_process

    def next_fn(state: Any, weights: Sequence[ModelWeights], client_data: Sequence[Any]) -> MeasuredProcessOutput:
        client_metrics = [unfinalized_metrics(_evaluate(model, weights[i], dataset, i)) for i, dataset in enumerate(client_data)]
        state, (current, total), _ = metrics_process.next(state, client_metrics)
        measurements = collections.OrderedDict(
            eval=collections.OrderedDict(current_round_metrics=current, total_rounds_metrics=total)
        )
        return MeasuredProcessOutput(state, [ClientResult((), ()) for _ in client_data], measurements)

    process = ClientWorkProcess(metrics_process.initialize, next_fn, weights_spec=weights_spec, update_spec=())
    process.update_weight_spec = ()
    return process


def _build_empty_mean_process() -> AggregationProcess:
    """TFF's ``MeanFactory().create((), ())``: the mean of empty updates, with MeanFactory's state and measurements."""

    def initialize_fn() -> collections.OrderedDict[str, Any]:
        return collections.OrderedDict(value_sum_process=(), weight_sum_process=())

    def next_fn(state: Any, value: Sequence[Any], weight: Sequence[Any]) -> MeasuredProcessOutput:
        return MeasuredProcessOutput(state, (), collections.OrderedDict(mean_value=(), mean_weight=()))

    return AggregationProcess(initialize_fn, next_fn, value_spec=(), weight_spec=())


def build_identity_finalizer(model_weights_spec: Any, update_spec: Any) -> FinalizerProcess:
    """A stateless finalizer that keeps the weights (TFF's ``build_identity_finalizer``); measurements ``()``."""
    return FinalizerProcess(
        lambda: (), lambda state, weights, update: MeasuredProcessOutput(state, weights, ()),
        weights_spec=spec_of(model_weights_spec), update_spec=update_spec,
    )


def build_fed_eval(
    model_fn: Callable[[], Model],
    model_distributor: Optional[DistributionProcess] = None,
    metrics_aggregation_process: Optional[AggregationProcess] = None,
) -> LearningProcess:
    """A `LearningProcess` evaluating its global weights (set them with ``set_model_weights``) on client data."""
    initial_model_weights_fn, weights_spec = initial_weights_and_spec(model_fn)
    if model_distributor is None:
        model_distributor = build_broadcast_process(weights_spec)
    client_work = _build_fed_eval_client_work(model_fn, metrics_aggregation_process)
    finalizer = build_identity_finalizer(weights_spec, ())
    return compose_learning_process(
        initial_model_weights_fn, model_distributor, client_work, _build_empty_mean_process(), finalizer
    )
