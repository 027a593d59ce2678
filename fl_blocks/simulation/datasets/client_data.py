"""`ClientData`: a federated data set, one `Dataset` per client id (TFF's ``tff.simulation.datasets.ClientData``).

>>> import collections, numpy as np
>>> columns = {"a": collections.OrderedDict(label=np.arange(3, dtype=np.int32), pixels=np.zeros((3, 28, 28), np.uint8))}
>>> data = ClientData.from_arrays(columns, element_fn=pixels_to_float32)
>>> data.client_ids, [e["pixels"].dtype.name for e in data.create_dataset_for_client("a")]
(['a'], ['float32', 'float32', 'float32'])
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from fl_blocks.simulation.datasets.dataset import Dataset

__all__ = ["ClientData", "UnknownClientError", "pixels_to_float32"]

Seed = Optional[Union[int, Sequence[int]]]


class UnknownClientError(KeyError, ValueError):
    """A client id that is not in the `ClientData` (a `KeyError`, and a `ValueError` as TFF raises)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def pixels_to_float32(element: Mapping[str, Any]) -> "collections.OrderedDict[str, Any]":
    """TFF's EMNIST element from stored bytes: ``OrderedDict(label, pixels=float32(byte) / 255)``.

    Works on one element or on a block of rows (it is row-wise), so pipelines keep
    uint8 storage and convert lazily.

    >>> pixels_to_float32({"label": np.int32(1), "pixels": np.array([0, 255], np.uint8)})["pixels"]
    array([0., 1.], dtype=float32)
    """
    pixels = np.asarray(element["pixels"])
    if pixels.dtype == np.uint8:  # the same values, converted inside the division: one pass, one array
        return collections.OrderedDict(label=element["label"], pixels=np.divide(pixels, np.float32(255), dtype=np.float32))
    return collections.OrderedDict(label=element["label"], pixels=pixels.astype(np.float32) / np.float32(255))


def _check_seed(seed: Seed) -> None:
    def ok(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= int(value) < 2**32

    if seed is None or ok(seed) or (isinstance(seed, Sequence) and all(ok(s) for s in seed)):
        return
    raise TypeError(f"seed must be a nonnegative 32-bit integer, a sequence of such integers, or None; got {seed!r}")


def _shuffled(client_ids: list[str], seed: Seed) -> list[str]:
    _check_seed(seed)
    ids = list(client_ids)
    np.random.RandomState(seed).shuffle(ids)  # TFF's order for a given seed
    return ids


class ClientData:
    """Client ids plus a function that builds each client's `Dataset`."""

    def __init__(self, client_ids: Iterable[str], serializable_dataset_fn: Callable[[str], Dataset]) -> None:
        self._client_ids = list(client_ids)
        if len(set(self._client_ids)) != len(self._client_ids):
            raise ValueError("client_ids contains duplicates")
        self._known = set(self._client_ids)
        self._dataset_fn = serializable_dataset_fn

    @classmethod
    def from_clients_and_fn(cls, client_ids: Iterable[str], create_tf_dataset_for_client_fn: Callable[[str], Dataset]) -> "ClientData":
        """Builds a `ClientData` from ids and a per-client dataset function (TFF's name)."""
        return cls(client_ids, create_tf_dataset_for_client_fn)

    from_clients_and_tf_fn = from_clients_and_fn

    @classmethod
    def from_arrays(cls, columns: Mapping[str, Any], element_fn: Optional[Callable[..., Any]] = None) -> "ClientData":
        """One client per key of `columns`: its tree of equal-length arrays, one element per row.

        Arrays are kept as given (no copy; e.g. uint8 pixels). `element_fn`, when given,
        is mapped over every element, declaring how a stored row becomes the element
        users see (e.g. `pixels_to_float32`); it should be row-wise so pipelines stay
        vectorized. Raises `ValueError` for a client whose arrays disagree in length.
        """
        datasets = {}
        for client_id, tree in columns.items():
            try:
                dataset = Dataset.from_tensor_slices(tree)
            except ValueError as error:
                raise ValueError(f"client {client_id!r}: {error}") from None
            datasets[client_id] = dataset if element_fn is None else dataset.map(element_fn)
        return cls(list(datasets), datasets.__getitem__)

    @property
    def client_ids(self) -> list[str]:
        """The client ids, in order."""
        return list(self._client_ids)

    @property
    def serializable_dataset_fn(self) -> Callable[[str], Dataset]:
        """The function that builds one client's dataset."""
        return self._dataset_fn

    def create_dataset_for_client(self, client_id: str) -> Dataset:
        """Returns the dataset of `client_id`; raises `UnknownClientError` (a `KeyError`) for an unknown id."""
        if not isinstance(client_id, str) or client_id not in self._known:
            raise UnknownClientError(
                f"unknown client id {client_id!r}; this ClientData has {len(self._client_ids)} clients (see client_ids)"
            )
        return self._dataset_fn(client_id)

    create_tf_dataset_for_client = create_dataset_for_client

    def datasets(self, limit_count: Optional[int] = None, seed: Seed = None) -> Iterator[Dataset]:
        """Yields client datasets in TFF's random client order for `seed`, at most `limit_count`."""
        ids = _shuffled(self._client_ids, seed)
        for client_id in ids if limit_count is None else ids[:max(limit_count, 0)]:
            yield self.create_dataset_for_client(client_id)

    def create_dataset_from_all_clients(self, seed: Seed = None) -> Dataset:
        """All clients' examples in one dataset, client after client in TFF's random order for `seed`."""
        ids = _shuffled(self._client_ids, seed)
        return Dataset.from_generator(lambda: (e for cid in ids for e in self._dataset_fn(cid)))

    create_tf_dataset_from_all_clients = create_dataset_from_all_clients

    def preprocess(self, preprocess_fn: Callable[[Dataset], Dataset]) -> "ClientData":
        """Returns a `ClientData` whose datasets are passed through `preprocess_fn`."""
        dataset_fn = self._dataset_fn
        return ClientData(self._client_ids, lambda cid: preprocess_fn(dataset_fn(cid)))

    @classmethod
    def train_test_client_split(cls, client_data: "ClientData", num_test_clients: int, seed: Seed = None) -> tuple["ClientData", "ClientData"]:
        """Splits clients into disjoint (train, test) `ClientData` as TFF does; test clients are non-empty."""
        if num_test_clients <= 0:
            raise ValueError("Please specify num_test_clients > 0.")
        if len(client_data.client_ids) <= num_test_clients:
            raise ValueError(
                f"The client_data supplied has only {len(client_data.client_ids)} clients, "
                f"but {num_test_clients} test clients were requested."
            )
        train_ids = _shuffled(client_data.client_ids, seed)
        empty: list[str] = []
        test_ids: list[str] = []
        while len(test_ids) < num_test_clients:
            if not train_ids or len(empty) > 5 * num_test_clients + 10:
                raise ValueError("Encountered too many clients with no data.")
            client_id = train_ids.pop()
            if next(iter(client_data.create_dataset_for_client(client_id)), _EMPTY) is _EMPTY:
                logging.warning("Client %s had no data, skipping.", client_id)
                empty.append(client_id)
            else:
                test_ids.append(client_id)
        fn = client_data.serializable_dataset_fn
        return cls(train_ids + empty, fn), cls(test_ids, fn)


_EMPTY = object()
