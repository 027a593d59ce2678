"""Centralized EMNIST from tensorflow-datasets, split into simulated clients by a partitioner.

Reads with ``tfds.data_source`` (random access over ArrayRecord files, decoded
by tfds' NumPy path), so TensorFlow is never imported. tensorflow-datasets is an
optional extra (``pip install fl_blocks[data]``), imported only when loading.

Orientation and polarity: tfds' EMNIST images are stored as in the original
EMNIST files, i.e. transposed (flipped horizontally and rotated 90 degrees
anticlockwise) and with 0 as the background. With ``tff_layout=True`` (default)
images are transposed back to upright and inverted so that 255 is the
background, the convention of TFF's ``emnist.load_data`` / LEAF's FEMNIST
(``pixels_to_float32`` then gives 1.0 background). The strokes still come from
EMNIST's own preprocessing, so they are not pixel-identical to LEAF's.
``tff_layout=False`` returns tfds' bytes unchanged.

Clients are simulated (IID, Dirichlet label skew, label shards or random sizes;
see `partitioners`), not real writers: for writer-partitioned data use
`emnist.load_data`. The clients' storage is read-only (copied by
`partitioners.partition_arrays`), so the vectorized executor can keep per-client
Gram matrices across rounds; `load_arrays` returns ordinary writable arrays.

Requirements and limits: tfds decodes the PNG images without TensorFlow only
through Pillow or OpenCV (``pip install pillow``); downloading needs network
access (~536 MiB) and, in tfds 4.9.10, preparing EMNIST itself needs
TensorFlow (tfds encodes the NumPy images to PNG with it). So prepare once where
TensorFlow is installed (``tfds build emnist/digits --file_format=array_record``)
and read that ``data_dir`` here with ``download=False``. Reading is tested
against a fake data source only, since tfds cannot download in this environment.

>>> to_tff_layout(np.array([[[0, 10], [20, 30]]], np.uint8)).tolist()
[[[255, 235], [245, 225]]]
"""

from __future__ import annotations

import collections
import importlib.util
from typing import Any, Optional

import numpy as np

from fl_blocks.simulation.datasets import partitioners
from fl_blocks.simulation.datasets.client_data import ClientData, pixels_to_float32

__all__ = ["CONFIGS", "load_arrays", "load_partitioned", "to_tff_layout"]

CONFIGS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
_CHUNK = 4096


def to_tff_layout(images: np.ndarray) -> np.ndarray:
    """tfds/EMNIST uint8 ``[N, 28, 28]`` (transposed, 0 = background) -> TFF/LEAF layout (upright, 255 = background)."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, H, W], got {images.dtype} {images.shape}")
    return np.ascontiguousarray(255 - np.swapaxes(images, 1, 2))


def _check_name(name: str) -> None:
    base, _, config = str(name).partition(":")[0].partition("/")
    if base != "emnist" or (config and config not in CONFIGS):
        raise ValueError(f"name must be 'emnist' or 'emnist/<config>' with config in {CONFIGS}, got {name!r}")


def _tfds() -> Any:
    try:
        import tensorflow_datasets as tfds  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as error:
        raise ImportError("loading EMNIST from tensorflow-datasets needs the optional extra: "
                          "pip install fl_blocks[data]  (or: pip install tensorflow-datasets)") from error
    return tfds


def _can_decode_images() -> bool:
    """tfds decodes PNG images without TensorFlow through OpenCV or Pillow."""
    return any(importlib.util.find_spec(module) is not None for module in ("cv2", "PIL"))


def _source(name: str, split: str, data_dir: Optional[str], download: bool) -> Any:
    tfds = _tfds()
    if not _can_decode_images():
        raise ImportError("tensorflow-datasets decodes images without TensorFlow only with Pillow or OpenCV: "
                          "pip install pillow")
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    except NotImplementedError as error:  # prepared as TFRecord, or not prepared at all with download=False
        raise FileNotFoundError(f"no random-access (ArrayRecord) copy of {name!r} in data_dir={data_dir!r}; "
                                "prepare one with download=True (tfds.data_source writes ArrayRecord), "
                                "or use a fresh data_dir") from error


def _records(source: Any, start: int, stop: int) -> list[Any]:
    getitems = getattr(source, "__getitems__", None)
    return list(getitems(list(range(start, stop)))) if getitems is not None else [source[i] for i in range(start, stop)]


def load_arrays(name: str = "emnist/digits", split: str = "train", data_dir: Optional[str] = None,
                download: bool = True, tff_layout: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(pixels uint8 [N, 28, 28], labels int32 [N])`` of one tfds EMNIST split (see module doc)."""
    _check_name(name)
    source = _source(name, split, data_dir, download)
    num = len(source)
    pixels = np.empty((num, 28, 28), np.uint8)
    labels = np.empty(num, np.int32)
    for start in range(0, num, _CHUNK):
        records = _records(source, start, min(start + _CHUNK, num))
        images = np.stack([np.asarray(r["image"]) for r in records])
        if images.dtype != np.uint8 or images.shape[1:] not in ((28, 28), (28, 28, 1)):
            raise ValueError(f"expected uint8 28x28 images from {name!r}, got {images.dtype} {images.shape[1:]}")
        pixels[start:start + len(records)] = images.reshape(-1, 28, 28)
        labels[start:start + len(records)] = [int(r["label"]) for r in records]
    return (to_tff_layout(pixels) if tff_layout else pixels), labels


def load_partitioned(name: str = "emnist/digits", num_clients: int = 100, partition: str = "dirichlet", *,
                     alpha: float = 0.5, shards_per_client: int = 2, sigma: float = 1.0, min_size: int = 0,
                     seed: int = 0, split: str = "train", data_dir: Optional[str] = None, download: bool = True,
                     tff_layout: bool = True) -> ClientData:
    """tfds EMNIST split `split`, partitioned into `num_clients` simulated clients.

    `partition` is one of ``partitioners.METHODS`` (``"iid"``, ``"dirichlet"``
    with `alpha` and `min_size`, ``"shards"`` with `shards_per_client`,
    ``"sizes"`` with `sigma` and `min_size`), deterministic for `seed`. Elements
    are ``OrderedDict(label=int32, pixels=float32[28, 28] = byte / 255)`` as in
    TFF's EMNIST (storage stays uint8). Arguments are checked before any
    download; client ids are ``client_0 ... client_{C-1}`` (zero-padded).
    """
    _check_name(name)
    partitioners.check_options(partition, num_clients, seed, alpha=alpha, shards_per_client=shards_per_client,
                               sigma=sigma, min_size=min_size)
    pixels, labels = load_arrays(name, split=split, data_dir=data_dir, download=download, tff_layout=tff_layout)
    parts = partitioners.partition_labels(partition, labels, num_clients, seed, alpha=alpha,
                                          shards_per_client=shards_per_client, sigma=sigma, min_size=min_size)
    columns = collections.OrderedDict(label=labels, pixels=pixels)
    return partitioners.partition_arrays(columns, parts, element_fn=pixels_to_float32)
