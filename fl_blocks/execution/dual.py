"""Plain-SGD lockstep training in dual form: a client's weights stay ``W0 - U X``.

With plain SGD on the linear softmax model, step ``k`` subtracts
``rate_k * G_k X_k`` from the transposed kernel (``G_k``: the batch's logit
gradients, ``(classes, batch)``) and ``rate_k * G_k 1`` from the bias. Writing
``U_k = rate_k G_k`` and ``K = X X^T + 1`` (the 1 carries the bias), batch
``k``'s logits are ``W0 X_k^T + b0 - sum_{j<k} U_j K_jk`` and the global
gradient norm is ``sqrt(<G_k K_kk, G_k>)``: no step touches the 784-wide
weights.
The diagonal blocks ``K_kk`` are computed in float64 and rounded, so that sum is
known to within ``2^-24 <|G_k^T G_k|, K_kk>``; where that bound is not small
against it (the batch's gradient rows nearly cancel), the norm is computed from
the batch's rows in float64 instead. The update ``initial - trained`` is
``(U X)^T`` (kernel) and ``U 1`` (bias), computed once, without the float32
cancellation of subtracting trained weights.
(In the code ``u`` holds ``U``, ``(clients, classes, rows)``; the logits are held ``(steps, classes, clients, width)``.)

A round costs two large matrix products (``X W0``, and ``U X`` over each
client's own batches) plus small steps on ``(batch, batch)`` blocks of ``K``.
``K`` depends only on the data, so its lower block triangle (all the steps
read) is kept across rounds (see `fl_blocks.execution.cache`). Columns that
hold one value in every real row (blank borders) are left out of both
products (see `fl_blocks.execution.columns`).

>>> import numpy as np
>>> x = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
>>> grams_of(x[None], width=1)[0].tolist()  # X X^T + 1, lower triangle packed row by row
[2.0, 1.0, 5.0]
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from fl_blocks.execution.columns import Columns, Span, fill_outside, forward_by_columns, forward_by_span, with_constant_columns
from fl_blocks.execution.layout import Chunk
from fl_blocks.execution.lockstep import dlogits

__all__ = ["by_client_rows", "forward", "grams_of", "own_panels", "panel", "panel_span", "place_panels", "slot_width", "train_dual"]


def slot_width(chunk: Chunk) -> int:
    """The one batch width of a by-client chunk's steps (0 without steps)."""
    return chunk.steps[0][2] if chunk.steps else 0


def by_client_rows(chunk: Chunk) -> np.ndarray:
    """A by-client chunk's rows as ``(clients, steps * width, dim)``."""
    return chunk.x.reshape(len(chunk.clients), len(chunk.steps) * slot_width(chunk), chunk.x.shape[-1])


