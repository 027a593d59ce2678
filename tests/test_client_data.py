"""`ClientData`: TFF's client orders (golden from real TFF 0.87), from_arrays storage, bad ids."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from fl_blocks.simulation.datasets import ClientData, Dataset
from fl_blocks.simulation.datasets.client_data import UnknownClientError, pixels_to_float32

# Made with TFF 0.87 (tff.simulation.datasets.TestClientData / ClientData.from_clients_and_tf_fn):
# clients c0..c7, client ci holds 1 + i % 2 copies of i; for the split c0, c3, c6 are empty, others hold 2 rows.
TFF_DATASETS_SEED3_LIMIT5 = [5, 7, 4, 6, 3]
TFF_ALL_CLIENTS_SEED5 = [7, 7, 2, 4, 1, 1, 0, 5, 5, 6, 3, 3]
TFF_SPLIT_SEED7 = (["c2", "c5", "c0", "c6", "c3"], ["c7", "c4", "c1"])
IDS = [f"c{i}" for i in range(8)]


def tff_like():
    return ClientData.from_arrays({c: collections.OrderedDict(label=np.full(1 + i % 2, i, np.int32)) for i, c in enumerate(IDS)})


def test_client_orders_match_tff():
    data = tff_like()
    assert [int(next(iter(d))["label"]) for d in data.datasets(limit_count=5, seed=3)] == TFF_DATASETS_SEED3_LIMIT5
    assert [int(e["label"]) for e in data.create_dataset_from_all_clients(seed=5)] == TFF_ALL_CLIENTS_SEED5
    assert data.create_tf_dataset_from_all_clients is not None and len(list(data.datasets())) == 8


def test_train_test_client_split_matches_tff_and_skips_empty_clients():
    empty = {"c0", "c3", "c6"}
    data = ClientData.from_arrays({c: np.zeros(0 if c in empty else 2, np.int32) for c in IDS})
    train, test = ClientData.train_test_client_split(data, 3, seed=7)
    assert (train.client_ids, test.client_ids) == TFF_SPLIT_SEED7
    with pytest.raises(ValueError, match="only 8 clients"):
        ClientData.train_test_client_split(data, 8)
    with pytest.raises(ValueError, match="num_test_clients > 0"):
        ClientData.train_test_client_split(data, 0)
    with pytest.raises(TypeError, match="seed"):
        list(data.datasets(seed=-1))


def test_from_arrays_keeps_uint8_storage_and_converts_lazily():
    pixels = np.array([[0, 51], [255, 1]], np.uint8).reshape(2, 2)
    data = ClientData.from_arrays({"w": collections.OrderedDict(label=np.array([3, 4], np.int32), pixels=pixels)},
                                  element_fn=pixels_to_float32)
    ds = data.create_dataset_for_client("w")
    plan = ds.array_plan()
    assert plan is not None and plan.columns["pixels"].dtype == np.uint8
    assert np.shares_memory(plan.columns["pixels"], pixels)  # no copy
    first = next(iter(ds))
    assert first["pixels"].dtype == np.float32 and first["label"].dtype == np.int32
    np.testing.assert_array_equal(first["pixels"], np.array([0, 51], np.float32) / np.float32(255))
    assert list(first) == ["label", "pixels"]
    with pytest.raises(ValueError, match="client 'bad'"):
        ClientData.from_arrays({"bad": (np.zeros(2), np.zeros(3))})


@pytest.mark.parametrize("client_id", ["x' OR '1'='1", "c0'; DROP TABLE examples; --", 3, "C0"])
def test_unknown_client_raises_key_error_naming_it(client_id):
    data = tff_like()
    with pytest.raises(KeyError, match="unknown client id") as info:
        data.create_dataset_for_client(client_id)
    assert repr(client_id) in str(info.value)
    assert isinstance(info.value, ValueError)  # TFF raises ValueError: both work
    assert isinstance(info.value, UnknownClientError)


def test_preprocess_applies_to_every_client_and_keeps_ids():
    data = tff_like().preprocess(lambda ds: ds.map(lambda e: e["label"] * 2).batch(5))
    assert data.client_ids == IDS
    assert [b.tolist() for b in data.create_dataset_for_client("c3")] == [[6, 6]]


def test_from_clients_and_fn_is_lazy():
    calls = []
    data = ClientData.from_clients_and_fn(["a"], lambda c: calls.append(c) or Dataset.from_tensor_slices(np.arange(2)))
    assert calls == []
    assert [int(x) for x in data.create_dataset_for_client("a")] == [0, 1] and calls == ["a"]
