"""tfds EMNIST -> partitioned ClientData, against a fake `tensorflow_datasets` (tfds cannot download here)."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from fl_blocks.simulation.datasets import partitioners, tfds_emnist

NUM = 50


class FakeSource:
    """Like tfds' ArrayRecordDataSource: len, indexing, optional batched ``__getitems__``."""

    def __init__(self, records, batched):
        self.records = records
        if batched:
            self.__getitems__ = lambda keys: [records[k] for k in keys]

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        return self.records[index]


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (NUM, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, NUM)


@pytest.fixture(params=[True, False], ids=["getitems", "indexing"])
def fake_tfds(request, monkeypatch, images):
    pixels, labels = images
    records = [{"image": pixels[i], "label": np.int64(labels[i])} for i in range(NUM)]
    module = types.ModuleType("tensorflow_datasets")
    module.calls = []

    def data_source(name, **kwargs):
        module.calls.append((name, kwargs))
        return FakeSource(records, batched=request.param)

    module.data_source = data_source
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
    monkeypatch.setattr(tfds_emnist, "_can_decode_images", lambda: True)
    monkeypatch.setattr(tfds_emnist, "_CHUNK", 7)  # several chunks, the last one partial
    return module


def test_load_arrays_raw_and_tff_layout(fake_tfds, images):
    pixels, labels = images
    raw, raw_labels = tfds_emnist.load_arrays(split="test", data_dir="/somewhere", download=False, tff_layout=False)
    assert raw.dtype == np.uint8 and raw.shape == (NUM, 28, 28) and np.array_equal(raw, pixels[..., 0])
    assert raw_labels.dtype == np.int32 and np.array_equal(raw_labels, labels)
    assert fake_tfds.calls == [("emnist/digits", {"split": "test", "data_dir": "/somewhere", "download": False})]
    tff, _ = tfds_emnist.load_arrays("emnist/byclass", tff_layout=True)
    for i in (0, 13, NUM - 1):
        assert np.array_equal(tff[i], 255 - pixels[i, :, :, 0].T)
    assert tff.flags["C_CONTIGUOUS"]


def test_to_tff_layout_by_hand():
    image = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)
    assert tfds_emnist.to_tff_layout(image).tolist() == [[[254, 251], [253, 250], [252, 249]]]
    with pytest.raises(ValueError, match="uint8"):
        tfds_emnist.to_tff_layout(image.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        tfds_emnist.to_tff_layout(image[0])


@pytest.mark.parametrize("method", partitioners.METHODS)
def test_load_partitioned_covers_every_example_with_tff_elements(fake_tfds, images, method):
    pixels, labels = images
    data = tfds_emnist.load_partitioned(num_clients=5, partition=method, alpha=0.5, seed=3)
    assert data.client_ids == [f"client_{i}" for i in range(5)]
    seen = []
    for client_id in data.client_ids:
        for element in data.create_dataset_for_client(client_id):
            assert list(element) == ["label", "pixels"]
            assert element["pixels"].dtype == np.float32 and element["pixels"].shape == (28, 28)
            matches = [i for i in range(NUM) if np.array_equal(element["pixels"] * 255, 255.0 - pixels[i, :, :, 0].T)]
            assert len(matches) == 1 and int(element["label"]) == labels[matches[0]]
            seen.append(matches[0])
    assert sorted(seen) == list(range(NUM))


def test_load_partitioned_is_seeded_and_uses_the_partitioner(fake_tfds, images):
    _, labels = images
    def client_labels(data):
        return [[int(e["label"]) for e in data.create_dataset_for_client(c)] for c in data.client_ids]
    first = tfds_emnist.load_partitioned(num_clients=4, partition="shards", shards_per_client=3, seed=9)
    again = tfds_emnist.load_partitioned(num_clients=4, partition="shards", shards_per_client=3, seed=9)
    other = tfds_emnist.load_partitioned(num_clients=4, partition="shards", shards_per_client=3, seed=10)
    assert client_labels(first) == client_labels(again) != client_labels(other)
    expected = partitioners.shard_partition(labels.astype(np.int32), 4, 3, seed=9)
    assert client_labels(first) == [labels[p].tolist() for p in expected]


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "mnist"}, "name must be"),
    ({"name": "emnist/kanji"}, "name must be"),
    ({"partition": "writers"}, "partition method must be one of"),
    ({"partition": "dirichlet", "alpha": 0.0}, "alpha"),
    ({"num_clients": 0}, "num_clients"),
    ({"seed": -1}, "seed"),
    ({"partition": "shards", "shards_per_client": 0}, "shards_per_client"),
    ({"partition": "sizes", "sigma": -1.0}, "sigma"),
    ({"min_size": -3}, "min_size"),
])
def test_bad_arguments_fail_before_loading(fake_tfds, kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        tfds_emnist.load_partitioned(**kwargs)
    assert fake_tfds.calls == []


def test_non_int_num_clients_is_named_before_loading(fake_tfds):
    with pytest.raises(TypeError, match="num_clients must be an int"):
        tfds_emnist.load_partitioned(num_clients="5")
    assert fake_tfds.calls == []


def test_more_clients_than_examples(fake_tfds):
    with pytest.raises(ValueError, match="num_clients"):
        tfds_emnist.load_partitioned(num_clients=NUM + 1, partition="iid")


def test_unexpected_images_are_rejected(monkeypatch, fake_tfds):
    fake_tfds.data_source = lambda name, **kw: FakeSource([{"image": np.zeros((32, 32, 3), np.uint8), "label": 0}], False)
    with pytest.raises(ValueError, match="28x28"):
        tfds_emnist.load_arrays()


def test_not_prepared_as_array_record(fake_tfds):
    def data_source(name, **kwargs):
        raise NotImplementedError("Random access data source for file format FileFormat.TFRECORD is not supported")
    fake_tfds.data_source = data_source
    with pytest.raises(FileNotFoundError, match="ArrayRecord"):
        tfds_emnist.load_arrays(download=False)


def test_missing_tensorflow_datasets_advises_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # makes `import tensorflow_datasets` fail
    with pytest.raises(ImportError, match=r"pip install fl_blocks\[data\]"):
        tfds_emnist.load_partitioned()


def test_missing_image_decoder_advises_pillow(fake_tfds, monkeypatch):
    monkeypatch.setattr(tfds_emnist, "_can_decode_images", lambda: False)
    with pytest.raises(ImportError, match="pillow"):
        tfds_emnist.load_arrays()
    assert fake_tfds.calls == []


def test_real_tfds_is_used_without_importing_tensorflow(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    code = (
        "import sys\n"
        "from fl_blocks.simulation.datasets import tfds_emnist\n"
        "tfds_emnist._can_decode_images = lambda: True\n"
        "try:\n"
        f"    tfds_emnist.load_arrays('emnist/digits', data_dir={str(tmp_path)!r}, download=False)\n"
        "except FileNotFoundError as error:\n"
        "    print('not prepared:', 'ArrayRecord' in str(error))\n"
        "assert 'tensorflow_datasets' in sys.modules\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "not prepared: True" in result.stdout