def panel_span(k: int, width: int) -> slice:
    """Where batch `k`'s row panel ``K[batch k, batches 0..k]`` lies in a client's packed Gram matrix."""
    return slice(width * width * k * (k + 1) // 2, width * width * (k + 1) * (k + 2) // 2)


def panel(grams: np.ndarray, k: int, width: int) -> np.ndarray:
    """Batch `k`'s row panel ``(clients, width, (k + 1) * width)`` of packed Gram matrices (a view)."""
    return grams[:, panel_span(k, width)].reshape(len(grams), width, (k + 1) * width)


def grams_of(x: np.ndarray, width: int) -> np.ndarray:
    """Per client the lower block triangle of ``X X^T + 1`` of by-client rows `x` ``(clients, steps * width, dim)``.

    Packed in float32 ``(clients, width^2 * steps * (steps + 1) / 2)``: batch
    ``k``'s row panel (see `panel`) after batch ``k - 1``'s, so a client with
    fewer batches uses a prefix. The diagonal blocks are float64 products, rounded.
    """
    count, rows, dim = x.shape
    steps = rows // width if width else 0
    packed = np.empty((count, panel_span(steps - 1, width).stop if steps else 0), np.float32)
    for k in range(steps):
        here, out = x[:, k * width:(k + 1) * width], panel(packed, k, width)
        np.matmul(here, x[:, :(k + 1) * width].transpose(0, 2, 1), out=out)
        out += np.float32(1)
        exact = here.astype(np.float64)
        out[:, :, k * width:] = np.matmul(exact, exact.transpose(0, 2, 1)) + 1
    return packed


def own_panels(packed: np.ndarray, width: int, batches: int, rows: int) -> tuple[np.ndarray, int]:
    """A client's packed panels cut from its slot's, and their width: its `batches`' prefix, or its one
    batch's `rows` real rows when narrower than the slot (so they fit a group of any width)."""
    if batches > 1 or rows == width:
        return packed[:panel_span(batches - 1, width).stop].copy(), width
    return packed[:width * width].reshape(width, width)[:rows, :rows].flatten(), rows


def place_panels(slot: np.ndarray, packed: np.ndarray, own_width: int, width: int) -> None:
    """Writes a client's `own_panels` into its slot of a group's packed panels of batch `width`."""
    if own_width == width:
        slot[:packed.size] = packed
    else:  # one batch, narrower than the group's
        slot[:width * width].reshape(width, width)[:own_width, :own_width] = packed.reshape(own_width, own_width)


#: Relative error of a float32-rounded ``K_kk`` entry.
_ROUNDING = 2.0 ** -24
#: A clip norm's square is taken from ``K_kk`` while its error bound is at most this fraction of it.
_TRUSTED = 2.0 ** -18


def _squared_norms(grads: np.ndarray, gram: np.ndarray, rows: np.ndarray | Callable[[], np.ndarray]) -> np.ndarray:
    """Per client the squared global norm ``<G K G>`` of one batch's kernel and bias gradients.

    `grads` ``(clients, classes, width)``, `gram` its float32 ``(clients, width, width)``
    diagonal blocks, `rows` the batch's float32 rows ``(clients, width, dim)`` (or what makes them, when needed).
    """
    exact = grads.astype(np.float64)
    products = np.matmul(exact.transpose(0, 2, 1), exact)  # g_i . g_j of the examples' gradient columns
    flat, block = products.reshape(len(grads), 1, -1), gram.astype(np.float64).reshape(len(grads), -1, 1)
    squares: np.ndarray = np.matmul(flat, block)[:, 0, 0]
    trusted = np.matmul(np.abs(flat), np.abs(block))[:, 0, 0] <= _TRUSTED / _ROUNDING * squares  # bound <= _TRUSTED * squares
    if not trusted.all() and callable(rows):
        rows = rows()
    for i in () if trusted.all() else np.flatnonzero(~trusted):  # cancellation: from the rows, in float64
        kernel = np.matmul(exact[i], rows[i].astype(np.float64))  # type: ignore[index]
        squares[i] = np.vdot(kernel, kernel) + np.vdot(exact[i].sum(axis=1), exact[i].sum(axis=1))
    return squares


def _rates(squares: np.ndarray, learning_rate: np.float32, clip_norm: np.float32) -> np.ndarray:
    """Per client ``lr * min(1, clip / norm)`` in float32: SGD's rate with the global-norm clip (> 0) folded in."""
    rate: np.ndarray = (clip_norm / np.maximum(np.sqrt(squares), clip_norm) * learning_rate).astype(np.float32)
    return rate


def forward(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``X W0`` per client ``(clients, rows, classes)`` of by-client rows `x`: one matrix product for all rows when
    `kernel` is one kernel broadcast to every client (BLAS threads share it; per client or per few clients is slower).

    >>> x, kernel = np.ones((3, 2, 4), np.float32), np.broadcast_to(np.eye(4, 2, dtype=np.float32), (3, 4, 2))
    >>> forward(x, kernel).tolist() == np.matmul(x, kernel).tolist()
    True
    """
    count, rows, dim = x.shape
    if count < 2 or kernel.strides[0] != 0:
        alone: np.ndarray = np.matmul(x, kernel)
        return alone
    shared: np.ndarray = np.matmul(x.reshape(count * rows, dim), kernel[0]).reshape(count, rows, kernel.shape[-1])
    return shared


def train_dual(chunk: Chunk, grams: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
               learning_rate: np.float32, clip_norm: np.float32,
               columns: Optional[Columns] = None, span: Optional[Span] = None) -> tuple[np.ndarray, np.ndarray]:
    """The updates ``(U X, U 1)`` of a by-client `chunk` (see `make_chunk`) trained with clipped plain SGD.

    `kernel` ``(clients, dim, classes)`` and `bias` ``(clients, classes)`` are the
    initial weights (broadcast views when every client starts from the same);
    `columns`, the chunk's `constant_columns` if found; else `span`, the columns its rows vary in, if known.
    Returns transposed kernel updates ``(clients, classes, dim)`` and bias updates.
    """
    count, steps = len(chunk.clients), len(chunk.steps)
    width = slot_width(chunk)
    rows, classes = steps * width, bias.shape[-1]
    x = by_client_rows(chunk) if columns is None else None  # (rows split into columns are not kept whole)
    if x is None:
        products = forward_by_columns(columns, kernel)  # type: ignore[arg-type]
    else:
        products = forward(x, kernel) if span is None else forward_by_span(span, x, kernel)
    by_step = (count, steps, width)  # -> (steps, classes, clients, width): a step reduces over whole class slabs
    logits = products.reshape(by_step + (classes,)).transpose(1, 3, 0, 2).copy()
    logits += bias.T[:, :, None]
    onehot = chunk.labels.reshape(by_step).transpose(1, 0, 2)[:, None] == np.arange(classes)[:, None, None]
    denominators = chunk.denominators.reshape(by_step).transpose(1, 0, 2)[:, None].copy()
    u = np.zeros((count, classes, rows), np.float32)  # U
    for k, (_, active, _) in enumerate(chunk.steps):
        here, row_panel, step = slice(k * width, (k + 1) * width), panel(grams[:active], k, width), logits[k, :, :active]
        if k:  # what batches 0..k-1 changed: sum_j U_j K_jk
            step -= np.matmul(u[:active, :, :k * width], row_panel[:, :, :k * width].transpose(0, 2, 1)).transpose(1, 0, 2)
        grads = dlogits(step, onehot[k, :, :active], denominators[k, :, :active], True, axis=0, clients=1).transpose(1, 0, 2)
        rows_here = x[:active, here] if x is not None else lambda a=active, h=here: columns.rows(a, h)  # type: ignore[union-attr]
        squares = _squared_norms(grads, row_panel[:, :, k * width:], rows_here)
        np.multiply(grads, _rates(squares, learning_rate, clip_norm)[:, None, None], out=u[:active, :, here])
    biases = np.matmul(u, np.ones((rows, 1), np.float32))[:, :, 0]  # U 1
    counts = [a for _, a, _ in chunk.steps]
    if x is not None:
        kernels = _by_batch_count(u, x, counts, width, (0, x.shape[-1]) if span is None else (span.first, span.end))
        if span is not None:
            fill_outside(kernels, biases, span)
        return kernels, biases
    assert columns is not None
    return with_constant_columns(_by_batch_count(u, columns.x, counts, width), biases, columns), biases


def _by_batch_count(u: np.ndarray, x: np.ndarray, active: list[int], width: int,
                    span: Optional[tuple[int, int]] = None) -> np.ndarray:
    """``U X`` per client, each over its own batches' rows only: one product for the clients of each batch count
    (``active`` per step, clients sorted by it), not over the slots they leave empty. With `span`, only
    columns ``span[0]:span[1]`` are computed (the others are left unset)."""
    first, end = (0, x.shape[-1]) if span is None else span
    kernels = np.empty((len(u), u.shape[1], x.shape[-1]), np.float32)
    kernels[active[0] if active else 0:] = 0
    for k, (most, fewer) in enumerate(zip(active, active[1:] + [0])):
        if most > fewer:  # clients fewer..most-1 have k + 1 batches
            np.matmul(u[fewer:most, :, :(k + 1) * width], x[fewer:most, :(k + 1) * width, first:end],
                      out=kernels[fewer:most, :, first:end])
    return kernels
