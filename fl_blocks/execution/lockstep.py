"""Lockstep client training: step ``k`` of every still-active client is one batched NumPy call.

Weights carry a leading client axis; the kernel is kept transposed,
``(clients, classes, input_dim)``, which suits the small batched matrix
products. Per client and batch the arithmetic is the per-client loop's: Keras'
clipped-probability loss, its gradient (divided by the client's real batch
size), the global-norm clip and one client-optimizer step. Only the summation
order inside the matrix products and norms may differ (rounding, ~1e-7).

>>> import numpy as np
>>> from fl_blocks.optimizers import build_sgdm
>>> is_elementwise(build_sgdm(0.1, momentum=0.9))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optree

from fl_blocks.execution.layout import Chunk
from fl_blocks.models.softmax import KERAS_EPSILON
from fl_blocks.optimizers.optimizer import LEARNING_RATE_KEY, Optimizer
from fl_blocks.optimizers.sgdm import build_sgdm
from fl_blocks.specs import TensorSpec

__all__ = ["dlogits", "is_elementwise", "plain_sgd_rate", "train_chunk"]

_EPS = np.float32(KERAS_EPSILON)
_ONE_MINUS_EPS = np.float32(1 - KERAS_EPSILON)


def _state(optimizer: Optimizer, shapes: list[tuple[int, ...]], count: int) -> tuple[Any, list[bool]]:
    """The optimizer state for `count` stacked clients and which of its leaves are per client."""
    stacked = optimizer.initialize([TensorSpec((count,) + s, "float32") for s in shapes])
    single: list[Any] = optree.tree_leaves(optimizer.initialize([TensorSpec(s, "float32") for s in shapes]))  # type: ignore[arg-type]
    leaves: list[Any] = optree.tree_leaves(stacked)  # type: ignore[arg-type]
    per_client = [isinstance(a, np.ndarray) and a.shape == (count,) + np.shape(b) for a, b in zip(leaves, single)]
    return stacked, per_client


def _prefix(state: Any, per_client: list[bool], count: int) -> Any:
    leaves, treedef = optree.tree_flatten(state)
    return optree.tree_unflatten(treedef, [leaf[:count] if flag else leaf for leaf, flag in zip(leaves, per_client)])


def is_elementwise(optimizer: Optimizer) -> bool:
    """Whether stepping clients stacked on a leading axis equals stepping each alone, bit for bit (probed)."""
    rng = np.random.default_rng(0)
    shapes = [(3, 2), (2,)]
    try:
        state, per_client = _state(optimizer, shapes, 2)
        weights = [rng.standard_normal((2,) + s).astype(np.float32) for s in shapes]
        alone = [(optimizer.initialize([TensorSpec(s, "float32") for s in shapes]), [w[i] for w in weights]) for i in range(2)]
        for _ in range(3):
            grads = [rng.standard_normal((2,) + s).astype(np.float32) for s in shapes]
            state, weights = optimizer.next(state, weights, grads)
            alone = [optimizer.next(s, w, [g[i] for g in grads]) for i, (s, w) in enumerate(alone)]
            state = _prefix(state, per_client, 2)
        return all(np.array_equal(w[i], a, equal_nan=True) for i, (_, ws) in enumerate(alone) for w, a in zip(weights, ws))
    except Exception:  # an optimizer that cannot take stacked weights is not elementwise
        return False


def dlogits(logits: np.ndarray, labels: np.ndarray, denominators: np.ndarray, classes: Any, axis: int = 1,
            clients: int = 0) -> np.ndarray:
    """Per client: the gradient of the mean Keras cross-entropy (see `SoftmaxRegression`) by the logits.

    `logits` hold the clients on axis `clients` and the classes on `axis` (overwritten); `labels`
    and `classes` broadcast against them to the one-hot labels (or `labels` is
    the one-hot and `classes` is True), `denominators` (each row's real batch
    size, inf on padding rows) to the logits. The softmax subtracts each row's
    largest logit, as the loop does (one shift for all rows would round small
    logits beside a large one).
    """
    logits -= logits.max(axis=axis, keepdims=True)
    exps = np.exp(logits, out=logits)
    probs = exps / exps.sum(axis=axis, keepdims=True)
    onehot = labels if classes is True else labels == classes
    if probs.min() >= _EPS and probs.max() <= _ONE_MINUS_EPS:  # no probability clipped at any client
        through_clip = probs / probs.sum(axis=axis, keepdims=True) - onehot
    else:  # per client, as the loop decides per batch (padding rows do not count)
        in_range = (probs >= _EPS) & (probs <= _ONE_MINUS_EPS)
        through_clip = probs / np.clip(probs, _EPS, _ONE_MINUS_EPS).sum(axis=axis, keepdims=True) - onehot
        clipped = np.where(in_range, through_clip, 0)
        clipped -= probs * clipped.sum(axis=axis, keepdims=True)
        others = tuple(a for a in range(probs.ndim) if a != clients)
        inside = (in_range | np.isinf(denominators)).all(axis=others, keepdims=True)
        through_clip = np.where(inside, through_clip, clipped)
    result: np.ndarray = through_clip / denominators
    return result


def _gradients(kernel: np.ndarray, bias: np.ndarray, x: np.ndarray, labels: np.ndarray, denominators: np.ndarray,
               classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per client: gradients of the mean Keras cross-entropy by the transposed kernel and the bias."""
    logits = np.matmul(kernel, x.transpose(0, 2, 1))
    logits += bias[:, :, None]
    grads = dlogits(logits, labels[:, None, :], denominators, classes)
    return np.matmul(grads, x), grads.sum(axis=2)


