"""The process protocol: composition checks, user-written blocks, state handling."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from fl_blocks.aggregators import MeanFactory, SumFactory
from fl_blocks.algorithms import build_gradient_clipping_client_work
from fl_blocks.models import ModelWeights, SoftmaxRegression
from fl_blocks.optimizers import build_sgdm
from fl_blocks.specs import SpecMismatchError, TensorSpec, spec_of
from fl_blocks.templates import (
    DistributionProcess,
    LearningAlgorithmState,
    MeasuredProcess,
    MeasuredProcessOutput,
    build_apply_optimizer_finalizer,
    build_broadcast_process,
    compose_learning_process,
)

MODEL_FN = lambda: SoftmaxRegression(784, 10)  # noqa: E731
WEIGHTS_FN = MODEL_FN().initial_weights
SPEC = spec_of(WEIGHTS_FN())
FLOAT = TensorSpec((), "float32")


def blocks(**overrides):
    work = build_gradient_clipping_client_work(MODEL_FN, build_sgdm(0.01))
    parts = dict(
        model_weights_distributor=build_broadcast_process(SPEC),
        client_work=work,
        model_update_aggregator=MeanFactory().create(work.update_spec, FLOAT),
        model_finalizer=build_apply_optimizer_finalizer(build_sgdm(1.0), SPEC),
    )
    parts.update(overrides)
    return parts


def test_aggregator_spec_mismatch_names_block_and_leaf():
    transposed = [TensorSpec((10, 784), "float32"), TensorSpec((10,), "float32")]
    work = build_gradient_clipping_client_work(MODEL_FN, build_sgdm(0.01))
    work.update_spec = transposed
    with pytest.raises(SpecMismatchError) as error:
        compose_learning_process(WEIGHTS_FN, **blocks(client_work=work))
    assert str(error.value) == (
        "aggregator expects float32[784,10] at trainable[0], client work produces float32[10,784]."
    )


def test_dtype_and_structure_mismatches_are_named():
    float64_spec = ModelWeights([TensorSpec((784, 10), "float64"), TensorSpec((10,), "float32")], [])
    with pytest.raises(SpecMismatchError, match=r"distributor expects float64\[784,10\] at trainable\[0\], initial_model_weights_fn produces float32\[784,10\]"):
        compose_learning_process(WEIGHTS_FN, **blocks(model_weights_distributor=build_broadcast_process(float64_spec)))
    three_leaves = ModelWeights(SPEC.trainable + [TensorSpec((1,), "float32")], [])
    with pytest.raises(SpecMismatchError, match="finalizer expects a value structured as"):
        compose_learning_process(WEIGHTS_FN, **blocks(model_finalizer=build_apply_optimizer_finalizer(build_sgdm(1.0), three_leaves)))


def test_wrong_block_type_is_named():
    with pytest.raises(TypeError, match="aggregator must be a AggregationProcess, got MeanFactory"):
        compose_learning_process(WEIGHTS_FN, **blocks(model_update_aggregator=MeanFactory()))


def test_a_user_written_distributor_plugs_in():
    """A block is just initialize/next functions: this one counts rounds."""

    def next_fn(state, weights):
        from fl_blocks.placements import AllEqual

        return MeasuredProcessOutput(state + 1, AllEqual(weights), collections.OrderedDict(round=state + 1))

    counting = DistributionProcess(lambda: 0, next_fn, value_spec=SPEC)
    process = compose_learning_process(WEIGHTS_FN, **blocks(model_weights_distributor=counting))
    state = process.initialize()
    x = np.ones((2, 784), np.float32)
    y = np.zeros((2, 1), np.int32)
    for expected in (1, 2):
        state, metrics = process.next(state, [[(x, y)]])
        assert state.distributor == expected and metrics["distributor"]["round"] == expected


def test_unweighted_sum_aggregator_is_called_without_weights():
    work = build_gradient_clipping_client_work(MODEL_FN, build_sgdm(0.01))
    process = compose_learning_process(WEIGHTS_FN, **blocks(model_update_aggregator=SumFactory().create(work.update_spec)))
    x = np.ones((2, 784), np.float32)
    y = np.zeros((2, 1), np.int32)
    state, metrics = process.next(process.initialize(), [[(x, y)], [(x, y)]])
    assert metrics["aggregator"] == ()


def test_state_is_tff_shaped_and_set_model_weights_replaces_only_weights():
    process = compose_learning_process(WEIGHTS_FN, **blocks())
    state = process.initialize()
    assert isinstance(state, LearningAlgorithmState)
    assert state._fields == ("global_model_weights", "distributor", "client_work", "aggregator", "finalizer")
    new_weights = ModelWeights([np.ones((784, 10), np.float32), np.ones(10, np.float32)], [])
    new_state = process.set_model_weights(state, new_weights)
    assert process.get_model_weights(new_state) is new_weights
    assert new_state[1:] == state[1:]
    with pytest.raises(SpecMismatchError, match=r"set_model_weights expects float32\[784,10\] at trainable\[0\]"):
        process.set_model_weights(state, ModelWeights([np.ones((10, 784), np.float32), np.ones(10, np.float32)], []))


def test_measured_process_must_return_measured_output():
    process = MeasuredProcess(lambda: 0, lambda state: state)
    with pytest.raises(TypeError, match="must return MeasuredProcessOutput"):
        process.next(0)


def test_client_data_must_be_a_sequence():
    process = compose_learning_process(WEIGHTS_FN, **blocks())
    with pytest.raises(TypeError, match="one dataset per client"):
        process.next(process.initialize(), iter([]))


def test_finalizer_rejects_non_finite_update_and_keeps_state():
    weights = ModelWeights([np.ones(2, np.float32)], [])
    finalizer = build_apply_optimizer_finalizer(build_sgdm(1.0, momentum=0.5), spec_of(weights))
    state = finalizer.initialize()
    out = finalizer.next(state, weights, [np.array([np.inf, 0], np.float32)])
    assert out.result is weights and out.state is state and out.measurements["update_non_finite"] == 1
    out = finalizer.next(state, weights, [np.array([1.0, 0], np.float32)])
    np.testing.assert_array_equal(out.result.trainable[0], [0.0, 1.0])
    assert out.measurements["update_non_finite"] == 0
    never = build_apply_optimizer_finalizer(build_sgdm(1.0), spec_of(weights), should_reject_update=None)
    out = never.next(never.initialize(), weights, [np.array([np.nan, 0], np.float32)])
    assert np.isnan(out.result.trainable[0][0]) and out.measurements == ()


def test_arrays_are_accepted_where_specs_are_expected():
    weights = WEIGHTS_FN()
    work = build_gradient_clipping_client_work(MODEL_FN, build_sgdm(0.01))
    process = compose_learning_process(
        WEIGHTS_FN, build_broadcast_process(weights), work,
        MeanFactory().create(weights.trainable, np.float32(0)), build_apply_optimizer_finalizer(build_sgdm(1.0), weights),
    )
    assert process.initialize().finalizer == {"learning_rate": 1.0}


def test_update_weight_spec_mismatch_is_named():
    work = build_gradient_clipping_client_work(MODEL_FN, build_sgdm(0.01))
    aggregator = MeanFactory().create(work.update_spec, TensorSpec((3,), "float32"))
    with pytest.raises(SpecMismatchError, match=r"aggregator expects float32\[3\] at update_weight, client work produces float32\[\]"):
        compose_learning_process(WEIGHTS_FN, **blocks(client_work=work, model_update_aggregator=aggregator))


def test_aggregator_runtime_checks_name_the_problem():
    spec = TensorSpec((2,), "float32")
    mean = MeanFactory().create(spec)
    with pytest.raises(ValueError, match="got 2 client values but 3 weights"):
        mean.next(mean.initialize(), [np.zeros(2, np.float32)] * 2, [1.0] * 3)
    with pytest.raises(SpecMismatchError, match=r"MeanFactory process expects float32\[2\] at <root>, client 0's value produces float32\[3\]"):
        mean.next(mean.initialize(), [np.zeros(3, np.float32)], [1.0])
    with pytest.raises(ValueError, match="differ in structure or shape"):
        mean.next(mean.initialize(), [np.zeros(2, np.float32), np.zeros(3, np.float32)], [1.0, 1.0])
    total = SumFactory().create(spec)
    with pytest.raises(ValueError, match="SumFactory process got no client values"):
        total.next(total.initialize(), [])


def test_all_equal_cannot_be_listed():
    from fl_blocks.placements import AllEqual

    with pytest.raises(TypeError, match="no client count"):
        len(AllEqual(1))
    with pytest.raises(TypeError, match="cannot be iterated"):
        list(AllEqual(1))


def test_set_hparams_needs_both_keys():
    process = compose_learning_process(WEIGHTS_FN, **blocks())
    with pytest.raises(KeyError, match="missing \\['client_work'\\]"):
        process.set_hparams(process.initialize(), {"finalizer": {"learning_rate": 0.1}})
