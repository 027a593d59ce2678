"""Federated k-means (`build_fed_kmeans`): TFF golden, hand-computed rounds, Lloyd step, TFF's rule, convergence, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from conftest import DATA_NPZ, GOLDEN, require
from fl_blocks.aggregators import MeanFactory
from fl_blocks.algorithms import build_fed_kmeans
from fl_blocks.simulation.datasets.dataset import Dataset
from fl_blocks.specs import SpecMismatchError

# ---------------------------------------------------------------- golden made by real TFF 0.87


def _golden():
    data = np.load(GOLDEN / "kmeans.npz", allow_pickle=False)
    return data, json.loads(str(data["config"]))


def _empty_as_list(tree):
    """TFF's JSON writes empty structures as []; fl_blocks uses ()."""
    if isinstance(tree, dict):
        return {k: _empty_as_list(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return [_empty_as_list(v) for v in tree]
    return tree.tolist() if isinstance(tree, (np.ndarray, np.generic)) else tree


def _golden_clients(data, config, name):
    if name == "emnist":
        with np.load(require(DATA_NPZ), allow_pickle=False) as shared:
            ids, offsets, pixels = list(shared["train_client_ids"]), shared["train_offsets"], shared["train_pixels"]
        clients = []
        for cid in config["client_ids"]:
            i = ids.index(cid)
            clients.append((pixels[offsets[i]:offsets[i + 1]].astype(np.float32) / np.float32(255)).reshape(-1, 28, 28))
        return clients
    offsets = np.concatenate([[0], np.cumsum(data[f"{name}_client_sizes"])])
    points = data[f"{name}_points"]
    return [points[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


@pytest.mark.parametrize("name,batched", [("blobs", False), ("matrix", True), ("emnist", True)])
def test_matches_tff_golden_from_tffs_initial_centroids(name, batched):
    data, config = _golden()
    case = config["cases"][name]
    clients = _golden_clients(data, case, name)
    assert [len(c) for c in clients] == list(data[f"{name}_client_sizes"])
    # TFF's points are an unbatched sequence; fl_blocks also takes batches: both must give TFF's numbers.
    datasets = [[c[s:s + 10] for s in range(0, len(c), 10)] if batched else list(c) for c in clients]
    process = build_fed_kmeans(case["num_clusters"], tuple(case["data_shape"]), random_seed=tuple(case["random_seed"]))
    state = process.initialize()
    assert _empty_as_list(state._asdict()) | {"global_model_weights": None} == case["initial_state"] | {"global_model_weights": None}
    assert process.get_model_weights(state).shape == data[f"{name}_c0"].shape
    # NumPy cannot reproduce tf.random.stateless_normal's draw: start from TFF's initial centroids.
    state = process.set_model_weights(state, data[f"{name}_c0"])
    np.testing.assert_array_equal(state.finalizer, data[f"{name}_w0"])
    for r in range(1, case["rounds"] + 1):
        output = process.next(state, datasets)
        state = output.state
        centroids = process.get_model_weights(state)
        assert centroids.dtype == np.float32 and state.finalizer.dtype == np.float32
        np.testing.assert_allclose(centroids, data[f"{name}_c{r}"], rtol=1e-6, atol=1e-6, err_msg=f"round {r}")
        np.testing.assert_array_equal(state.finalizer, data[f"{name}_w{r}"])
        assert _empty_as_list(output.metrics) == json.loads(str(data[f"{name}_metrics"][r - 1]))
        assert list(output.metrics) == ["distributor", "client_work", "aggregator", "finalizer"]
    assert _empty_as_list(process.get_hparams(state)) == case["get_hparams"]


def test_golden_covers_an_empty_client_and_a_cluster_that_gets_no_points():
    data, _ = _golden()
    assert 0 in data["blobs_client_sizes"]
    weights = np.stack([data[f"blobs_w{r}"] for r in range(6)])
    assert (weights[:, 1] == 1).all()  # never assigned: TFF keeps the centroid and its pseudo-count
    np.testing.assert_array_equal(data["blobs_c5"][1], data["blobs_c0"][1])


# ---------------------------------------------------------------- hand-computed (fedjax style)


def test_two_clients_one_round_by_hand():
    process = build_fed_kmeans(3, (2,), random_seed=(0, 0))
    centroids = np.array([[0, 0], [10, 10], [100, 100]], np.float32)
    client_a = np.array([[1, 0], [0, 1], [9, 10]], np.float32)
    client_b = np.array([[2, 2], [5, 5], [11, 11]], np.float32)  # (5, 5) ties clusters 0 and 1: the first wins
    a_before, b_before = client_a.copy(), client_b.copy()
    state = process.set_model_weights(process.initialize(), centroids)
    output = process.next(state, [[client_a], [client_b[:2], client_b[2]]])
    # cluster 0: pseudo-count 1 at (0,0) + (1,0) + (0,1) + (2,2) + (5,5) -> (8,8) / 5
    # cluster 1: pseudo-count 1 at (10,10) + (9,10) + (11,11) -> (30,31) / 3
    # cluster 2: no points -> unchanged, weight stays 1
    np.testing.assert_allclose(output.state.global_model_weights, [[1.6, 1.6], [10, 31 / 3], [100, 100]], rtol=1e-6)
    np.testing.assert_array_equal(output.state.finalizer, [5, 3, 1])
    assert output.metrics["client_work"]["num_examples"] == 6 and output.metrics["client_work"]["num_examples"].dtype == np.float32
    np.testing.assert_array_equal(client_a, a_before)
    np.testing.assert_array_equal(client_b, b_before)
    np.testing.assert_array_equal(centroids[2], [100, 100])


def test_zero_weight_and_no_points_sends_the_centroid_to_zero_as_tff():
    process = build_fed_kmeans(2, (1,), random_seed=(0, 0))
    state = process.set_model_weights(process.initialize(), np.array([[0.0], [7.0]], np.float32))
    state = state._replace(finalizer=np.zeros(2, np.float32))
    output = process.next(state, [[np.array([[1.0], [2.0]], np.float32)]])
    np.testing.assert_array_equal(output.state.global_model_weights, [[1.5], [0.0]])  # divide_no_nan(0, 0) = 0
    np.testing.assert_array_equal(output.state.finalizer, [2, 0])


# ---------------------------------------------------------------- Lloyd step and TFF's rule, against oracles


def _nearest(centroids, point):
    best, best_distance = 0, None
    for j, centroid in enumerate(centroids):
        distance = sum((float(c) - float(p)) ** 2 for c, p in zip(np.ravel(centroid), np.ravel(point)))
        if best_distance is None or distance < best_distance:
            best, best_distance = j, distance
    return best


def _split(points, cuts):
    bounds = [0] + sorted(min(c, len(points)) for c in cuts) + [len(points)]
    return [points[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


points_st = st.integers(1, 3).flatmap(
    lambda dim: st.lists(st.lists(st.integers(-5, 5), min_size=dim, max_size=dim), min_size=1, max_size=30)
)


@given(points=points_st, k=st.integers(1, 4), cuts=st.lists(st.integers(0, 30), max_size=3))
def test_zero_cluster_weights_and_all_clients_give_a_centralized_lloyd_step(points, k, cuts):
    points = np.array(points, np.float32)
    distinct = np.unique(points, axis=0)
    assume(len(distinct) >= k)
    centroids = distinct[:k]  # data points, so every cluster gets at least its own point
    process = build_fed_kmeans(k, points.shape[1:], random_seed=(1, 2))
    state = process.set_model_weights(process.initialize(), centroids)._replace(finalizer=np.zeros(k, np.float32))
    output = process.next(state, [[c] for c in _split(points, cuts)])
    # Lloyd: every centroid becomes the mean of the points nearest to it (float64, one central pass).
    assignment = np.array([_nearest(centroids, p) for p in points])
    lloyd = np.stack([points[assignment == j].astype(np.float64).mean(axis=0) for j in range(k)])
    np.testing.assert_allclose(output.state.global_model_weights, lloyd, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(output.state.finalizer, np.bincount(assignment, minlength=k))


@given(
    points=points_st,
    data=st.data(),
    cuts=st.lists(st.integers(0, 30), max_size=3),
)
def test_tffs_centroid_rule_against_an_oracle(points, data, cuts):
    points = np.array(points, np.float32)
    dim = points.shape[1]
    k = data.draw(st.integers(1, 4))
    centroids = np.array(data.draw(st.lists(st.lists(st.integers(-6, 6), min_size=dim, max_size=dim), min_size=k, max_size=k)), np.float32)
    weights = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.25, 1.0, 3.0]), min_size=k, max_size=k)), np.float32)
    process = build_fed_kmeans(k, (dim,), random_seed=(3, 4))
    state = process.set_model_weights(process.initialize(), centroids)._replace(finalizer=weights)
    output = process.next(state, [list(c) for c in _split(points, cuts)])
    # Oracle, written from TFF's _update_centroids: running weighted mean, empty clusters kept (0 when weightless).
    expected, expected_weights = [], []
    for j in range(k):
        mine = [p for p in points if _nearest(centroids, p) == j]
        n, w = len(mine), float(weights[j])
        if n:
            expected.append((w * centroids[j].astype(np.float64) + np.sum(mine, axis=0, dtype=np.float64)) / (w + n))
        else:
            expected.append(centroids[j] if w > 0 else np.zeros(dim))
        expected_weights.append(w + n)
    np.testing.assert_allclose(output.state.global_model_weights, np.array(expected), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(output.state.finalizer, expected_weights)
    assert output.metrics["client_work"]["num_examples"] == len(points)


# ---------------------------------------------------------------- convergence


def test_converges_to_separable_blob_means_across_four_clients():
    rng = np.random.default_rng(7)
    means = np.array([[0.0, 8.0], [8.0, -4.0], [-8.0, -4.0]])
    labels = rng.integers(0, 3, size=600)
    points = (means[labels] + 0.5 * rng.normal(size=(600, 2))).astype(np.float32)
    clients = [Dataset.from_tensor_slices(points[i::4]).batch(16) for i in range(4)]
    process = build_fed_kmeans(3, (2,), random_seed=(0, 1))
    # seeded with one data point of each blob (in the wrong order, and off-centre)
    seeds = np.stack([points[labels == j][0] for j in (2, 0, 1)])
    state = process.set_model_weights(process.initialize(), seeds)
    for _ in range(10):
        state = process.next(state, clients).state
    found = process.get_model_weights(state)
    order = [int(np.argmin(np.linalg.norm(found - m, axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    sample_means = np.stack([points[labels == j].mean(axis=0, dtype=np.float64) for j in range(3)])
    np.testing.assert_allclose(found[order], sample_means, atol=1e-3)  # the seeds' pseudo-counts fade as 1 / (1 + 10 n)
    np.testing.assert_allclose(found[order], means, atol=0.2)  # sample means of ~200 points, std 0.5: within 0.13 here
    np.testing.assert_allclose(state.finalizer[order], 1 + 10 * np.bincount(labels, minlength=3))


def test_batched_pointwise_and_whole_array_client_data_agree():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(23, 4)).astype(np.float32)
    process = build_fed_kmeans(3, (4,), random_seed=(5, 5))
    state = process.initialize()
    results = [process.next(state, [data]).state for data in (list(points), [points[:10], points[10:]], points, Dataset.from_tensor_slices(points).batch(7))]
    for other in results[1:]:
        np.testing.assert_array_equal(other.global_model_weights, results[0].global_model_weights)
        np.testing.assert_array_equal(other.finalizer, results[0].finalizer)


def test_initialization_is_seeded_standard_normal_with_pseudo_count_one():
    first, again, other = (build_fed_kmeans(4, (3, 2), random_seed=s).initialize() for s in [(1, 2), (1, 2), (2, 1)])
    assert first.global_model_weights.shape == (4, 3, 2) and first.global_model_weights.dtype == np.float32
    np.testing.assert_array_equal(first.global_model_weights, again.global_model_weights)
    assert not np.array_equal(first.global_model_weights, other.global_model_weights)
    np.testing.assert_array_equal(first.finalizer, np.ones(4, np.float32))
    assert (first.distributor, first.client_work, first.aggregator) == ((), (), ())
    unseeded = build_fed_kmeans(2, (2,))  # TFF fixes a time-based seed when building: initialize repeats it
    np.testing.assert_array_equal(unseeded.initialize().global_model_weights, unseeded.initialize().global_model_weights)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("num_clusters", [0, -1, 2.5, True, "3"])
def test_bad_num_clusters(num_clusters):
    with pytest.raises(ValueError, match="num_clusters"):
        build_fed_kmeans(num_clusters, (2,))


@pytest.mark.parametrize("data_shape,error", [((0,), ValueError), ((2.5,), ValueError), (5, TypeError)])
def test_bad_data_shape(data_shape, error):
    with pytest.raises(error, match="data_shape"):
        build_fed_kmeans(2, data_shape)


def test_bad_seed_and_aggregator():
    with pytest.raises(ValueError, match="random_seed"):
        build_fed_kmeans(2, (2,), random_seed=(1, 2, 3))
    with pytest.raises(TypeError, match="unweighted"):
        build_fed_kmeans(2, (2,), sum_aggregator=MeanFactory())


def test_points_of_the_wrong_shape_are_named_by_client_and_element():
    process = build_fed_kmeans(2, (2,), random_seed=(0, 0))
    good = [np.zeros((3, 2), np.float32)]
    with pytest.raises(ValueError, match=r"client 1, element 1: expected a point of shape \(2,\) or a batch of shape \(B, 2\), got shape \(4, 3\)"):
        process.next(process.initialize(), [good, [np.zeros((1, 2)), np.zeros((4, 3))]])
    with pytest.raises(ValueError, match="client 0, element 0: expected an array of points, got a dict"):
        process.next(process.initialize(), [[{"x": np.zeros((3, 2))}]])
    with pytest.raises(TypeError, match="client 0, element 0: points must be real numbers"):
        process.next(process.initialize(), [[np.array([["a", "b"]])]])
    with pytest.raises(TypeError, match="one-shot iterator"):
        process.next(process.initialize(), [iter(good)])


def test_set_model_weights_of_the_wrong_shape_names_the_leaf():
    process = build_fed_kmeans(2, (2,), random_seed=(0, 0))
    with pytest.raises(SpecMismatchError, match=r"float32\[2,2\].*float32\[2,3\]"):
        process.set_model_weights(process.initialize(), np.zeros((2, 3), np.float32))
