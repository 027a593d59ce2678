"""CLIENTS values and value specs."""

from __future__ import annotations

import numpy as np
import pytest

from fl_blocks.models import ModelWeights
from fl_blocks.placements import AllEqual, StackedClients, stack_client_values
from fl_blocks.specs import SpecMismatchError, TensorSpec, check_same_spec, leaf_paths, spec_of, zeros_like_spec
from fl_blocks.templates.client_works import ClientResult, unzip_client_results


def test_stacked_clients_index_slice_and_unzip():
    results = StackedClients(ClientResult(update=[np.arange(6.0).reshape(3, 2)], update_weight=np.array([1.0, 2.0, 3.0])))
    assert len(results) == 3
    assert results[2].update_weight == 3.0
    np.testing.assert_array_equal(results[1].update[0], [2.0, 3.0])
    assert len(results[1:]) == 2
    with pytest.raises(IndexError):
        results[3]
    updates, weights = unzip_client_results(results)
    np.testing.assert_array_equal(stack_client_values(updates)[0], np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(stack_client_values(weights), [1.0, 2.0, 3.0])


def test_stacked_clients_reject_ragged_client_axis():
    with pytest.raises(ValueError, match="leading client axis"):
        StackedClients([np.zeros((3, 2)), np.zeros((4,))])


def test_stack_list_and_all_equal():
    stacked = stack_client_values([[np.zeros(2)], [np.ones(2)]])
    np.testing.assert_array_equal(stacked[0], [[0, 0], [1, 1]])
    with pytest.raises(ValueError, match="no clients"):
        stack_client_values([])
    assert AllEqual(5)[0] == AllEqual(5)[99] == 5


def test_specs_paths_and_zeros():
    weights = ModelWeights([np.zeros((784, 10), np.float32), np.zeros(10, np.float32)], [])
    spec = spec_of(weights)
    assert str(spec.trainable[0]) == "float32[784,10]"
    assert leaf_paths(spec) == ["trainable[0]", "trainable[1]"]
    zeros = zeros_like_spec(spec)
    assert isinstance(zeros, ModelWeights) and zeros.trainable[0].shape == (784, 10)
    assert TensorSpec((2,), np.float64) == TensorSpec([2], "float64")
    with pytest.raises(SpecMismatchError, match=r"x expects float32\[10\] at trainable\[1\], y produces float64\[10\]"):
        check_same_spec(spec, spec_of(ModelWeights([weights.trainable[0], np.zeros(10)], [])), consumer="x", producer="y")
