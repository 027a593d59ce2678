"""LEAF FEMNIST JSON reader, checked against the shared npz (the same writers) and on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DATA_NPZ, SHARED, require

from fl_blocks.simulation.datasets import leaf

LEAF_DIR = SHARED / "data" / "leaf_femnist_sample"


def test_writers_and_arrays_match_the_npz_bit_for_bit():
    train, test = leaf.load_femnist(require(LEAF_DIR))
    with np.load(require(DATA_NPZ), allow_pickle=False) as data:
        for client_data, split in ((train, "train"), (test, "test")):
            ids, offsets = list(data[f"{split}_client_ids"]), data[f"{split}_offsets"]
            assert client_data.client_ids == ids[:10]
            for client_id in client_data.client_ids:
                i = ids.index(client_id)
                pixels = data[f"{split}_pixels"][offsets[i]:offsets[i + 1]]
                batch = next(iter(client_data.create_dataset_for_client(client_id).batch(10_000)))
                assert batch["pixels"].tobytes() == (pixels.astype(np.float32) / np.float32(255)).tobytes()
                assert batch["label"].dtype == np.int32
                assert batch["label"].tolist() == data[f"{split}_labels"][offsets[i]:offsets[i + 1]].tolist()
    plan = train.create_dataset_for_client(train.client_ids[0]).array_plan()
    assert plan is not None and plan.columns["pixels"].dtype == np.uint8


def write_leaf(root, users):
    for split in ("train", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        payload = {"users": list(users), "num_samples": [len(v[1]) for v in users.values()],
                   "user_data": {u: {"x": x, "y": y} for u, (x, y) in users.items()}}
        (root / split / "part.json").write_text(json.dumps(payload))
    return root


def test_values_not_multiples_of_1_over_255_stay_float32(tmp_path):
    image = [0.5] * 784
    train, _ = leaf.load_femnist(write_leaf(tmp_path, {"w": ([image], [7])}))
    element = next(iter(train.create_dataset_for_client("w")))
    assert element["pixels"].dtype == np.float32 and element["pixels"][0, 0] == np.float32(0.5) and element["label"] == 7


@pytest.mark.parametrize("users, message", [
    ({"w": ([[0.0] * 783], [1])}, "784 pixels"),
    ({"w": ([[0.0] * 784], [1, 2])}, "2 labels for 1 images"),
    ({"w": ([[0.0] * 784], [62])}, "outside 0-61"),
])
def test_bad_writer_data_is_named(tmp_path, users, message):
    with pytest.raises(ValueError, match=message):
        leaf.load_femnist(write_leaf(tmp_path, users))


def test_missing_folder_and_bad_json_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no LEAF"):
        leaf.load_femnist(tmp_path)
    write_leaf(tmp_path, {"w": ([[0.0] * 784], [1])})
    (tmp_path / "train" / "part.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a LEAF FEMNIST JSON file"):
        leaf.load_femnist(tmp_path)
