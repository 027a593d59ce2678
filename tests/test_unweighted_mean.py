"""Property and example tests of `UnweightedMeanFactory` and `as_weighted_aggregator`."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fl_blocks.aggregators import MeanFactory, SumFactory, UnweightedMeanFactory, as_weighted_aggregator
from fl_blocks.placements import StackedClients
from fl_blocks.specs import TensorSpec
from fl_blocks.templates.measured_process import MeasuredProcessOutput

SPEC = TensorSpec((3,), "float64")


@st.composite
def client_values(draw):
    n = draw(st.integers(1, 7))
    return list(draw(hnp.arrays(np.float64, (n, 3), elements=st.floats(-1e3, 1e3, width=64))))


def unweighted_mean(values):
    process = UnweightedMeanFactory().create(SPEC)
    return process.next(process.initialize(), values).result


@given(client_values(), st.randoms(use_true_random=False))
def test_permutation_invariance(values, random):
    order = list(range(len(values)))
    random.shuffle(order)
    np.testing.assert_allclose(unweighted_mean([values[i] for i in order]), unweighted_mean(values), rtol=1e-12, atol=1e-9)


@given(client_values())
def test_equals_numpy_mean(values):
    np.testing.assert_allclose(unweighted_mean(values), np.mean(values, axis=0), rtol=1e-12, atol=1e-9)


@given(client_values(), st.lists(st.floats(0.0, 1e3), min_size=7, max_size=7))
def test_as_weighted_ignores_the_weights(values, weights):
    process = as_weighted_aggregator(UnweightedMeanFactory()).create(SPEC, TensorSpec((), "float64"))
    result = process.next(process.initialize(), values, weights[: len(values)]).result
    np.testing.assert_array_equal(result, unweighted_mean(values))


@given(client_values())
def test_stacked_clients_give_the_same_mean(values):
    np.testing.assert_allclose(unweighted_mean(StackedClients(np.stack(values))), unweighted_mean(values), rtol=1e-12)


def test_state_measurements_and_dtype_as_tff():
    process = UnweightedMeanFactory().create([TensorSpec((2,), "float32"), TensorSpec((), "float32")])
    state = process.initialize()
    assert state == ((), ())
    values = [[np.array([1.0, 2.0], np.float32), np.float32(3.0)], [np.array([2.0, 4.0], np.float32), np.float32(0.0)]]
    output = process.next(state, values)
    assert isinstance(output, MeasuredProcessOutput) and output.state == ((), ())
    assert list(output.measurements) == ["mean_value", "mean_count"]
    assert output.measurements["mean_value"] == () and output.measurements["mean_count"] == ()
    np.testing.assert_array_equal(output.result[0], np.array([1.5, 3.0], np.float32))
    assert output.result[0].dtype == np.float32 and np.asarray(output.result[1]).dtype == np.float32
    assert not process.is_weighted


def test_inner_sum_processes_are_used():
    class DoublingSum(SumFactory):
        def create(self, value_spec):
            inner = super().create(value_spec)
            return type(inner)(
                lambda: "doubling",
                lambda state, value: MeasuredProcessOutput(state, inner.next((), value).result * 2, "measured"),
                value_spec=inner.value_spec,
            )

    process = UnweightedMeanFactory(value_sum_factory=DoublingSum()).create(SPEC)
    output = process.next(process.initialize(), [np.ones(3), np.ones(3)])
    np.testing.assert_array_equal(output.result, np.full(3, 2.0))  # (2 * sum) / count
    assert output.state == ("doubling", ()) and output.measurements["mean_value"] == "measured"


def test_integer_values_are_refused_with_advice():
    with pytest.raises(TypeError, match="float32"):
        UnweightedMeanFactory().create(TensorSpec((2,), "int32"))


def test_bad_factories_are_named():
    with pytest.raises(TypeError, match="value_sum_factory"):
        UnweightedMeanFactory(value_sum_factory="sum")
    with pytest.raises(TypeError, match="unweighted"):
        as_weighted_aggregator(MeanFactory()).create(SPEC, TensorSpec((), "float64"))
