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
(In the code ``u`` holds ``U^T``, one row per example.)

A round costs two large matrix products (``X W0`` and ``U X``) plus small steps
on ``(batch, batch)`` blocks of ``K``. ``K`` depends only on the data, so it is
kept across rounds (see `fl_blocks.execution.cache`).

>>> import numpy as np
>>> x = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
>>> grams_of(x[None], width=1)[0].tolist()  # X X^T + 1
[[2.0, 1.0], [1.0, 5.0]]
"""

from __future__ import annotations

import numpy as np

from fl_blocks.execution.layout import Chunk
from fl_blocks.execution.lockstep import dlogits

__all__ = ["by_client_rows", "grams_of", "slot_width", "train_dual"]


def slot_width(chunk: Chunk) -> int:
    """The one batch width of a by-client chunk's steps (0 without steps)."""
    return chunk.steps[0][2] if chunk.steps else 0


def by_client_rows(chunk: Chunk) -> np.ndarray:
    """A by-client chunk's rows as ``(clients, steps * width, dim)``."""
    return chunk.x.reshape(len(chunk.clients), len(chunk.steps) * slot_width(chunk), chunk.x.shape[-1])


def grams_of(x: np.ndarray, width: int) -> np.ndarray:
    """Per client ``X X^T + 1`` ``(clients, rows, rows)`` in float32 of by-client rows `x`
    ``(clients, steps * width, dim)``, its batches' diagonal blocks computed in float64 and rounded."""
    full: np.ndarray = np.matmul(x, x.transpose(0, 2, 1))
    full += np.float32(1)
    count, rows, dim = x.shape
    for k in range(rows // width if width else 0):
        here = x[:, k * width:(k + 1) * width].astype(np.float64)
        full[:, k * width:(k + 1) * width, k * width:(k + 1) * width] = np.matmul(here, here.transpose(0, 2, 1)) + 1
    return full


#: Relative error of a float32-rounded ``K_kk`` entry.
_ROUNDING = 2.0 ** -24
#: A clip norm's square is taken from ``K_kk`` while its error bound is at most this fraction of it.
_TRUSTED = 2.0 ** -18


def _squared_norms(grads: np.ndarray, gram: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per client the squared global norm ``<G K G>`` of one batch's kernel and bias gradients.

    `grads` ``(clients, width, classes)``, `gram` its float32 ``(clients, width, width)``
    diagonal blocks, `rows` the batch's float32 rows ``(clients, width, dim)``.
    """
    exact = grads.astype(np.float64)
    products = np.matmul(exact, exact.transpose(0, 2, 1))  # g_i . g_j
    flat, block = products.reshape(len(grads), 1, -1), gram.reshape(len(grads), -1, 1).astype(np.float64)
    squares: np.ndarray = np.matmul(flat, block)[:, 0, 0]
    bound = np.matmul(np.abs(flat), np.abs(block))[:, 0, 0] * _ROUNDING
    trusted = bound <= _TRUSTED * squares
    for i in () if trusted.all() else np.flatnonzero(~trusted):  # cancellation: from the rows, in float64
        kernel = np.matmul(exact[i].T, rows[i].astype(np.float64))
        squares[i] = np.vdot(kernel, kernel) + np.vdot(exact[i].sum(axis=0), exact[i].sum(axis=0))
    return squares


def _rates(squares: np.ndarray, learning_rate: np.float32, clip_norm: np.float32) -> np.ndarray:
    """Per client ``lr * min(1, clip / norm)`` in float32: SGD's rate with the global-norm clip (> 0) folded in."""
    rate: np.ndarray = (clip_norm / np.maximum(np.sqrt(squares), clip_norm) * learning_rate).astype(np.float32)
    return rate


def train_dual(chunk: Chunk, grams: np.ndarray, kernel: np.ndarray, bias: np.ndarray, shared: bool,
               learning_rate: np.float32, clip_norm: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The updates ``(X^T U^T, U 1)`` of a by-client `chunk` (see `make_chunk`) trained with clipped plain SGD.

    `kernel` ``(clients, dim, classes)`` and `bias` ``(clients, classes)`` are the
    initial weights; when `shared`, every client starts from ``kernel[0], bias[0]``.
    Returns kernel updates ``(clients, dim, classes)`` and bias updates.
    """
    count, steps = len(chunk.clients), len(chunk.steps)
    width = slot_width(chunk)
    rows, classes = steps * width, bias.shape[-1]
    x = by_client_rows(chunk)
    if shared:  # one matrix product for every row of the chunk
        logits = np.matmul(chunk.x, kernel[0]).reshape(count, rows, classes)
    else:
        logits = np.matmul(x, kernel)
    logits += bias[:, None, :]
    onehot = chunk.labels.reshape(count, rows, 1) == np.arange(classes)
    denominators = chunk.denominators.reshape(count, rows, 1)
    u = np.zeros((count, rows, classes), np.float32)  # row-major U^T
    for k, (_, active, _) in enumerate(chunk.steps):
        here, later = slice(k * width, (k + 1) * width), slice((k + 1) * width, rows)
        grads = dlogits(logits[:active, here], onehot[:active, here], denominators[:active, here], True, axis=2)
        squares = _squared_norms(grads, grams[:active, here, here], x[:active, here])
        rates = _rates(squares, learning_rate, clip_norm)
        step = np.multiply(grads, rates[:, None, None], out=u[:active, here])
        following = chunk.steps[k + 1][1] if k + 1 < steps else 0
        if following:
            logits[:following, later] -= np.matmul(grams[:following, later, here], step[:following])
    return np.matmul(x.transpose(0, 2, 1), u), u.sum(axis=1)
