"""Training data for ``fl-blocks train --data``: synthetic, TFF's EMNIST, a TFF-format file, or LEAF FEMNIST.

Real data is digits only (TFF's ``only_digits=True``, the tutorial's choice).
``sqlite:PATH`` reads a file in TFF's EMNIST format; a ``.lzma`` one is
decompressed into ``--cache-dir`` (reused while newer than the source) or, by
default, into a temporary folder removed once the data is in memory. Storage is
read-only, so the vectorized executor can keep per-client Gram matrices across rounds.

>>> parse_data_spec("synthetic"), parse_data_spec("emnist")
(('synthetic', ''), ('emnist', ''))
>>> parse_data_spec("foo")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: unknown data 'foo': expected synthetic, emnist, leaf:DIR or sqlite:PATH
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import tempfile
from typing import Optional

import numpy as np

from fl_blocks.simulation.datasets import ClientData, download, emnist, leaf, pixels_to_float32, synthetic

__all__ = ["DataError", "parse_data_spec", "load_train_test", "NUM_HELD_OUT"]

NUM_HELD_OUT = 20  # synthetic data: test examples come from this many extra writers


class DataError(ValueError):
    """The requested training data cannot be loaded (missing, corrupt, offline, too few clients)."""


def parse_data_spec(text: str) -> tuple[str, str]:
    """An argparse type for ``--data``: ``synthetic``, ``emnist``, ``leaf:DIR`` or ``sqlite:PATH``."""
    kind, sep, where = text.partition(":")
    if not sep and kind in ("synthetic", "emnist"):
        return kind, ""
    if not sep or kind not in ("leaf", "sqlite") or not where:
        raise argparse.ArgumentTypeError(f"unknown data {text!r}: expected synthetic, emnist, leaf:DIR or sqlite:PATH")
    path = pathlib.Path(where).expanduser()
    if kind == "leaf" and not all((path / split).is_dir() for split in ("train", "test")):
        raise argparse.ArgumentTypeError(f"{text!r}: {path} is not a LEAF FEMNIST folder with train/ and test/ subfolders")
    if kind == "sqlite" and not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: no file at {path}")
    return kind, str(path)


def _decompressed(path: pathlib.Path, folder: pathlib.Path) -> pathlib.Path:
    """`path` (an ``.lzma`` file) decompressed into `folder`, reusing an up-to-date earlier copy."""
    target = folder / path.name[: -len(".lzma")]
    if target.is_file() and target.stat().st_mtime >= path.stat().st_mtime:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    download.decompress_file(path, target)
    return target


def _digits_only(data: ClientData) -> ClientData:
    """Keeps labels 0-9 (TFF's ``only_digits=True``) and drops writers left without examples."""
    labels, floats, exact = {}, {}, True
    for client_id in data.client_ids:
        (element,) = data.create_dataset_for_client(client_id).batch(2**62)
        keep = element["label"] < 10
        if keep.any():
            labels[client_id], floats[client_id] = element["label"][keep], element["pixels"][keep]
            exact = exact and np.array_equal(np.rint(floats[client_id] * np.float32(255)) / np.float32(255), floats[client_id])
    if not labels:
        raise DataError("no digit examples (labels 0-9) in this split")
    if not exact:  # some pixel is not byte / 255: keep float32 storage
        return ClientData.from_arrays({c: collections.OrderedDict(label=_read_only(labels[c]), pixels=_read_only(floats[c]))
                                       for c in labels})
    stored = {c: collections.OrderedDict(label=_read_only(labels[c]), pixels=_read_only(np.rint(floats[c] * np.float32(255)).astype(np.uint8)))
              for c in labels}
    return ClientData.from_arrays(stored, element_fn=pixels_to_float32)


def _read_only(array: np.ndarray) -> np.ndarray:
    """`array` (made here) as read-only storage that owns its bytes, so the vectorized executor may cache it."""
    owned: np.ndarray = array if array.base is None else array.copy()
    owned.flags.writeable = False
    return owned


def load_train_test(data: tuple[str, str], cache_dir: Optional[pathlib.Path], num_clients: int) -> tuple[ClientData, ClientData, str]:
    """``(train, test, description)`` for a parsed ``--data``; raises `DataError` naming the problem.

    `num_clients` is only used by the synthetic data (that many training writers).
    """
    kind, where = data
    try:
        if kind == "emnist":
            return (*emnist.load_data(only_digits=True, cache_dir=cache_dir), "EMNIST (TFF, digits only)")
        if kind == "leaf":
            train_data, test_data = leaf.load_femnist(where)
            return _digits_only(train_data), _digits_only(test_data), f"LEAF FEMNIST {where} (digits only)"
        if kind == "sqlite":
            return (*_load_sqlite(pathlib.Path(where), cache_dir), f"TFF EMNIST file {where} (digits only)")
    except (ValueError, OSError, ImportError) as error:
        raise DataError(str(error)) from error
    train_data, test_data = synthetic.load_data(num_clients=num_clients + NUM_HELD_OUT)
    return train_data, test_data, "synthetic EMNIST-like data"


def _load_sqlite(path: pathlib.Path, cache_dir: Optional[pathlib.Path]) -> tuple[ClientData, ClientData]:
    if path.suffix != ".lzma":
        return emnist.load_data_from_sqlite(path, only_digits=True)
    if cache_dir is not None:
        return emnist.load_data_from_sqlite(_decompressed(path, cache_dir), only_digits=True)
    with tempfile.TemporaryDirectory(prefix="fl_blocks_") as folder:  # the data is in memory once loaded
        return emnist.load_data_from_sqlite(_decompressed(path, pathlib.Path(folder)), only_digits=True)
