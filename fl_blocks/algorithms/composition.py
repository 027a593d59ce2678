"""What every model-update algorithm shares: check `model_fn`, then compose the four blocks.

``compose_algorithm`` wires, as TFF's builders do: the distributor (default
`build_broadcast_process`), the client work, the weighted model aggregator
created for the trainable weights with float32 client weights, and
`build_apply_optimizer_finalizer(server_optimizer)`.

>>> from fl_blocks.models import SoftmaxRegression
>>> initial_weights_fn, spec = initial_weights_and_spec(lambda: SoftmaxRegression(3, 2))
>>> [str(s) for s in spec.trainable]
['float32[3,2]', 'float32[2]']
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from fl_blocks.aggregators.mean import MeanFactory
from fl_blocks.aggregators.unweighted_mean import (
    UnweightedMeanFactory,
    as_weighted_aggregator,
)
from fl_blocks.models.model import Model
from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.optimizers.optimizer import Optimizer
from fl_blocks.specs import TensorSpec
from fl_blocks.templates.aggregation_process import AggregationProcess
from fl_blocks.templates.client_works import ClientWorkProcess
from fl_blocks.templates.composers import compose_learning_process
from fl_blocks.templates.distributors import (
    DistributionProcess,
    build_broadcast_process,
)
from fl_blocks.templates.finalizers import build_apply_optimizer_finalizer
from fl_blocks.templates.learning_process import LearningProcess
from fl_blocks.templates.model_delta_client_work import model_and_weights_spec

__all__ = ["compose_algorithm", "create_weighted_aggregator", "initial_weights_and_spec", "weighted_or_unweighted_mean"]


def initial_weights_and_spec(model_fn: Callable[[], Model]) -> tuple[Callable[[], ModelWeights], Any]:
    """Returns ``(initial_model_weights_fn, model_weights_spec)``; a bad `model_fn` raises naming what it returned."""
    _, weights_spec = model_and_weights_spec(model_fn)

    def initial_model_weights_fn() -> ModelWeights:
        return model_fn().initial_weights()

    return initial_model_weights_fn, weights_spec


def weighted_or_unweighted_mean(model_aggregator: Optional[Any], weighted: bool) -> Any:
    """The weighted factory a builder aggregates with: `model_aggregator` or TFF's default mean."""
    if weighted:
        return MeanFactory() if model_aggregator is None else model_aggregator
    return as_weighted_aggregator(UnweightedMeanFactory() if model_aggregator is None else model_aggregator)


def create_weighted_aggregator(factory: Any, value_spec: Any, name: str = "model_aggregator") -> AggregationProcess:
    """``factory.create(value_spec, float32 weight)``; an unweighted factory gets a clear error."""
    if not callable(getattr(factory, "create", None)):
        raise TypeError(f"{name} must be a weighted aggregation factory such as MeanFactory(), got {type(factory).__name__}")
    try:
        process = factory.create(value_spec, TensorSpec((), "float32"))
    except TypeError as error:
        raise TypeError(
            f"{name} must be a weighted factory, create(value_spec, weight_spec), such as MeanFactory(); "
            f"wrap an unweighted factory with as_weighted_aggregator(...) ({error})"
        ) from error
    if not isinstance(process, AggregationProcess) or not process.is_weighted:
        raise TypeError(
            f"{name} must create a weighted AggregationProcess (such as MeanFactory()); "
            "wrap an unweighted factory with as_weighted_aggregator(...)"
        )
    return process


def compose_algorithm(
    model_fn: Callable[[], Model],
    client_work: ClientWorkProcess,
    server_optimizer: Optimizer,
    model_distributor: Optional[DistributionProcess],
    model_aggregator: Any,
) -> LearningProcess:
    """Composes distributor, `client_work`, the weighted `model_aggregator` and the server-optimizer finalizer."""
    initial_model_weights_fn, weights_spec = initial_weights_and_spec(model_fn)
    if model_distributor is None:
        model_distributor = build_broadcast_process(weights_spec)
    aggregator = create_weighted_aggregator(model_aggregator, weights_spec.trainable)
    finalizer = build_apply_optimizer_finalizer(server_optimizer, weights_spec)
    return compose_learning_process(initial_model_weights_fn, model_distributor, client_work, aggregator, finalizer)
