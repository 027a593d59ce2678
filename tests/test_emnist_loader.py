"""EMNIST from TFF's own SQLite format, checked against the shared npz (the same writers), and its errors."""

from __future__ import annotations

import hashlib
import lzma
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
from conftest import DATA_NPZ, SHARED, require

from fl_blocks.simulation.datasets import download, emnist, tf_example

LZMA_FILE = SHARED / "data" / "emnist_tff_format_subset.sqlite.lzma"
NAME = "emnist_all.sqlite"
pytest.importorskip("tensorflow_datasets", reason='needs the data extra: pip install "fl_blocks[data]"')


@pytest.fixture
def cache(tmp_path):
    shutil.copy(require(LZMA_FILE), tmp_path / f"{NAME}.lzma")
    return tmp_path


def npz_clients(split, count, only_digits):
    """Oracle: the first `count` writers of the npz split, as TFF's float32 = byte / 255."""
    with np.load(require(DATA_NPZ), allow_pickle=False) as data:
        ids, offsets = data[f"{split}_client_ids"][:count], data[f"{split}_offsets"]
        pixels, labels = data[f"{split}_pixels"], data[f"{split}_labels"]
    out = {}
    for i, client_id in enumerate(ids):
        px, lb = pixels[offsets[i]:offsets[i + 1]], labels[offsets[i]:offsets[i + 1]]
        if only_digits:
            px, lb = px[lb < 10], lb[lb < 10]
        if len(lb):
            out[str(client_id)] = (px.astype(np.float32) / np.float32(255), lb.astype(np.int32))
    return out


@pytest.mark.parametrize("only_digits", [True, False])
def test_arrays_are_bit_identical_to_the_npz(cache, only_digits):
    train, test = emnist.load_data(only_digits=only_digits, cache_dir=cache)
    assert (cache / NAME).exists()
    for client_data, split in ((train, "train"), (test, "test")):
        expected = npz_clients(split, 12, only_digits)
        assert client_data.client_ids == sorted(expected)
        for client_id, (pixels, labels) in expected.items():
            batch = next(iter(client_data.create_dataset_for_client(client_id).batch(10_000)))
            assert batch["pixels"].dtype == np.float32 and batch["pixels"].tobytes() == pixels.tobytes()
            assert batch["label"].dtype == np.int32 and batch["label"].tolist() == labels.tolist()
    element = next(iter(train.create_dataset_for_client(train.client_ids[0])))
    assert list(element) == ["label", "pixels"] and element["label"].shape == () and element["pixels"].shape == (28, 28)
    plan = train.create_dataset_for_client(train.client_ids[0]).array_plan()
    assert plan is not None and plan.columns["pixels"].dtype == np.uint8  # stored as bytes


def test_no_tensorflow_is_imported(cache):
    code = (f"import sys; from fl_blocks.simulation.datasets import emnist; tr, te = emnist.load_data(cache_dir={str(cache)!r});"
            "assert len(tr.client_ids) == 12; print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sqlite_path_is_usable_directly_and_unchanged_by_hostile_ids(cache):
    path = pathlib.Path(download.get_compressed_file(emnist.EMNIST_URL, cache))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    train, _ = emnist.load_data_from_sqlite(path, only_digits=False)
    for hostile in ["x' OR '1'='1", "f1501_00' --", "'; DROP TABLE examples; --"]:
        with pytest.raises(KeyError, match="unknown client id") as info:
            train.create_dataset_for_client(hostile)
        assert repr(hostile) in str(info.value)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[: len(raw) // 2], "truncated"),
    (lambda raw: b"not lzma at all" + raw[20:], "not a valid LZMA"),
])
def test_bad_archive_gives_a_clear_error_and_leaves_nothing_half_written(tmp_path, damage, message):
    (tmp_path / f"{NAME}.lzma").write_bytes(damage(require(LZMA_FILE).read_bytes()))
    with pytest.raises(ValueError, match=message):
        emnist.load_data(cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{NAME}.lzma"]


def test_corrupt_database_gives_a_clear_error(tmp_path):
    (tmp_path / NAME).write_bytes(b"SQLite format 3\0" + bytes(5000))
    with pytest.raises(ValueError, match="not a readable TFF EMNIST SQLite database"):
        emnist.load_data(cache_dir=tmp_path)


def edited_copy(cache, tmp_path, statement):
    path = tmp_path / "edited.sqlite"
    with lzma.open(cache / f"{NAME}.lzma") as source, path.open("wb") as out:
        shutil.copyfileobj(source, out)
    with sqlite3.connect(path) as connection:
        connection.execute(statement)
    connection.close()
    return path


def test_missing_split_names_the_split(cache, tmp_path):
    path = edited_copy(cache, tmp_path, "DELETE FROM client_metadata WHERE split_name = 'digits_only_test'")
    with pytest.raises(ValueError, match="no split 'digits_only_test'"):
        emnist.load_data_from_sqlite(path, only_digits=True)


def test_listed_client_without_examples_is_an_error_not_an_empty_dataset(cache, tmp_path):
    path = edited_copy(cache, tmp_path, "DELETE FROM examples WHERE client_id = 'f1501_00' AND split_name = 'all_train'")
    with pytest.raises(ValueError, match="f1501_00.*no examples"):
        emnist.load_data_from_sqlite(path, only_digits=False)


def test_bad_proto_names_the_row(cache, tmp_path):
    path = edited_copy(cache, tmp_path, "UPDATE examples SET serialized_example_proto = x'ffff' WHERE rowid = 3")
    with pytest.raises(ValueError, match="rowid 3"):
        emnist.load_data_from_sqlite(path, only_digits=False)


def test_offline_download_says_what_failed(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(OSError, match=r"could not download https://storage.googleapis.com/.*emnist_all.sqlite.lzma.*offline"):
        emnist.load_data(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_tensorflow_datasets_advises_the_data_extra(monkeypatch):
    monkeypatch.setattr(tf_example.importlib.util, "find_spec", lambda name: None)
    monkeypatch.delitem(sys.modules, "tensorflow_datasets.proto.tf_example_generated_pb2", raising=False)
    tf_example.example_class.cache_clear()
    try:
        with pytest.raises(ImportError, match=r'pip install "fl_blocks\[data\]"'):
            tf_example.example_class()
    finally:
        tf_example.example_class.cache_clear()


def test_pixels_that_are_not_bytes_keep_float32_storage(cache, tmp_path):
    path = edited_copy(cache, tmp_path, "SELECT 1")
    example = tf_example.example_class()
    with sqlite3.connect(path) as connection:
        rowid, client_id, blob = connection.execute(
            "SELECT rowid, client_id, serialized_example_proto FROM examples WHERE split_name = 'all_train' ORDER BY rowid LIMIT 1").fetchone()
        proto = example.FromString(blob)
        proto.features.feature["pixels"].float_list.value[0] = 0.123
        connection.execute("UPDATE examples SET serialized_example_proto = ? WHERE rowid = ?", (proto.SerializeToString(), rowid))
    connection.close()
    train, _ = emnist.load_data_from_sqlite(path, only_digits=False)
    plan = train.create_dataset_for_client(client_id).array_plan()
    assert plan is not None and plan.columns["pixels"].dtype == np.float32 and plan.element_fns == ()
    batch = next(iter(train.create_dataset_for_client(client_id).batch(10_000)))
    pixels, _ = npz_clients("train", 12, False)[client_id]
    assert batch["pixels"][0, 0, 0] == np.float32(0.123)
    assert batch["pixels"].ravel()[1:].tobytes() == pixels.ravel()[1:].tobytes()
