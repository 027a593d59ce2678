"""FEMNIST in LEAF's own JSON layout (``train/*.json``, ``test/*.json``) as TFF-style `ClientData`.

Each LEAF file is ``{"users": [...], "num_samples": [...], "user_data": {user: {"x": [[784 floats]], "y": [...]}}}``.
LEAF writes pixels as float text equal to byte / 255 with 1.0 the background, the
same convention as TFF's EMNIST (TFF's data is derived from LEAF), so no inversion
is needed. Each value is turned back into its byte (``round(x * 255)``, checked to
be within 1e-4 of an integer) and stored as uint8; elements then carry
``float32(byte) / 255``, bit-identical to TFF's. Files whose values are not
multiples of 1/255 are stored as float32 unchanged. Storage is read-only, so
the vectorized executor can keep per-client Gram matrices across rounds.

Client ids are sorted (as TFF sorts EMNIST's); each writer keeps LEAF's example order.

>>> import inspect
>>> list(inspect.signature(load_femnist).parameters)
['directory']
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
from typing import Any, Union

import numpy as np

from fl_blocks.simulation.datasets.client_data import ClientData, pixels_to_float32

__all__ = ["load_femnist"]


def load_femnist(directory: Union[str, os.PathLike[str]]) -> tuple[ClientData, ClientData]:
    """Returns ``(train, test)`` `ClientData` from a LEAF FEMNIST folder with ``train/`` and ``test/``."""
    root = pathlib.Path(directory)
    return _load_split(root / "train"), _load_split(root / "test")


def _load_split(folder: pathlib.Path) -> ClientData:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no LEAF *.json files in {folder} (expected {folder.parent}/train and /test)")
    users: dict[str, tuple[Any, Any]] = {}
    for file in files:
        for user, x, y in _read_file(file):
            if user in users:
                raise ValueError(f"{file}: writer {user!r} appears in more than one file of {folder}")
            users[user] = (x, y)
    columns = {}
    for user in sorted(users):
        x, y = users[user]
        pixels = np.asarray(x, np.float64).reshape(-1, 28, 28)
        labels = np.asarray(y, np.int64)
        if labels.shape != (len(pixels),) or labels.min() < 0 or labels.max() > 61:
            raise ValueError(f"{folder}: writer {user!r} has {labels.size} labels for {len(pixels)} images, or labels outside 0-61")
        scaled = pixels * 255
        exact = bool(np.all(np.abs(scaled - np.rint(scaled)) < 1e-4) and np.all((pixels >= 0) & (pixels <= 1)))
        stored = np.rint(scaled).astype(np.uint8) if exact else pixels.astype(np.float32)
        columns[user] = collections.OrderedDict(label=labels.astype(np.int32), pixels=stored)
    exact = all(tree["pixels"].dtype == np.uint8 for tree in columns.values())
    for tree in columns.values():
        if not exact and tree["pixels"].dtype == np.uint8:  # some writer is not byte / 255: float32 storage for all
            tree["pixels"] = pixels_to_float32(tree)["pixels"]
        for array in tree.values():  # fresh arrays (base None): read-only storage the executor may cache
            array.flags.writeable = False
    return ClientData.from_arrays(columns, element_fn=pixels_to_float32) if exact else ClientData.from_arrays(columns)


def _read_file(file: pathlib.Path) -> list[tuple[str, Any, Any]]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        users, user_data = data["users"], data["user_data"]
        rows = [(str(user), user_data[user]["x"], user_data[user]["y"]) for user in users]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{file} is not a LEAF FEMNIST JSON file ({type(error).__name__}: {error})") from None
    for user, x, y in rows:
        if not x or any(len(image) != 784 for image in x):
            raise ValueError(f"{file}: writer {user!r} has no images or an image without 784 pixels")
    return rows
