"""Maps that compute the same are applied once to all clients' rows; maps that differ are not merged."""

from __future__ import annotations

import numpy as np
import pytest

from fl_blocks.execution import functions, layout
from test_executors import DIM, assert_results_close, run_client_work, uint8_client_data, weights_with_scale
from fl_blocks.placements import AllEqual


def tutorial_preprocess(dataset, batch_size=4, drop_remainder=False):
    def batch_format_fn(element):  # a new function object per client, as in TFF's tutorial
        return element["pixels"].reshape(-1, DIM), element["label"].reshape(-1, 1)
    return dataset.batch(batch_size, drop_remainder).map(batch_format_fn)


def scaled_preprocess(dataset, scale):
    def batch_format_fn(element):  # same code, a different closure value per client
        return element["pixels"].reshape(-1, DIM) * np.float32(scale), element["label"].reshape(-1, 1)
    return dataset.batch(4).map(batch_format_fn)


@pytest.mark.parametrize("sizes", [[9, 23, 0, 14], [9, 23, 14]])
@pytest.mark.parametrize("drop_remainder", [False, True])
def test_tutorial_preprocess_is_mapped_once_for_all_clients(sizes, drop_remainder, monkeypatch):
    rng = np.random.default_rng(5)
    train = uint8_client_data(rng, sizes)
    datasets = [tutorial_preprocess(train.create_dataset_for_client(c), drop_remainder=drop_remainder)
                for c in train.client_ids]
    lists = [[(np.asarray(x), np.asarray(y)) for x, y in d] for d in datasets]
    weights = AllEqual(weights_with_scale(rng, 1.0))
    want = run_client_work("loop", lists, weights)
    monkeypatch.setattr(layout, "stack_rows", lambda *a: pytest.fail("per-client batches were stacked"))
    assert_results_close(run_client_work("vectorized", datasets, weights), want)


def test_different_closure_values_are_not_merged():
    rng = np.random.default_rng(6)
    train = uint8_client_data(rng, [9, 23, 14])
    datasets = [scaled_preprocess(train.create_dataset_for_client(c), s) for c, s in zip(train.client_ids, [1, 2, 3])]
    lists = [[(np.asarray(x), np.asarray(y)) for x, y in d] for d in datasets]
    weights = AllEqual(weights_with_scale(rng, 1.0))
    assert_results_close(run_client_work("vectorized", datasets, weights), run_client_work("loop", lists, weights))


def make(scale, offset=0.0, *, power=1):
    def fn(x, shift=offset):
        return x * scale + shift
    return fn


@pytest.mark.parametrize("a, b, same", [
    (make(2), make(2), True),
    (make(2), make(3), False),  # closure value
    (make(2, 0.5), make(2, 0.25), False),  # default value
    (make(2), lambda x, shift=0.0: x * 2 + shift, False),  # other code
    (np.sqrt, np.sqrt, True),
    (np.sqrt, np.exp, False),
])
def test_same_function(a, b, same):
    assert functions.same_function(a, b) is same
    assert functions.same_functions((a, a), (b, b)) is same
    assert not functions.same_functions((a,), (a, a))
