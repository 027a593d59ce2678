"""`ClientData`: a federated data set, one `Dataset` per client id.

>>> import collections, numpy as np
>>> arrays = {"a": collections.OrderedDict(label=np.arange(3), pixels=np.zeros((3, 28, 28), np.float32))}
>>> data = ClientData.from_clients_and_fn(["a"], lambda cid: Dataset.from_tensor_slices(arrays[cid]))
>>> data.client_ids, sum(1 for _ in data.create_dataset_for_client("a"))
(['a'], 3)
"""

from __future__ import annotations

from typing import Callable, Iterable

from fl_blocks.simulation.datasets.dataset import Dataset

__all__ = ["ClientData"]


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

    @property
    def client_ids(self) -> list[str]:
        """The client ids, in order."""
        return list(self._client_ids)

    @property
    def serializable_dataset_fn(self) -> Callable[[str], Dataset]:
        """The function that builds one client's dataset."""
        return self._dataset_fn

    def create_dataset_for_client(self, client_id: str) -> Dataset:
        """Returns the dataset of `client_id`; raises `KeyError` for an unknown id."""
        if client_id not in self._known:
            raise KeyError(f"unknown client id {client_id!r}; this ClientData has {len(self._client_ids)} clients")
        return self._dataset_fn(client_id)

    create_tf_dataset_for_client = create_dataset_for_client

    def preprocess(self, preprocess_fn: Callable[[Dataset], Dataset]) -> "ClientData":
        """Returns a `ClientData` whose datasets are passed through `preprocess_fn`."""
        dataset_fn = self._dataset_fn
        return ClientData(self._client_ids, lambda cid: preprocess_fn(dataset_fn(cid)))
