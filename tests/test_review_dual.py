"""Review of the dual-form vectorized executor and its cross-round cache: each test is a bug found in review, now fixed.

Each test compares `executor="vectorized"` with the per-client loop (the
reference) or bounds a resource the loop never needs; each failed on the code
it was written against.
"""

from __future__ import annotations

import collections
import tracemalloc

import numpy as np
import pytest

from fl_blocks.models import ModelWeights
from fl_blocks.placements import AllEqual
from fl_blocks.simulation.datasets import ClientData, pixels_to_float32
from test_executors import DIM, assert_results_close, run_client_work, weights_with_scale


pytestmark = pytest.mark.usefixtures("empty_cache")


def frozen_client_data(rng, sizes, writeable=False):
    columns = collections.OrderedDict(
        (f"c{i}", collections.OrderedDict(label=rng.integers(0, 3, n).astype(np.int32),
                                          pixels=rng.integers(0, 256, (n, 2, 3), dtype=np.uint8)))
        for i, n in enumerate(sizes))
    for tree in columns.values():
        for array in tree.values():
            array.flags.writeable = writeable
    return columns, ClientData.from_arrays(columns, element_fn=pixels_to_float32)


def as_lists(datasets):
    return [[(np.array(x), np.array(y)) for x, y in d] for d in datasets]


class Scaler:
    def __init__(self, scale):
        self.scale = np.float32(scale)

    def batch_format(self, element):
        return element["pixels"].reshape(-1, DIM) * self.scale, element["label"].reshape(-1, 1)


def test_bound_methods_of_different_instances_get_different_cache_entries():
    """Maps `Scaler(1).batch_format` then `Scaler(2).batch_format` share one cache key, so round 2 trains on round 1's rows."""
    rng = np.random.default_rng(0)
    _, train = frozen_client_data(rng, [5, 9, 13])
    weights = AllEqual(weights_with_scale(rng, 1.0))
    for scale in (1, 1, 2, 2):  # each map twice: kept whether a client's first round is cached or not
        datasets = [train.create_dataset_for_client(c).batch(4).map(Scaler(scale).batch_format) for c in train.client_ids]
        assert_results_close(run_client_work("vectorized", datasets, weights), run_client_work("loop", as_lists(datasets), weights))


def test_bound_methods_of_different_instances_are_not_merged_in_one_round():
    """Within one round, clients mapped by different instances' bound methods are mapped once with the first client's map."""
    rng = np.random.default_rng(1)
    _, train = frozen_client_data(rng, [5, 9, 13], writeable=True)
    weights = AllEqual(weights_with_scale(rng, 1.0))
    datasets = [train.create_dataset_for_client(c).batch(4).map(Scaler(i + 1).batch_format)
                for i, c in enumerate(train.client_ids)]
    assert_results_close(run_client_work("vectorized", datasets, weights), run_client_work("loop", as_lists(datasets), weights))


def test_arrays_made_writeable_and_changed_after_a_round_are_seen():
    """Source arrays frozen for round 1, then made writeable and changed in place: round 2 still hits round 1's rows."""
    rng = np.random.default_rng(2)
    columns, train = frozen_client_data(rng, [5, 9, 13])
    weights = AllEqual(weights_with_scale(rng, 1.0))
    datasets = [train.create_dataset_for_client(c).batch(4).map(Scaler(1).batch_format) for c in train.client_ids]
    for _ in range(2):  # kept whether a client's first round is cached or not
        run_client_work("vectorized", datasets, weights)
    for tree in columns.values():
        tree["pixels"].flags.writeable = True  # allowed: the array owns its bytes
        tree["pixels"][...] = 255 - tree["pixels"]
    assert_results_close(run_client_work("vectorized", datasets, weights), run_client_work("loop", as_lists(datasets), weights))


def test_map_closing_over_an_array_changed_in_place_is_seen():
    """A map closing over a (writeable) per-feature scale array that changes between rounds: round 2 reuses round 1's rows."""
    rng = np.random.default_rng(3)
    _, train = frozen_client_data(rng, [5, 9, 13])
    weights = AllEqual(weights_with_scale(rng, 1.0))
    scale = np.ones(DIM, np.float32)

    def batch_format(element):
        return element["pixels"].reshape(-1, DIM) * scale, element["label"].reshape(-1, 1)

    for value in (1, 1, 3, 3):  # each value twice: kept whether a client's first round is cached or not
        scale[:] = value
        datasets = [train.create_dataset_for_client(c).batch(4).map(batch_format) for c in train.client_ids]
        assert_results_close(run_client_work("vectorized", datasets, weights), run_client_work("loop", as_lists(datasets), weights))


def test_clip_is_applied_when_gradient_rows_nearly_cancel():
    """Three near-duplicate unnormalized rows (pixels ~255), labels 0, 1, 2, clip 1e-3: the dual norm misses the clip (update ~20x the loop's)."""
    rng = np.random.default_rng(0)
    x = np.float32(255) + rng.normal(scale=0.02, size=(3, DIM)).astype(np.float32)
    columns = {"c0": collections.OrderedDict(label=np.array([0, 1, 2], np.int32), pixels=x)}
    for array in columns["c0"].values():
        array.flags.writeable = False
    train = ClientData.from_arrays(columns)
    weights = AllEqual(ModelWeights([np.zeros((DIM, 3), np.float32), np.zeros(3, np.float32)], []))
    for _ in range(3):  # whether a client's first round is stepped or in dual form
        datasets = [train.create_dataset_for_client("c0").batch(3).map(lambda e: (e["pixels"], e["label"]))]
        assert_results_close(run_client_work("vectorized", datasets, weights, clip=1e-3),
                             run_client_work("loop", as_lists(datasets), weights, clip=1e-3))


def test_empty_clients_do_not_multiply_the_gram_memory():
    """One 200-row client plus 300 empty ones: the by-client chunk is 301 x 200 rows and its Gram 48 MB (loop: ~0)."""
    rng = np.random.default_rng(4)
    _, train = frozen_client_data(rng, [200] + [0] * 300)
    datasets = [train.create_dataset_for_client(c).batch(4).map(Scaler(1).batch_format) for c in train.client_ids]
    weights = AllEqual(weights_with_scale(rng, 1.0))
    tracemalloc.start()
    try:
        for _ in range(2):  # whether a client's first round is stepped or in dual form
            run_client_work("vectorized", datasets, weights)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MB for 200 rows of {DIM} features"


def test_a_round_without_clients():
    """No clients this round: the loop returns no results, vectorized raises ValueError: max() arg is an empty sequence."""
    weights = AllEqual(weights_with_scale(np.random.default_rng(5), 1.0))
    assert run_client_work("vectorized", [], weights) == run_client_work("loop", [], weights) == []
