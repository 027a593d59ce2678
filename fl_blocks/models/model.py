"""The model protocol: what client work needs from a model.

A model holds no weights. It says how to make initial weights, what a batch
looks like, and computes the loss, its gradients and metrics for given
trainable weights. Every method broadcasts over a leading client axis: with a
kernel of shape ``(C, D, K)`` and ``x`` of shape ``(C, B, D)`` it computes
``C`` clients at once.

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> model = SoftmaxRegression(2, 2)
>>> isinstance(model, Model)
True
>>> evaluate(model, [np.eye(2, dtype=np.float32), np.zeros(2, np.float32)],
...          [(np.array([[3.0, 0.0]], np.float32), np.array([[0]]))])[1:]
(1.0, 1)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from fl_blocks.models.model_weights import ModelWeights

__all__ = ["Model", "evaluate"]


@runtime_checkable
class Model(Protocol):
    """What `fl_blocks` client work and evaluation call on a model."""

    input_spec: Any

    def initial_weights(self) -> ModelWeights:
        """Returns freshly initialized weights."""

    def check_batch(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(x, labels)`` for a valid batch; raises a clear error otherwise."""

    def loss_and_gradients(self, trainable: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """Returns the mean batch loss and its gradients w.r.t. `trainable`."""

    def batch_metrics(self, trainable: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        """Returns ``(loss_sum, num_correct, num_examples)`` for a batch."""


def evaluate(model: Model, trainable: Any, batches: Any) -> tuple[float, float, int]:
    """Returns ``(mean loss, accuracy, num_examples)`` of `trainable` over `batches` of ``(x, y)``."""
    loss_sum = 0.0
    correct = count = 0
    for x, y in batches:
        x, y = model.check_batch(x, y)
        batch_loss, batch_correct, batch_count = model.batch_metrics(trainable, x, y)
        loss_sum += float(batch_loss)
        correct += int(batch_correct)
        count += int(batch_count)
    if count == 0:
        return float("nan"), float("nan"), 0
    return loss_sum / count, correct / count, count