def _norms(grads: list[np.ndarray]) -> np.ndarray:
    """Per client ``sqrt(<kernel, kernel> + <bias, bias>)``, each dot product as BLAS computes `np.vdot`."""
    squares = [np.matmul(flat[:, None, :], flat[:, :, None])[:, 0, 0] for flat in (g.reshape(len(g), -1) for g in grads)]
    norms: np.ndarray = np.sqrt(squares[0] + squares[1])
    return norms


def _clip(grads: list[np.ndarray], clip_norm: np.float32) -> list[np.ndarray]:
    norm = _norms(grads)
    over = norm > clip_norm
    if not over.any():
        return grads
    scale = np.divide(clip_norm, norm, out=np.ones_like(norm), where=over)
    return [grads[0] * scale[:, None, None], grads[1] * scale[:, None]]


def _sgd_step(weights: list[np.ndarray], grads: list[np.ndarray], learning_rate: np.float32, clip_norm: np.float32,
              owned: bool) -> list[np.ndarray]:
    """``w - lr * clip(g)`` with the clip scale folded into the learning rate; in place when we `owned` the weights."""
    norm = _norms(grads)
    over = norm > clip_norm
    rate = np.full_like(norm, learning_rate)
    if over.any():
        rate[over] = learning_rate * (clip_norm / norm[over])
    for g, shape in zip(grads, ((-1, 1, 1), (-1, 1))):
        np.multiply(g, rate.reshape(shape), out=g)
    if not owned:  # the caller's initial weights: the first step makes our own copy
        return [w - g for w, g in zip(weights, grads)]
    for w, g in zip(weights, grads):
        np.subtract(w, g, out=w)
    return weights


_SGD_TYPE, _ONE_SPEC = type(build_sgdm()), [TensorSpec((1,), "float32")]


def plain_sgd_rate(optimizer: Optimizer) -> Any:
    """The learning rate when `optimizer` is fl_blocks' SGD without momentum, else None."""
    if type(optimizer) is not _SGD_TYPE:
        return None
    state = optimizer.initialize(_ONE_SPEC)
    return np.float32(state[LEARNING_RATE_KEY]) if list(state) == [LEARNING_RATE_KEY] else None


def train_chunk(chunk: Chunk, kernel: np.ndarray, bias: np.ndarray, optimizer: Optimizer, clip_norm: float) -> tuple[np.ndarray, np.ndarray]:
    """Trains a chunk's clients from `kernel` ``(clients, classes, dim)`` and `bias`; returns the trained pair."""
    count = len(chunk.clients)
    trained = [np.empty(kernel.shape, np.float32), np.empty(bias.shape, np.float32)]
    classes = np.arange(bias.shape[-1])[:, None]
    clip = np.float32(clip_norm)
    sgd_rate = plain_sgd_rate(optimizer)
    state, per_client = _state(optimizer, [kernel.shape[1:], bias.shape[1:]], count)
    weights = [kernel, bias]
    steps = chunk.steps
    first = steps[0][1] if steps else 0
    for out, w in zip(trained, weights):
        out[first:] = w[first:]  # clients without batches keep their weights
    weights, state = [w[:first] for w in weights], _prefix(state, per_client, first)
    for k, (start, active, width) in enumerate(steps):
        stop = start + active * width
        x = chunk.x[start:stop].reshape(active, width, -1)
        labels = chunk.labels[start:stop].reshape(active, width)
        denominators = chunk.denominators[start:stop].reshape(active, 1, width)
        grads = list(_gradients(weights[0], weights[1], x, labels, denominators, classes))
        if sgd_rate is not None:
            weights = _sgd_step(weights, grads, sgd_rate, clip, owned=k > 0)
        else:
            state, weights = optimizer.next(state, weights, _clip(grads, clip))
        following = steps[k + 1][1] if k + 1 < len(steps) else 0
        if following < active:
            for out, w in zip(trained, weights):
                out[following:active] = w[following:]
            weights, state = [w[:following] for w in weights], _prefix(state, per_client, following)
    return trained[0], trained[1]
