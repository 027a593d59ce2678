"""Federated EMNIST from TFF's own file ``emnist_all.sqlite.lzma`` (TFF's ``emnist.load_data``).

Reads the LZMA-compressed SQLite file that TFF downloads (tables ``examples`` and
``client_metadata``; one serialized ``tf.train.Example`` per row) without
TensorFlow. Client ids are TFF's: the sorted distinct ids of the split in
``client_metadata``; each client's examples keep rowid order. Elements are
``OrderedDict(label=int32 scalar, pixels=float32[28, 28])`` as in TFF; pixels are
stored as uint8 (verified to give back the file's float32 exactly as byte / 255)
and converted per block when iterated. Storage is read-only, so the vectorized
executor can keep per-client Gram matrices across rounds.

>>> import inspect
>>> list(inspect.signature(load_data).parameters)
['only_digits', 'cache_dir']
"""

from __future__ import annotations

import collections
import logging
import os
import pathlib
import sqlite3
from typing import Any, Optional, Union

import numpy as np

from fl_blocks.simulation.datasets import download, tf_example
from fl_blocks.simulation.datasets.client_data import ClientData, pixels_to_float32

__all__ = ["load_data", "load_data_from_sqlite", "EMNIST_URL", "SPLITS"]

EMNIST_URL = "https://storage.googleapis.com/tff-datasets-public/emnist_all.sqlite.lzma"
SPLITS = {True: ("digits_only_train", "digits_only_test"), False: ("all_train", "all_test")}
_COLUMNS = {"examples": {"split_name", "client_id", "serialized_example_proto"}, "client_metadata": {"client_id", "split_name"}}
_PIXELS = 784
_CHUNK = 4096


def load_data(only_digits: bool = True, cache_dir: Optional[Union[str, os.PathLike[str]]] = None) -> tuple[ClientData, ClientData]:
    """Returns TFF's federated EMNIST as ``(train, test)`` `ClientData` (3,383 / 3,400 writers).

    Uses ``emnist_all.sqlite`` or ``emnist_all.sqlite.lzma`` in `cache_dir`
    (default ``~/.cache/fl_blocks``), else downloads TFF's file from `EMNIST_URL`.
    """
    path = download.get_compressed_file(EMNIST_URL, cache_dir)
    return load_data_from_sqlite(path, only_digits)


def load_data_from_sqlite(path: Union[str, os.PathLike[str]], only_digits: bool = True) -> tuple[ClientData, ClientData]:
    """Returns ``(train, test)`` `ClientData` from a decompressed TFF EMNIST SQLite file at `path`."""
    example = tf_example.example_class()
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no EMNIST SQLite file at {path}")
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        _check_format(connection, path)
        return tuple(_load_split(connection, path, split, example) for split in SPLITS[bool(only_digits)])  # type: ignore[return-value]
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path} is not a readable TFF EMNIST SQLite database ({error}); delete it and fetch it again") from None
    finally:
        connection.close()


def _check_format(connection: sqlite3.Connection, path: pathlib.Path) -> None:
    for table, required in _COLUMNS.items():
        present = {row[1] for row in connection.execute("SELECT * FROM pragma_table_info(?)", (table,))}
        if not present:
            raise ValueError(f"{path} has no table {table!r}: not a TFF EMNIST database")
        if required - present:
            raise ValueError(f"{path}: table {table!r} lacks columns {sorted(required - present)}")


def _load_split(connection: sqlite3.Connection, path: pathlib.Path, split: str, example: Any) -> ClientData:
    ids = sorted(row[0] for row in connection.execute(
        "SELECT DISTINCT client_id FROM client_metadata WHERE split_name = ?", (split,)))
    if not ids:
        present = sorted(row[0] for row in connection.execute("SELECT DISTINCT split_name FROM client_metadata"))
        raise ValueError(f"{path} has no split {split!r} (splits present: {present})")
    (count,) = connection.execute("SELECT COUNT(*) FROM examples WHERE split_name = ?", (split,)).fetchone()
    index = {client_id: i for i, client_id in enumerate(ids)}
    owner = np.empty(count, np.int64)
    labels = np.empty(count, np.int32)
    pixels = np.empty((count, _PIXELS), np.uint8)
    floats: Optional[np.ndarray] = None  # float32 storage, only if some pixel is not byte / 255
    chunk = np.empty((max(min(count, _CHUNK), 1), _PIXELS), np.float32)

    def flush(start: int, size: int) -> Optional[np.ndarray]:
        values = chunk[:size]
        as_bytes = _to_bytes(values)
        if floats is None and np.array_equal((as_bytes / np.float32(255)).view(np.uint32), values.view(np.uint32)):
            pixels[start:start + size] = as_bytes
            return None
        stored = pixels.astype(np.float32) / np.float32(255) if floats is None else floats
        stored[start:start + size] = values
        return stored

    cursor = connection.execute(
        "SELECT rowid, client_id, serialized_example_proto FROM examples WHERE split_name = ? ORDER BY rowid", (split,))
    row = -1
    for row, (rowid, client_id, blob) in enumerate(cursor):
        if row >= count or client_id not in index:
            raise ValueError(f"{path}, split {split!r}: example rowid {rowid} has client id {client_id!r} "
                             "that client_metadata does not list (or the table changed while reading)")
        owner[row] = index[client_id]
        labels[row], chunk[row % len(chunk)] = _parse(example, blob, path, rowid)
        if (row + 1) % len(chunk) == 0:
            floats = flush(row + 1 - len(chunk), len(chunk))
    if (row + 1) % len(chunk):
        floats = flush(row + 1 - (row + 1) % len(chunk), (row + 1) % len(chunk))
    if row + 1 != count:
        raise ValueError(f"{path}, split {split!r}: read {row + 1} examples, expected {count}")
    sizes = np.bincount(owner, minlength=len(ids))
    if (sizes == 0).any():
        missing = [ids[i] for i in np.flatnonzero(sizes == 0)[:5]]
        raise ValueError(f"{path}, split {split!r}: clients {missing} are in client_metadata but have no examples")
    order = np.argsort(owner, kind="stable")  # group by client, rowid order within a client
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    gathered, labels = (pixels if floats is None else floats)[order], labels[order]
    gathered.flags.writeable = labels.flags.writeable = False  # read-only storage: the executor may cache it
    stored = gathered.reshape(count, 28, 28)  # a read-only view
    columns = {
        client_id: collections.OrderedDict(label=labels[offsets[i]:offsets[i + 1]], pixels=stored[offsets[i]:offsets[i + 1]])
        for i, client_id in enumerate(ids)
    }
    if floats is not None:
        logging.warning("%s: pixels are not all byte / 255; keeping float32 storage", path)
        return ClientData.from_arrays(columns)
    return ClientData.from_arrays(columns, element_fn=pixels_to_float32)


def _to_bytes(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        scaled: np.ndarray = np.rint(np.nan_to_num(values) * np.float32(255)).clip(0, 255)
    return scaled.astype(np.uint8)


def _parse(example: Any, blob: bytes, path: pathlib.Path, rowid: int) -> tuple[int, Any]:
    try:
        features = example.FromString(blob).features.feature
        values = features["pixels"].float_list.value
        label = features["label"].int64_list.value
    except Exception as error:  # protobuf's DecodeError and friends
        raise ValueError(f"{path}: example rowid {rowid} is not a valid tf.train.Example ({error})") from None
    if len(values) != _PIXELS or len(label) != 1:
        raise ValueError(f"{path}: example rowid {rowid} has {len(values)} pixels and {len(label)} labels, expected 784 and 1")
    return int(label[0]), values
