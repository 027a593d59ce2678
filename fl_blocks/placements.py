"""How values live at the server and at the clients.

A SERVER value is a plain value. A CLIENTS value is a sequence with one entry
per client: a list, a `StackedClients` (one tree whose leaves carry a leading
client axis, as a vectorized client work produces), or an `AllEqual` (the same
value at every client, as a broadcast produces).

>>> import numpy as np
>>> clients = StackedClients(np.arange(6.0).reshape(3, 2))
>>> len(clients), clients[1]
(3, array([2., 3.]))
>>> AllEqual("w")[7]
'w'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, NoReturn, TypeVar

import numpy as np
import optree

from fl_blocks.specs import leading_dim

__all__ = ["AllEqual", "StackedClients", "stack_client_values"]

T = TypeVar("T")


class AllEqual(Generic[T]):
    """A CLIENTS value equal to `value` at every client (TFF's ``all_equal``)."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __getitem__(self, index: int) -> T:
        return self.value

    def __len__(self) -> int:
        raise TypeError("an AllEqual CLIENTS value has no client count; index it per client of the client data")

    def __iter__(self) -> NoReturn:
        raise TypeError("an AllEqual CLIENTS value cannot be iterated; index it per client of the client data")

    def __repr__(self) -> str:
        return f"AllEqual({self.value!r})"


class StackedClients(Sequence[Any]):
    """A CLIENTS value stored as one tree with a leading client axis on each leaf."""

    __slots__ = ("stacked", "_n")

    def __init__(self, stacked: Any) -> None:
        try:
            self._n = leading_dim(stacked)
        except ValueError as error:
            raise ValueError(f"a StackedClients value needs a leading client axis on every leaf: {error}") from None
        self.stacked = stacked

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return StackedClients(optree.tree_map(lambda leaf: leaf[index], self.stacked))
        if not -self._n <= index < self._n:
            raise IndexError(f"client index {index} out of range for {self._n} clients")
        return optree.tree_map(lambda leaf: leaf[index], self.stacked)

    def __repr__(self) -> str:
        return f"StackedClients(<{self._n} clients>)"


def stack_client_values(values: Sequence[Any]) -> Any:
    """Returns the tree of a CLIENTS value with a leading client axis on each leaf."""
    if isinstance(values, StackedClients):
        return values.stacked
    if len(values) == 0:
        raise ValueError("cannot stack an empty CLIENTS value: there are no clients")
    try:
        return optree.tree_map(lambda *leaves: np.stack(leaves), values[0], *values[1:])
    except ValueError as error:
        raise ValueError(f"client values differ in structure or shape, so they cannot be combined: {error}") from None
