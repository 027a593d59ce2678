"""Columns that hold one value in every real row of a chunk, e.g. the blank border pixels of EMNIST.

Such a column ``j`` with value ``c_j`` adds ``c_j W0[j]`` to every row's logits
and ``c_j U 1`` (``c_j`` times the bias update) to column ``j`` of ``U X``, so
the dual form's two large products need only the other columns: a contiguous
copy of them where the chunk's rows are kept (`Columns`), else a view of the
span from the first varying column to the last that the group's clients
agree outside of (`Span`, from each client's `ClientSpan`, kept with its Gram
matrix). In
the first 10 EMNIST writers 413 of the 784 pixels are blank throughout.
Padding rows (zero) do not count: their ``U`` is zero.

>>> import numpy as np
>>> x = np.array([[[1.0, 2.0, 5.0], [1.0, 3.0, 5.0]]], np.float32)
>>> found = constant_columns(x, np.ones(2, np.float32), least=1)
>>> found.values.tolist(), found.varying.tolist(), found.x.shape
([1.0, 0.0, 5.0], [1], (1, 2, 1))
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

__all__ = ["ClientSpan", "Columns", "Span", "client_span", "constant_columns", "fill_outside", "forward_by_columns",
           "forward_by_span", "group_span", "with_constant_columns"]


class Columns(NamedTuple):
    """A by-client chunk's constant columns: their `values` (0 in the others), the `varying` columns, the
    rows' varying columns `x` ``(clients, rows, varying)`` and the `runs` ``(first, end)`` of consecutive
    varying columns."""

    values: np.ndarray
    varying: np.ndarray
    x: np.ndarray
    runs: tuple[tuple[int, int], ...]

    def rows(self, clients: int, rows: slice) -> np.ndarray:
        """The first `clients`' `rows` with every column ``(clients, rows, dim)`` (padding rows hold the constants)."""
        varying = self.x[:clients, rows]
        whole = np.empty(varying.shape[:2] + self.values.shape, np.float32)
        whole[...] = self.values
        whole[:, :, self.varying] = varying
        return whole

    @property
    def nbytes(self) -> int:
        return self.x.nbytes + self.values.nbytes + self.varying.nbytes


def constant_columns(x: np.ndarray, denominators: np.ndarray, least: Optional[int] = None) -> Optional[Columns]:
    """The constant columns of by-client rows `x` ``(clients, rows, dim)`` over their real rows (`denominators`
    finite, one per row), or None when fewer than `least` (an eighth of the columns) are constant."""
    dim = x.shape[-1]
    real = x.reshape(-1, dim)[np.isfinite(denominators)]
    if not len(real):
        return None
    same = (real == real[0]).all(axis=0)  # (NaN is never the same)
    if same.sum() < (dim // 8 if least is None else least):
        return None
    varying = np.flatnonzero(~same)
    values = np.where(same, real[0], 0).astype(np.float32)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], ~same, [False]]).astype(np.int8)))  # run starts and ends
    runs = tuple((int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]))
    return Columns(values, varying, np.ascontiguousarray(x[:, :, varying]), runs)


def forward_by_columns(columns: Columns, kernel: np.ndarray) -> np.ndarray:
    """``X W0`` per client ``(clients, rows, classes)`` from the varying columns and the constant ones' values.

    `kernel` is ``(clients, dim, classes)``: one kernel broadcast to every client, or one per client.
    """
    count, rows, width = columns.x.shape
    if count > 1 and kernel.strides[0] == 0:  # one kernel: one product for all rows
        shared = kernel[0]
        logits: np.ndarray = np.matmul(columns.x.reshape(count * rows, width), shared[columns.varying]).reshape(count, rows, -1)
        logits += np.matmul(columns.values, shared)
        return logits
    own: np.ndarray = np.matmul(columns.x, kernel[:, columns.varying])
    own += np.matmul(columns.values, kernel)[:, None, :]
    return own


def with_constant_columns(varying: np.ndarray, biases: np.ndarray, columns: Columns) -> np.ndarray:
    """The transposed kernel updates ``(clients, classes, dim)``: `varying` ``U X`` of the varying columns
    (see `Columns.x`) in their places, and ``c_j U 1`` in the constant ones."""
    kernels: np.ndarray = np.einsum("ck,d->ckd", biases, columns.values)  # (twice as fast as the broadcast product)
    at = 0
    for first, end in columns.runs:  # a slice per run: faster than one fancy index over every column
        kernels[:, :, first:end] = varying[:, :, at:at + end - first]
        at += end - first
    return kernels


class ClientSpan(NamedTuple):
    """One client's columns ``first:end`` from its first varying column to its last, and the values its rows
    hold `before` and `after` them (``(dim, 0)`` and every column in both when none varies)."""

    first: int
    end: int
    before: np.ndarray
    after: np.ndarray


class Span(NamedTuple):
    """A group's columns ``first:end`` that the products read: every real row holds `values` (0 inside) outside them."""

    first: int
    end: int
    values: np.ndarray


def client_span(rows: np.ndarray) -> ClientSpan:
    """The `ClientSpan` of one client's real rows ``(n, dim)``, n > 0."""
    varying = np.flatnonzero((rows != rows[0]).any(axis=0) | np.isnan(rows[0]))
    first, end = (int(varying[0]), int(varying[-1]) + 1) if len(varying) else (rows.shape[1], 0)  # none: joins any
    return ClientSpan(first, end, rows[0, :first].copy(), rows[0, end:].copy())


def group_span(spans: list[ClientSpan], dim: int) -> Optional[Span]:
    """The clients' spans joined, or None when the clients' values outside it differ or it leaves out fewer
    than an eighth of the `dim` columns."""
    first, end = min(s.first for s in spans), max(s.end for s in spans)
    first, end = min(first, end), max(first, end)
    if end - first > dim - dim // 8:
        return None
    before, after = spans[0].before[:first], spans[0].after[len(spans[0].after) - (dim - end):]
    outside = before.tobytes(), after.tobytes()  # as bytes: a -0.0 against a 0.0 gives no span
    for s in spans[1:]:
        if (s.before[:first].tobytes(), s.after[len(s.after) - (dim - end):].tobytes()) != outside:
            return None
    values = np.zeros(dim, np.float32)
    values[:first], values[end:] = before, after
    return Span(first, end, values)


def forward_by_span(span: Span, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``X W0`` per client ``(clients, rows, classes)`` of by-client rows `x` from the columns in `span` and the
    values outside it; `kernel` as in `forward_by_columns`."""
    count, rows, dim = x.shape
    first, end = span.first, span.end
    if count > 1 and kernel.strides[0] == 0:
        shared = kernel[0]
        logits: np.ndarray = np.matmul(x.reshape(count * rows, dim)[:, first:end], shared[first:end]).reshape(count, rows, -1)
        logits += np.matmul(span.values, shared)
        return logits
    own: np.ndarray = np.matmul(x[:, :, first:end], kernel[:, first:end])
    own += np.matmul(span.values, kernel)[:, None, :]
    return own


def fill_outside(kernels: np.ndarray, biases: np.ndarray, span: Span) -> None:
    """Writes ``c_j U 1`` into the transposed kernel updates `kernels` ``(clients, classes, dim)`` outside `span`."""
    for part in (slice(0, span.first), slice(span.end, kernels.shape[-1])):
        if part.start < part.stop:
            np.einsum("ck,d->ckd", biases, span.values[part], out=kernels[:, :, part])
