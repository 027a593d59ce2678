"""`compose_learning_process`: four blocks wired into one learning process.

Each round runs four calls::

                     ┌──────────────────── LearningAlgorithmState ───────────────────┐
    global weights ──┤                                                               │
          │          ▼                                                               │
          │    distributor.next ──weights@CLIENTS──▶ client_work.next ◀── client_data
          │                                               │
          │                                 ClientResult(update, update_weight)@CLIENTS
          │                                               ▼
          │                                        aggregator.next
          │                                               │ update@SERVER
          ▼                                               ▼
    finalizer.next(state, global weights, aggregated update) ──▶ new global weights

The blocks' specs are checked once, when composing: a mismatch names the
block and the leaf.

>>> from fl_blocks.aggregators import MeanFactory
>>> from fl_blocks.algorithms import build_gradient_clipping_client_work
>>> from fl_blocks.models import SoftmaxRegression
>>> from fl_blocks.optimizers import build_sgdm
>>> from fl_blocks.specs import spec_of
>>> from fl_blocks.templates import build_apply_optimizer_finalizer, build_broadcast_process
>>> model_fn = lambda: SoftmaxRegression(4, 3)
>>> spec = spec_of(model_fn().initial_weights())
>>> process = compose_learning_process(
...     model_fn().initial_weights,
...     build_broadcast_process(spec),
...     build_gradient_clipping_client_work(model_fn, build_sgdm(0.1)),
...     MeanFactory().create(spec.trainable),
...     build_apply_optimizer_finalizer(build_sgdm(1.0), spec))
>>> list(process.next(process.initialize(), [[]]).metrics)
['distributor', 'client_work', 'aggregator', 'finalizer']
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.specs import check_same_spec, spec_of
from fl_blocks.templates.aggregation_process import AggregationProcess
from fl_blocks.templates.client_works import ClientWorkProcess, unzip_client_results
from fl_blocks.templates.distributors import DistributionProcess
from fl_blocks.templates.finalizers import FinalizerProcess
from fl_blocks.templates.learning_process import LearningAlgorithmState, LearningProcess, LearningProcessOutput

__all__ = ["compose_learning_process"]


def _check_types(distributor: Any, client_work: Any, aggregator: Any, finalizer: Any) -> None:
    for name, block, cls in (
        ("distributor", distributor, DistributionProcess),
        ("client_work", client_work, ClientWorkProcess),
        ("aggregator", aggregator, AggregationProcess),
        ("finalizer", finalizer, FinalizerProcess),
    ):
        if not isinstance(block, cls):
            raise TypeError(f"{name} must be a {cls.__name__}, got {type(block).__name__}")


def compose_learning_process(
    initial_model_weights_fn: Callable[[], ModelWeights],
    model_weights_distributor: DistributionProcess,
    client_work: ClientWorkProcess,
    model_update_aggregator: AggregationProcess,
    model_finalizer: FinalizerProcess,
) -> LearningProcess:
    """Returns a `LearningProcess` running the four blocks in order each round.

    Raises `SpecMismatchError` when the blocks' specs do not fit together.
    """
    _check_types(model_weights_distributor, client_work, model_update_aggregator, model_finalizer)
    weights_spec = spec_of(initial_model_weights_fn())
    check_same_spec(model_weights_distributor.value_spec, weights_spec, consumer="distributor", producer="initial_model_weights_fn")
    check_same_spec(client_work.weights_spec, model_weights_distributor.value_spec, consumer="client work", producer="distributor")
    check_same_spec(model_update_aggregator.value_spec, client_work.update_spec, consumer="aggregator", producer="client work", prefix="trainable")
    check_same_spec(model_finalizer.update_spec, model_update_aggregator.value_spec, consumer="finalizer", producer="aggregator", prefix="trainable")
    check_same_spec(model_finalizer.weights_spec, weights_spec, consumer="finalizer", producer="initial_model_weights_fn")
    weighted = model_update_aggregator.is_weighted
    if weighted:
        check_same_spec(
            model_update_aggregator.weight_spec, client_work.update_weight_spec,
            consumer="aggregator", producer="client work", prefix="update_weight",
        )

    def initialize_fn() -> LearningAlgorithmState:
        return LearningAlgorithmState(
            global_model_weights=initial_model_weights_fn(),
            distributor=model_weights_distributor.initialize(),
            client_work=client_work.initialize(),
            aggregator=model_update_aggregator.initialize(),
            finalizer=model_finalizer.initialize(),
        )

    def next_fn(state: LearningAlgorithmState, client_data: Any) -> LearningProcessOutput:
        distributor_output = model_weights_distributor.next(state.distributor, state.global_model_weights)
        client_work_output = client_work.next(state.client_work, distributor_output.result, client_data)
        updates, update_weights = unzip_client_results(client_work_output.result)
        if weighted:
            aggregator_output = model_update_aggregator.next(state.aggregator, updates, update_weights)
        else:
            aggregator_output = model_update_aggregator.next(state.aggregator, updates)
        finalizer_output = model_finalizer.next(state.finalizer, state.global_model_weights, aggregator_output.result)
        new_state = LearningAlgorithmState(
            global_model_weights=finalizer_output.result,
            distributor=distributor_output.state,
            client_work=client_work_output.state,
            aggregator=aggregator_output.state,
            finalizer=finalizer_output.state,
        )
        metrics = collections.OrderedDict(
            distributor=distributor_output.measurements,
            client_work=client_work_output.measurements,
            aggregator=aggregator_output.measurements,
            finalizer=finalizer_output.measurements,
        )
        return LearningProcessOutput(new_state, metrics)

    def get_hparams_fn(state: LearningAlgorithmState) -> collections.OrderedDict[str, Any]:
        return collections.OrderedDict(
            client_work=client_work.get_hparams(state.client_work),
            finalizer=model_finalizer.get_hparams(state.finalizer),
        )

    def set_hparams_fn(state: LearningAlgorithmState, hparams: Any) -> LearningAlgorithmState:
        missing = [key for key in ("client_work", "finalizer") if key not in hparams]
        if missing:
            raise KeyError(f"hparams need keys 'client_work' and 'finalizer' (as get_hparams returns), missing {missing}")
        return state._replace(
            client_work=client_work.set_hparams(state.client_work, hparams["client_work"]),
            finalizer=model_finalizer.set_hparams(state.finalizer, hparams["finalizer"]),
        )

    return LearningProcess(
        initialize_fn,
        next_fn,
        get_model_weights=lambda state: state.global_model_weights,
        set_model_weights=lambda state, weights: state._replace(global_model_weights=weights),
        get_hparams_fn=get_hparams_fn,
        set_hparams_fn=set_hparams_fn,
    )
