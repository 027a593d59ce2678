"""Property and example tests of `MeanFactory` and `SumFactory`."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fl_blocks.aggregators import MeanFactory, SumFactory
from fl_blocks.placements import StackedClients
from fl_blocks.specs import TensorSpec

SPEC = TensorSpec((3,), "float64")
WEIGHT_SPEC = TensorSpec((), "float64")


@st.composite
def clients(draw, min_size=1):
    n = draw(st.integers(min_size, 6))
    values = draw(hnp.arrays(np.float64, (n, 3), elements=st.floats(-1e3, 1e3, width=64)))
    weights = draw(hnp.arrays(np.float64, (n,), elements=st.floats(0.0, 1e3, width=64)))
    return list(values), list(weights)


def mean(values, weights, **kwargs):
    process = MeanFactory(**kwargs).create(SPEC, WEIGHT_SPEC)
    return process.next(process.initialize(), values, weights).result


def positive_total(weights):
    return sum(weights) > 1e-6


@given(clients(), st.randoms(use_true_random=False))
def test_permutation_invariance(data, random):
    values, weights = data
    assume(positive_total(weights))
    order = list(range(len(values)))
    random.shuffle(order)
    np.testing.assert_allclose(
        mean([values[i] for i in order], [weights[i] for i in order]), mean(values, weights), rtol=1e-9, atol=1e-6
    )


@given(clients(), st.floats(1e-3, 1e3))
def test_invariance_to_scaling_all_weights(data, scale):
    values, weights = data
    assume(positive_total(weights))
    np.testing.assert_allclose(mean(values, [w * scale for w in weights]), mean(values, weights), rtol=1e-9, atol=1e-6)


@given(clients())
def test_convexity(data):
    values, weights = data
    assume(positive_total(weights))
    result = mean(values, weights)
    stacked = np.stack(values)
    assert np.all(result >= stacked.min(0) - 1e-9 * (1 + np.abs(stacked).max()))
    assert np.all(result <= stacked.max(0) + 1e-9 * (1 + np.abs(stacked).max()))


@given(hnp.arrays(np.float64, (3,), elements=st.floats(-1e3, 1e3)), st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=5))
def test_identical_inputs_give_that_input(value, weights):
    np.testing.assert_allclose(mean([value] * len(weights), weights), value, rtol=1e-12, atol=1e-12)


@given(clients(), hnp.arrays(np.float64, (3,), elements=st.floats(-1e3, 1e3)))
def test_zero_weight_client_has_no_effect(data, extra):
    values, weights = data
    assume(positive_total(weights))
    np.testing.assert_allclose(mean(values + [extra], weights + [0.0]), mean(values, weights), rtol=1e-12, atol=1e-9)


@given(clients())
def test_zero_total_weight_is_nan_by_default_and_zero_without_nan_division(data):
    values, _ = data
    zeros = [0.0] * len(values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0 gives NaN quietly, as TFF's division does
        assert np.all(np.isnan(mean(values, zeros)))
        np.testing.assert_array_equal(mean(values, zeros, no_nan_division=True), np.zeros(3))


def test_weighted_mean_by_hand_and_measurements():
    process = MeanFactory().create(TensorSpec((2,), "float32"), TensorSpec((), "float32"))
    state = process.initialize()
    assert dict(state) == {"value_sum_process": (), "weight_sum_process": ()}
    values = [np.array([1.0, 2.0], np.float32), np.array([4.0, -1.0], np.float32)]
    output = process.next(state, values, [np.float32(1), np.float32(3)])
    np.testing.assert_allclose(output.result, [(1 + 12) / 4, (2 - 3) / 4])
    assert output.result.dtype == np.float32
    assert dict(output.measurements) == {"mean_value": (), "mean_weight": ()}


def test_stacked_clients_and_inner_sum_factories_agree_with_lists():
    rng = np.random.default_rng(0)
    values = [rng.normal(size=(3,)) for _ in range(4)]
    weights = [1.0, 2.0, 0.5, 3.0]
    expected = sum(w * v for w, v in zip(weights, values)) / sum(weights)
    stacked = mean(StackedClients(np.stack(values)), StackedClients(np.array(weights)))
    explicit = mean(values, weights, value_sum_factory=SumFactory(), weight_sum_factory=SumFactory())
    np.testing.assert_allclose(stacked, expected, rtol=1e-12)
    np.testing.assert_allclose(explicit, expected, rtol=1e-12)


def test_bad_weights_raise_clear_errors():
    with pytest.raises(ValueError, match="negative weight"):
        mean([np.zeros(3), np.ones(3)], [1.0, -1.0])
    with pytest.raises(ValueError, match="no clients|one scalar weight"):
        mean([], [])


def test_sum_factory_sums():
    process = SumFactory().create(SPEC)
    output = process.next(process.initialize(), [np.ones(3), np.full(3, 2.0)])
    np.testing.assert_array_equal(output.result, np.full(3, 3.0))
    assert output.state == () and output.measurements == ()
    assert not process.is_weighted


def test_stacked_object_values_are_refused_as_a_list_of_them_is():
    process = MeanFactory().create(TensorSpec((1,), "float32"), TensorSpec((), "float32"))
    objects = np.empty((2, 1), object)
    for values in (StackedClients(objects), list(objects)):
        with pytest.raises(TypeError, match="cannot make a TensorSpec"):
            process.next(process.initialize(), values, [np.float32(1), np.float32(1)])
