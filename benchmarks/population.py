"""Client populations for the round benchmarks, from the shared real EMNIST writers.

All populations are digits only (TFF's ``emnist.load_data(only_digits=True)``,
as in the tutorial), stored as uint8 pixels in one `ClientData`
(``ClientData.from_arrays(..., element_fn=pixels_to_float32)``), and fed to
``process.next`` as the tutorial does::

    [train.create_dataset_for_client(c).batch(20).map(batch_format_fn) for c in ids]

- ``10``: the tutorial's seed setting, the first 10 sorted writer ids (TFF's golden run).
- ``105``: all 105 real training writers of ``femnist_leaf_subset.npz``.
- ``3400`` (any other count): writers drawn with replacement from the 105 with
  ``numpy.random.default_rng(RESAMPLE_SEED).choice(105, size=count)``; client
  ``j`` is writer ``ids[draw[j]]`` under the id ``f"{writer}_{j}"``. Each client
  holds its own copy of the rows (one uint8 array of 268 MB for 3,400 clients,
  341,621 examples), as a real population of that size would: no cache or
  memory bandwidth figure profits from repeated writers.
"""

from __future__ import annotations

import collections
import pathlib
from typing import Any

import numpy as np

from fl_blocks.simulation.datasets import ClientData, pixels_to_float32

DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "femnist_leaf_subset.npz"
RESAMPLE_SEED = 5
BATCH_SIZE = 20


def batch_format_fn(element: Any) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's batch format: flattened pixels [B, 784] and labels [B, 1]."""
    return element["pixels"].reshape(-1, 784), element["label"].reshape(-1, 1)


def writers() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(sorted writer ids, offsets, uint8 pixels, int32 labels) of the digits of the 105 training writers."""
    if not DATA.exists():
        raise FileNotFoundError(f"the shared EMNIST data is not at {DATA}; the benchmarks need ../shared/data")
    with np.load(DATA, allow_pickle=False) as data:
        ids, offsets = [str(c) for c in data["train_client_ids"]], data["train_offsets"]
        pixels, labels = data["train_pixels"], data["train_labels"]
    digits = labels < 10
    counts = np.add.reduceat(digits, offsets[:-1])
    pixels, labels = pixels[digits], labels[digits].astype(np.int32)
    pixels.flags.writeable = labels.flags.writeable = False  # as fl_blocks' loaders return them: cacheable
    return ids, np.concatenate([[0], np.cumsum(counts)]), pixels, labels


def client_arrays(num_clients: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(ids, offsets, uint8 pixels, int32 labels) of the `num_clients` clients of one round, their rows client after client."""
    ids, offsets, pixels, labels = writers()
    if num_clients <= len(ids):
        return ids[:num_clients], offsets[:num_clients + 1], pixels, labels
    draw = np.random.default_rng(RESAMPLE_SEED).choice(len(ids), size=num_clients)
    pixels = np.concatenate([pixels[offsets[w]:offsets[w + 1]] for w in draw])  # distinct rows per client
    labels = np.concatenate([labels[offsets[w]:offsets[w + 1]] for w in draw])
    pixels.flags.writeable = labels.flags.writeable = False
    return [f"{ids[w]}_{j}" for j, w in enumerate(draw)], np.concatenate([[0], np.cumsum(np.diff(offsets)[draw])]), pixels, labels


def client_data(num_clients: int) -> tuple[ClientData, list[str]]:
    """A uint8-backed `ClientData` and the ids of the `num_clients` clients of one round."""
    ids, offsets, pixels, labels = client_arrays(num_clients)
    columns = collections.OrderedDict(
        (cid, collections.OrderedDict(label=labels[offsets[i]:offsets[i + 1]], pixels=pixels[offsets[i]:offsets[i + 1]]))
        for i, cid in enumerate(ids)
    )
    return ClientData.from_arrays(columns, element_fn=pixels_to_float32), ids


def datasets(num_clients: int) -> list[Any]:
    """The round's client datasets: ``create_dataset_for_client(c).batch(20).map(batch_format_fn)``."""
    train, ids = client_data(num_clients)
    return [train.create_dataset_for_client(c).batch(BATCH_SIZE).map(batch_format_fn) for c in ids]


def batch_lists(num_clients: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The same clients as lists of float32 (x, y) batches (what the golden tests pass)."""
    return [[(np.asarray(x), np.asarray(y)) for x, y in dataset] for dataset in datasets(num_clients)]


def num_examples(client_datasets: Any) -> int:
    """Examples in one round's client datasets."""
    return sum(len(y) for dataset in client_datasets for _, y in dataset)
