"""The tf.data-like `Dataset`, `ClientData` and the embedded synthetic data."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from fl_blocks.cli import preprocess
from fl_blocks.simulation.datasets import ClientData, Dataset, synthetic


def elements(n):
    return collections.OrderedDict(label=np.arange(n, dtype=np.int32), pixels=np.arange(n * 784, dtype=np.float32).reshape(n, 28, 28))


def test_batch_then_map_is_the_tutorial_preprocess():
    ds = preprocess(Dataset.from_tensor_slices(elements(45)), 20)
    batches = list(ds)
    assert [x.shape for x, _ in batches] == [(20, 784), (20, 784), (5, 784)]
    assert [y.shape for _, y in batches] == [(20, 1), (20, 1), (5, 1)]
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]).ravel(), np.arange(45))
    assert list(ds)[0][0].tobytes() == batches[0][0].tobytes()  # re-iterable


def test_drop_remainder_and_cardinality():
    ds = Dataset.from_tensor_slices(elements(45))
    assert ds.cardinality == 45
    assert ds.batch(20).cardinality == 3 and ds.batch(20, drop_remainder=True).cardinality == 2
    assert len(list(ds.batch(20, drop_remainder=True))) == 2


def test_map_then_batch_stacks_elements_and_unpacks_tuples():
    ds = Dataset.from_tensor_slices((np.arange(5), np.arange(5) * 10)).map(lambda a, b: a + b).batch(2)
    assert [b.tolist() for b in ds] == [[0, 11], [22, 33], [44]]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same leading dimension"):
        Dataset.from_tensor_slices((np.zeros(3), np.zeros(4)))
    with pytest.raises(ValueError, match="batch_size"):
        Dataset.from_tensor_slices(np.zeros(3)).batch(0)


def test_client_data_ids_preprocess_and_unknown_id():
    arrays = {"a": elements(3), "b": elements(5)}
    data = ClientData.from_clients_and_fn(["a", "b"], lambda cid: Dataset.from_tensor_slices(arrays[cid]))
    assert data.client_ids == ["a", "b"]
    batched = data.preprocess(lambda ds: ds.batch(2))
    assert [len(b["label"]) for b in batched.create_dataset_for_client("b")] == [2, 2, 1]
    with pytest.raises(KeyError, match="unknown client id 'c'"):
        data.create_dataset_for_client("c")
    with pytest.raises(ValueError, match="duplicates"):
        ClientData(["a", "a"], lambda cid: None)


def test_synthetic_data_is_deterministic_and_emnist_like():
    train, test = synthetic.load_data(num_clients=5, seed=7)
    again, _ = synthetic.load_data(num_clients=5, seed=7)
    other, _ = synthetic.load_data(num_clients=5, seed=8)
    assert train.client_ids == test.client_ids == again.client_ids
    first = list(train.create_dataset_for_client(train.client_ids[0]).batch(1000))[0]
    np.testing.assert_array_equal(first["pixels"], list(again.create_dataset_for_client(train.client_ids[0]).batch(1000))[0]["pixels"])
    assert not np.array_equal(first["pixels"][:5], list(other.create_dataset_for_client(other.client_ids[0]).batch(1000))[0]["pixels"][:5])
    pixels, labels = first["pixels"], first["label"]
    assert pixels.dtype == np.float32 and pixels.shape[1:] == (28, 28) and labels.dtype == np.int32
    assert pixels.min() >= 0 and pixels.max() <= 1
    assert np.median(pixels) == 1.0  # background is 1.0, ink is dark
    np.testing.assert_array_equal(np.round(pixels * 255) / np.float32(255), pixels)  # byte / 255 like LEAF
    assert set(np.unique(labels)) <= set(range(10))
    assert sum(1 for _ in test.create_dataset_for_client(test.client_ids[0])) > 0


def test_synthetic_writers_differ_in_style():
    train, _ = synthetic.load_data(num_clients=6, seed=0)
    ink = [1 - list(train.create_dataset_for_client(c).batch(10_000))[0]["pixels"].mean() for c in train.client_ids]
    assert np.std(ink) > 0.1 * np.mean(ink)  # stroke width and darkness vary by writer
