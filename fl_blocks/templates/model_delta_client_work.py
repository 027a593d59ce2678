"""`build_model_delta_client_work`: local training whose update is the model delta.

Per client, with the client optimizer made new each round (``initialize``,
then ``set_hparams`` from the client work's state)::

    w = received weights;  metrics = MetricSums()
    for (x, y) in client dataset:
        loss, g = forward pass at w          # metrics count this batch, at w before the step
        w = optimizer.next(w, g)
    update = received - w                    # zeros, weight 0 and reset metrics if non-finite
    update_weight = num_examples (NUM_EXAMPLES) or 1.0 (UNIFORM)

The state is the optimizer's hyperparameters; the measurements are
``OrderedDict(train=metrics_aggregator(metric_finalizers())(client metrics))``.
The loop pieces here are shared by every client work of `fl_blocks.algorithms`.

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> from fl_blocks.optimizers import build_sgdm
>>> work = build_model_delta_client_work(lambda: SoftmaxRegression(2, 2), build_sgdm(0.1), ClientWeighting.NUM_EXAMPLES)
>>> batch = (np.ones((3, 2), np.float32), np.array([[0], [1], [1]], np.int32))
>>> output = work.next(work.initialize(), [SoftmaxRegression(2, 2).initial_weights()], [[batch]])
>>> dict(work.initialize()), output.result[0].update_weight, int(output.measurements["train"]["num_examples"])
({'learning_rate': 0.1}, np.float32(3.0), 3)
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np

from fl_blocks.metrics.aggregator import sum_then_finalize
from fl_blocks.metrics.model_metrics import (
    MetricSums,
    metric_finalizers,
    unfinalized_metrics,
)
from fl_blocks.models.model import Model
from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.optimizers.optimizer import Optimizer
from fl_blocks.specs import spec_of
from fl_blocks.templates.client_works import ClientResult, ClientWorkProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput

__all__ = [
    "ClientWeighting",
    "build_model_delta_client_work",
    "check_optimizer",
    "choose_client_weight",
    "client_results_and_metrics",
    "model_and_weights_spec",
    "model_delta_update",
    "reduce_batches",
    "zero_all_if_any_non_finite",
]

MetricsAggregator = Callable[[Any], Callable[[Sequence[Any]], Any]]
#: ``step(carry, trainable, gradients, batch_size) -> (carry, trainable)``, one batch of a client loop.
BatchStep = Callable[[Any, list[np.ndarray], list[np.ndarray], int], tuple[Any, list[np.ndarray]]]


class ClientWeighting(enum.Enum):
    """How a client's update is weighted (TFF's ``tff.learning.ClientWeighting``)."""

    UNIFORM = 1
    NUM_EXAMPLES = 2


def check_optimizer(optimizer: Any, name: str) -> Optimizer:
    """Returns an fl_blocks Optimizer from one, or from a no-arg callable making one; else a clear error."""
    if not isinstance(optimizer, Optimizer) and callable(optimizer):
        optimizer = optimizer()
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"{name} must be an fl_blocks Optimizer such as build_sgdm(0.02) (or a no-arg callable returning one), "
            f"got {type(optimizer).__name__}"
        )
    return optimizer


def model_and_weights_spec(model_fn: Callable[[], Model]) -> tuple[Model, Any]:
    """Returns ``(model_fn(), spec of its initial ModelWeights)``; a bad `model_fn` raises naming what it returned."""
    if not callable(model_fn):
        raise TypeError(f"model_fn must be a no-arg callable returning a Model such as SoftmaxRegression, got {type(model_fn).__name__}")
    model = model_fn()
    if not isinstance(model, Model):
        raise TypeError(f"model_fn must return an fl_blocks Model (e.g. SoftmaxRegression), got {type(model).__name__}")
    weights = model.initial_weights()
    if not isinstance(weights, ModelWeights):
        raise TypeError(f"the model's initial_weights() must return a ModelWeights, got {type(weights).__name__}")
    return model, spec_of(weights)


def _forward_backward(model: Model, trainable: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
    fused = getattr(model, "loss_gradients_and_correct", None)
    if fused is not None:
        return fused(trainable, x, y)  # type: ignore[no-any-return]
    loss, gradients = model.loss_and_gradients(trainable, x, y)
    return loss, gradients, model.batch_metrics(trainable, x, y)[1]


def reduce_batches(
    model: Model, dataset: Any, client_index: int, trainable: list[np.ndarray], carry: Any, step: BatchStep
) -> tuple[list[np.ndarray], Any, MetricSums]:
    """Runs `step` on every batch in order (TFF's ``DATASET_REDUCE`` loop); returns ``(trainable, carry, metrics)``.

    The metrics of each batch come from the forward pass at the weights before its step.
    """
    from fl_blocks.algorithms.gradient_clipping import (
        iterate_batches,  # deferred: fl_blocks.algorithms imports templates
    )

    sums = MetricSums()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # non-finite training is caught afterwards
        for x, y in iterate_batches(model, dataset, client_index):
            loss, gradients, num_correct = _forward_backward(model, trainable, x, y)
            sums = sums.add_batch(loss, num_correct, y.shape[0])
            carry, trainable = step(carry, trainable, gradients, y.shape[0])
    return trainable, carry, sums


def zero_all_if_any_non_finite(update: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Returns ``(zeros, 1)`` when any value is NaN or Inf, else ``(update, 0)`` (TFF's name)."""
    if all(np.isfinite(leaf).all() for leaf in update):
        return update, 0
    return [np.zeros_like(leaf) for leaf in update], 1


def choose_client_weight(weighting: ClientWeighting, non_finite: int, num_examples: int) -> np.float32:
    """float32 client weight: 0 if its update was non-finite, else num_examples (NUM_EXAMPLES) or 1 (UNIFORM)."""
    if non_finite:
        return np.float32(0.0)
    return np.float32(num_examples) if weighting is ClientWeighting.NUM_EXAMPLES else np.float32(1.0)


def model_delta_update(
    model: Model,
    optimizer: Optimizer,
    optimizer_state: Any,
    weights: ModelWeights,
    dataset: Any,
    client_index: int,
    weighting: ClientWeighting,
    proximal_strength: float = 0.0,
    reset_metrics_if_non_finite: bool = True,
) -> tuple[ClientResult, MetricSums]:
    """One client's local training: ``ClientResult(initial - trained, weight)`` and its metric sums.

    With ``proximal_strength`` mu > 0 each gradient gets ``mu * (initial - current)`` added before the step
    (TFF 0.87's FedProx term, sign included).
    """
    initial = list(weights.trainable)

    def step(state: Any, trainable: list[np.ndarray], gradients: list[np.ndarray], batch_size: int) -> tuple[Any, Any]:
        if proximal_strength > 0.0:
            gradients = [g + g.dtype.type(proximal_strength) * (w0 - w) for g, w, w0 in zip(gradients, trainable, initial)]
        return optimizer.next(state, trainable, gradients)

    trained, _, sums = reduce_batches(model, dataset, client_index, initial, optimizer_state, step)
    update, non_finite = zero_all_if_any_non_finite([a - b for a, b in zip(initial, trained)])
    weight = choose_client_weight(weighting, non_finite, sums.num_examples)
    if non_finite and reset_metrics_if_non_finite:
        sums = MetricSums()
    return ClientResult(update, weight), sums


def client_results_and_metrics(
    client_data: Sequence[Any],
    client_update: Callable[[int, Any], tuple[Any, MetricSums]],
    metrics_aggregator: Optional[MetricsAggregator],
) -> tuple[list[Any], collections.OrderedDict[str, Any]]:
    """Runs `client_update(i, dataset)` per client; returns the results and the aggregated train metrics."""
    outputs = [client_update(i, dataset) for i, dataset in enumerate(client_data)]
    aggregate = (metrics_aggregator or sum_then_finalize)(metric_finalizers())
    train = aggregate([unfinalized_metrics(sums) for _, sums in outputs])
    return [result for result, _ in outputs], collections.OrderedDict(train=train)


def build_model_delta_client_work(
    model_fn: Callable[[], Model],
    optimizer: Optimizer,
    client_weighting: ClientWeighting,
    metrics_aggregator: Optional[MetricsAggregator] = None,
) -> ClientWorkProcess:
    """Returns the model-delta `ClientWorkProcess` (TFF's ``tff.learning.templates.build_model_delta_client_work``).

    `metrics_aggregator(metric_finalizers)` returns the function aggregating the
    clients' unfinalized metrics; it defaults to `sum_then_finalize`.
    """
    optimizer = check_optimizer(optimizer, "optimizer")
    if not isinstance(client_weighting, ClientWeighting):
        raise TypeError(f"client_weighting must be a ClientWeighting (NUM_EXAMPLES or UNIFORM), got {client_weighting!r}")
    model, weights_spec = model_and_weights_spec(model_fn)
    initial_hparams = optimizer.get_hparams(optimizer.initialize(weights_spec.trainable))

    def initialize_fn() -> Any:
        return initial_hparams

    def set_hparams_fn(state: Any, hparams: Any) -> Any:
        if set(hparams) != set(state):
            raise KeyError(f"client work hparams must have exactly the keys {list(state)}, got {list(hparams)}")
        return collections.OrderedDict((key, hparams[key]) for key in state)

    def next_fn(state: Any, weights: Sequence[ModelWeights], client_data: Sequence[Any]) -> MeasuredProcessOutput:
        def client_update(i: int, dataset: Any) -> tuple[ClientResult, MetricSums]:
            optimizer_state = optimizer.set_hparams(optimizer.initialize(weights_spec.trainable), state)
            return model_delta_update(model, optimizer, optimizer_state, weights[i], dataset, i, client_weighting)

        results, measurements = client_results_and_metrics(client_data, client_update, metrics_aggregator)
        return MeasuredProcessOutput(state, results, measurements)

    return ClientWorkProcess(
        initialize_fn, next_fn, weights_spec=weights_spec, update_spec=weights_spec.trainable,
        get_hparams_fn=lambda state: state, set_hparams_fn=set_hparams_fn,
    )
