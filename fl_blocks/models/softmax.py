"""`SoftmaxRegression`: Keras ``Dense(num_classes) + Softmax`` in NumPy.

Trainable weights are ``[kernel (input_dim, num_classes), bias (num_classes,)]``
as Keras lays them out. The loss is the mean sparse categorical cross-entropy
exactly as TFF's ``from_keras_model`` computes it for a Softmax output: from
the softmax probabilities (computed stably from the logits) clipped to
``[1e-7, 1 - 1e-7]``, as Keras' backend does, so one example's loss is at
most about 16.1. Without clipping this is the usual ``-log softmax(z)[y]``.

>>> import numpy as np
>>> model = SoftmaxRegression(input_dim=4, num_classes=3, seed=0)
>>> weights = model.initial_weights()
>>> x, y = model.check_batch(np.ones((2, 4), np.float32), np.array([[0], [2]]))
>>> loss, grads = model.loss_and_gradients(weights.trainable, x, y)
>>> [g.shape for g in grads]
[(4, 3), (3,)]
"""

from __future__ import annotations

import operator
from typing import Any, cast

import numpy as np

from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.specs import TensorSpec

__all__ = ["SoftmaxRegression", "glorot_normal", "KERAS_EPSILON"]

KERAS_EPSILON = 1e-7  # tf.keras.backend.epsilon(): Keras clips probabilities to [eps, 1 - eps]


def glorot_normal(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Keras' GlorotNormal: truncated (±2σ) normal with variance 2 / (fan_in + fan_out)."""
    fan_in, fan_out = shape
    # Keras divides by the std of a unit normal truncated at ±2 so the kept values have the target std.
    stddev: float = np.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return (values * stddev).astype(np.float32)


class SoftmaxRegression:
    """Softmax regression ``p = softmax(x @ kernel + bias)``; weights may carry a leading client axis."""

    def __init__(self, input_dim: int = 784, num_classes: int = 10, seed: int = 0) -> None:
        input_dim, num_classes = operator.index(input_dim), operator.index(num_classes)
        if input_dim < 1 or num_classes < 2:
            raise ValueError(f"need input_dim >= 1 and num_classes >= 2, got {input_dim} and {num_classes}")
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.seed = seed
        self.input_spec = (TensorSpec((-1, input_dim), "float32"), TensorSpec((-1, 1), "int32"))

    def __repr__(self) -> str:
        return f"SoftmaxRegression(input_dim={self.input_dim}, num_classes={self.num_classes}, seed={self.seed})"

    def initial_weights(self) -> ModelWeights:
        """Glorot-normal kernel from a seeded generator, zero bias."""
        rng = np.random.default_rng(self.seed)
        kernel = glorot_normal((self.input_dim, self.num_classes), rng)
        return ModelWeights(trainable=[kernel, np.zeros(self.num_classes, np.float32)], non_trainable=[])

    def check_batch(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(x [B, D], labels [B])`` for one client's batch; raises a clear error on a bad one."""
        x = np.asarray(x)
        y = np.asarray(y)
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[-1] != self.input_dim:
            raise ValueError(
                f"batch x must be float32 [B, {self.input_dim}], got {x.dtype}{list(x.shape)}; "
                f"reshape pixels with x.reshape(-1, {self.input_dim}).astype(np.float32)"
            )
        if y.ndim == x.ndim and y.shape[-1] == 1:
            y = y[..., 0]
        if not np.issubdtype(y.dtype, np.integer) or y.shape != x.shape[:-1]:
            raise ValueError(f"batch y must be integer [B] or [B, 1] matching x {list(x.shape)}, got {y.dtype}{list(y.shape)}")
        if y.size and (y.min() < 0 or y.max() >= self.num_classes):
            bad = y[(y < 0) | (y >= self.num_classes)].flat[0]
            raise ValueError(f"label {bad} is outside [0, {self.num_classes}); check the model's num_classes")
        return x, y

    def logits(self, trainable: Any, x: np.ndarray) -> np.ndarray:
        """Returns ``x @ kernel + bias`` with shape ``[..., B, num_classes]``."""
        kernel, bias = trainable
        return cast(np.ndarray, np.matmul(x, kernel) + bias[..., None, :])

    def _loss_terms(self, trainable: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-example Keras losses and the pieces their gradient needs."""
        logits = self.logits(trainable, x)
        exps = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = exps / exps.sum(axis=-1, keepdims=True)
        eps = np.asarray(KERAS_EPSILON, probs.dtype)
        inside = probs.min() >= eps and probs.max() <= 1 - eps
        clipped = probs if inside else np.clip(probs, eps, 1 - eps)
        onehot = y[..., None] == np.arange(self.num_classes)
        total = clipped.sum(axis=-1, keepdims=True)
        losses = np.log(total[..., 0]) - np.log((clipped * onehot).sum(axis=-1))
        return logits, probs, onehot, total, losses, inside

    def loss_and_gradients(self, trainable: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, list[np.ndarray]]:
        """Mean Keras cross-entropy over the batch and its closed-form gradients ``[dkernel, dbias]``."""
        return self._loss_and_gradients(x, *self._loss_terms(trainable, x, y)[1:])

    def loss_gradients_and_correct(self, trainable: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, list[np.ndarray], Any]:
        """One forward pass: the mean batch loss, its gradients and the number of correct predictions."""
        terms = self._loss_terms(trainable, x, y)
        loss, gradients = self._loss_and_gradients(x, *terms[1:])
        return loss, gradients, (terms[0].argmax(axis=-1) == y).sum(axis=-1)

    def _loss_and_gradients(
        self, x: np.ndarray, probs: np.ndarray, onehot: np.ndarray, total: np.ndarray, losses: np.ndarray, inside: Any
    ) -> tuple[Any, list[np.ndarray]]:
        # d loss / d logit: through log(clipped / total), the clip (no gradient outside it), then the softmax.
        through_clip = probs / total - onehot
        if not inside:
            eps = np.asarray(KERAS_EPSILON, probs.dtype)
            through_clip = np.where((probs >= eps) & (probs <= 1 - eps), through_clip, 0)
            through_clip = through_clip - probs * through_clip.sum(axis=-1, keepdims=True)
        dlogits = through_clip / np.asarray(x.shape[-2], probs.dtype)
        return losses.mean(axis=-1), [np.matmul(np.swapaxes(x, -1, -2), dlogits), dlogits.sum(axis=-2)]

    def batch_metrics(self, trainable: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, int]:
        """Returns ``(loss_sum, num_correct, num_examples)`` for one batch."""
        logits, _, _, _, losses, _ = self._loss_terms(trainable, x, y)
        correct = (logits.argmax(axis=-1) == y).sum(axis=-1)
        return losses.sum(axis=-1), correct, x.shape[-2]
