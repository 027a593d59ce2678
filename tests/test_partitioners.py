"""Seeded partitioners: properties (exactly-once, determinism, Dirichlet -> IID), examples, errors, real labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import DATA_NPZ, require
from fl_blocks.simulation.datasets import partitioners as P
from fl_blocks.simulation.datasets.client_data import pixels_to_float32

seeds = st.integers(0, 2**32 - 1)


@st.composite
def labelled(draw, max_size=300, max_classes=12):
    """(labels, num_clients): integer labels, 1 <= num_clients <= len(labels)."""
    n = draw(st.integers(1, max_size))
    labels = np.array(draw(st.lists(st.integers(0, max_classes - 1), min_size=n, max_size=n)), np.int64)
    return labels, draw(st.integers(1, min(n, 25)))


def all_methods(labels, num_clients, seed):
    """Every partitioner on the same input (shards only where there are enough examples)."""
    out = {
        "iid": P.iid_partition(labels.size, num_clients, seed),
        "sizes": P.size_partition(labels.size, num_clients, seed, sigma=1.5),
        "dirichlet": P.dirichlet_partition(labels, num_clients, alpha=0.3, seed=seed),
    }
    if 2 * num_clients <= labels.size:
        out["shards"] = P.shard_partition(labels, num_clients, shards_per_client=2, seed=seed)
    return out


def assert_exactly_once(partition, num_examples, num_clients):
    assert len(partition) == num_clients
    for part in partition:
        assert part.dtype == np.int64 and part.ndim == 1
        assert np.all(np.diff(part) > 0), "each client's indices are strictly ascending"
    counts = np.bincount(np.concatenate(partition), minlength=num_examples)
    assert counts.size == num_examples and np.all(counts == 1)


def distributions(labels, partition, num_classes):
    """Per-client label distributions, computed here independently of `label_counts`."""
    rows = []
    for part in partition:
        hist = np.zeros(num_classes)
        for label in labels[part]:
            hist[label] += 1
        rows.append(hist / max(hist.sum(), 1))
    return np.array(rows)


def total_variation(labels, partition, num_classes):
    glob = np.bincount(labels, minlength=num_classes) / labels.size
    return 0.5 * np.abs(distributions(labels, partition, num_classes) - glob).sum(axis=1)


@given(labelled(), seeds)
def test_every_example_exactly_once(data, seed):
    labels, num_clients = data
    for name, partition in all_methods(labels, num_clients, seed).items():
        assert_exactly_once(partition, labels.size, num_clients), name


@given(labelled(), seeds)
def test_same_seed_same_partition(data, seed):
    labels, num_clients = data
    first, second = all_methods(labels, num_clients, seed), all_methods(labels.copy(), num_clients, seed)
    for name in first:
        assert all(np.array_equal(a, b) for a, b in zip(first[name], second[name])), name


def test_different_seeds_usually_differ():
    labels = np.arange(400) % 10
    for name in ("iid", "sizes", "dirichlet", "shards"):
        runs = [all_methods(labels, 8, seed)[name] for seed in range(10)]
        same = sum(all(np.array_equal(a, b) for a, b in zip(runs[i], runs[i + 1])) for i in range(9))
        assert same == 0, name


@settings(max_examples=20, deadline=None)
@given(seeds, st.integers(3, 20))  # (with 2 clients, total variation from the global mix is at most ~0.5)
def test_dirichlet_large_alpha_is_close_to_iid_small_alpha_is_skewed(seed, num_clients):
    labels = np.random.default_rng(seed).permutation(np.arange(5000) % 10)
    near_iid = total_variation(labels, P.dirichlet_partition(labels, num_clients, alpha=1e4, seed=seed), 10)
    skewed = total_variation(labels, P.dirichlet_partition(labels, num_clients, alpha=0.05, seed=seed), 10)
    assert near_iid.max() < 0.05
    assert skewed.mean() > 0.4
    moderate = total_variation(labels, P.dirichlet_partition(labels, num_clients, alpha=1.0, seed=seed), 10)
    assert near_iid.mean() < moderate.mean() < skewed.mean()


@given(st.integers(1, 10), st.integers(1, 4), st.integers(1, 6), seeds, st.data())
def test_shards_aligned_with_label_blocks(num_clients, shards_per_client, shard_size, seed, data):
    num_shards = num_clients * shards_per_client
    shard_labels = data.draw(st.lists(st.integers(0, 9), min_size=num_shards, max_size=num_shards))
    labels = np.random.default_rng(seed).permutation(np.repeat(shard_labels, shard_size))
    partition = P.shard_partition(labels, num_clients, shards_per_client, seed=seed)
    assert_exactly_once(partition, labels.size, num_clients)
    for part in partition:
        assert part.size == shards_per_client * shard_size
        assert np.unique(labels[part]).size <= shards_per_client
        assert all(np.sum(labels[part] == c) % shard_size == 0 for c in np.unique(labels[part]))


@given(st.integers(1, 2000), st.integers(1, 30), st.floats(0, 3), st.integers(0, 20), seeds)
def test_size_partition_sizes(num_examples, num_clients, sigma, min_size, seed):
    num_clients = min(num_clients, num_examples)
    min_size = min(min_size, num_examples // num_clients)
    partition = P.size_partition(num_examples, num_clients, seed, sigma=sigma, min_size=min_size)
    assert_exactly_once(partition, num_examples, num_clients)
    sizes = np.array([len(p) for p in partition])
    assert sizes.min() >= min_size
    if sigma == 0:
        assert sizes.max() - sizes.min() <= 1


def test_size_partition_spread_grows_with_sigma():
    spread = [np.std([len(p) for p in P.size_partition(10_000, 50, seed=3, sigma=s, min_size=0)]) for s in (0, 0.5, 2)]
    assert spread[0] < 1 < spread[1] < spread[2]


@given(labelled(), seeds)
def test_iid_sizes_differ_by_at_most_one(data, seed):
    labels, num_clients = data
    sizes = [len(p) for p in P.iid_partition(labels.size, num_clients, seed)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == labels.size


def test_dirichlet_min_size_is_honoured():
    labels = np.arange(1000) % 10
    partition = P.dirichlet_partition(labels, 10, alpha=0.5, seed=0, min_size=30)
    assert min(len(p) for p in partition) >= 30
    assert_exactly_once(partition, labels.size, 10)


def test_shard_partition_small_example_by_hand():
    labels = np.array([3, 1, 2, 0, 1, 3, 0, 2])  # sorted order: 0:(3,6) 1:(1,4) 2:(2,7) 3:(0,5)
    partition = P.shard_partition(labels, num_clients=4, shards_per_client=1, seed=5)
    assert sorted(tuple(p.tolist()) for p in partition) == [(0, 5), (1, 4), (2, 7), (3, 6)]


def test_label_counts_matches_manual_histogram():
    labels = np.random.default_rng(0).integers(0, 7, 500)
    partition = P.dirichlet_partition(labels, 6, alpha=0.2, seed=1)
    counts = P.label_counts(labels, partition, num_classes=9)
    assert counts.shape == (6, 9) and counts.sum() == 500
    dist = distributions(labels, partition, 9)
    assert np.allclose(counts / counts.sum(1, keepdims=True), dist)


def test_partition_labels_dispatches():
    labels = np.arange(60) % 3
    assert all(np.array_equal(a, b) for a, b in zip(P.partition_labels("shards", labels, 5, 2, shards_per_client=3),
                                                       P.shard_partition(labels, 5, 3, seed=2)))
    assert all(np.array_equal(a, b) for a, b in zip(P.partition_labels("dirichlet", labels, 4, 7, alpha=2.0),
                                                       P.dirichlet_partition(labels, 4, 2.0, seed=7)))
    with pytest.raises(ValueError, match="partition method"):
        P.partition_labels("writers", labels, 3, 0)


def test_partition_arrays_rows_dtypes_and_ids():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 30).astype(np.int32)
    partition = P.iid_partition(30, 12, seed=4)
    data = P.partition_arrays({"label": labels, "pixels": pixels}, partition, element_fn=pixels_to_float32)
    assert data.client_ids == [f"client_{i:02d}" for i in range(12)]
    for client_id, part in zip(data.client_ids, partition):
        elements = list(data.create_dataset_for_client(client_id))
        assert len(elements) == len(part)
        for element, row in zip(elements, part):
            assert element["pixels"].dtype == np.float32 and int(element["label"]) == labels[row]
            assert np.array_equal(element["pixels"] * 255, pixels[row].astype(np.float32))
    raw = P.partition_arrays({"pixels": pixels}, partition, client_ids=[f"w{i}" for i in range(12)])
    first = next(iter(raw.create_dataset_for_client("w0")))
    assert first["pixels"].dtype == np.uint8 and np.array_equal(first["pixels"], pixels[partition[0][0]])


def test_partition_arrays_allows_empty_clients():
    data = P.partition_arrays({"label": np.arange(3)}, [[], np.arange(3)])
    assert [len(list(data.create_dataset_for_client(c))) for c in data.client_ids] == [0, 3]


@pytest.mark.parametrize("call, match", [
    (lambda: P.dirichlet_partition(np.arange(10), 2, alpha=0.0, seed=0), "alpha"),
    (lambda: P.dirichlet_partition(np.arange(10), 2, alpha=-1.0, seed=0), "alpha"),
    (lambda: P.dirichlet_partition(np.arange(10), 2, alpha=float("nan"), seed=0), "alpha"),
    (lambda: P.dirichlet_partition(np.zeros((5, 2), int), 2, alpha=1.0, seed=0), "labels must be 1-D"),
    (lambda: P.dirichlet_partition(np.zeros(5), 2, alpha=1.0, seed=0), "labels must be integers"),
    (lambda: P.dirichlet_partition(np.arange(4), 5, alpha=1.0, seed=0), "num_clients"),
    (lambda: P.dirichlet_partition(np.arange(10), 2, alpha=1.0, seed=0, min_size=6), "min_size"),
    (lambda: P.dirichlet_partition(np.repeat([0, 1], 50), 20, alpha=1e-3, seed=0, min_size=5), "min_size"),
    (lambda: P.iid_partition(3, 4, seed=0), "num_clients"),
    (lambda: P.iid_partition(3, 0, seed=0), "num_clients"),
    (lambda: P.iid_partition(3, 1, seed=-1), "seed"),
    (lambda: P.shard_partition(np.arange(9), 5, shards_per_client=2, seed=0), "shards_per_client"),
    (lambda: P.shard_partition(np.arange(9), 2, shards_per_client=0, seed=0), "shards_per_client"),
    (lambda: P.size_partition(10, 2, seed=0, sigma=-0.1), "sigma"),
    (lambda: P.size_partition(10, 3, seed=0, min_size=4), "min_size"),
    (lambda: P.partition_arrays({}, [np.arange(2)]), "columns"),
    (lambda: P.partition_arrays({"a": np.zeros(3), "b": np.zeros(4)}, [np.arange(2)]), "equal length"),
    (lambda: P.partition_arrays({"a": np.zeros(3)}, [np.array([0, 3])]), r"\[0, 3\)"),
    (lambda: P.partition_arrays({"a": np.zeros(3)}, [np.array([0.0])]), "integer indices"),
    (lambda: P.partition_arrays({"a": np.zeros(3)}, [[0], [1]], client_ids=["x"]), "client_ids has 1"),
    (lambda: P.partition_arrays({"a": np.zeros(3)}, [[0], [1]], client_ids=["x", "x"]), "duplicates"),
])
def test_errors_name_the_bad_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("seed", [1.5, True, "0", None])
def test_seed_must_be_an_int(seed):
    with pytest.raises(TypeError, match="seed"):
        P.iid_partition(10, 2, seed=seed)


def test_real_femnist_labels():
    with np.load(require(DATA_NPZ), allow_pickle=False) as data:
        labels, pixels = data["train_labels"], data["train_pixels"]
    digits = np.flatnonzero(labels < 10)
    labels, pixels = labels[digits].astype(np.int64), pixels[digits]
    for name, partition in all_methods(labels, 50, seed=11).items():
        assert_exactly_once(partition, labels.size, 50), name
    shards = P.shard_partition(labels, 100, shards_per_client=2, seed=0)  # ~53-example shards, ~1000 per class
    assert max(np.unique(labels[p]).size for p in shards) <= 4
    assert np.mean([np.unique(labels[p]).size for p in shards]) < 3
    skew = [total_variation(labels, P.dirichlet_partition(labels, 50, a, seed=2), 10).mean() for a in (0.1, 1.0, 1e3)]
    assert skew[0] > skew[1] > skew[2] and skew[2] < 0.05
    part = P.dirichlet_partition(labels, 20, alpha=0.5, seed=3, min_size=50)
    data = P.partition_arrays({"label": labels.astype(np.int32), "pixels": pixels}, part, element_fn=pixels_to_float32)
    element = next(iter(data.create_dataset_for_client(data.client_ids[7])))
    assert np.array_equal(element["pixels"], pixels[part[7][0]].astype(np.float32) / np.float32(255))
    assert int(element["label"]) == labels[part[7][0]]
