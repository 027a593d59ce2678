"""The metrics TFF's ``from_keras_model`` reports for a classifier, unfinalized and finalized.

A client reports *unfinalized* metrics, which sum across clients; finalizing
turns the sums into values. Keys and order as TFF 0.87 with
``metrics=[SparseCategoricalAccuracy()]``::

    sparse_categorical_accuracy  [num_correct, num_examples]  float32 -> correct / examples
    loss                         [sum_b n_b * loss_b, sum_b n_b]  float32 -> their ratio
    num_examples, num_batches    int64 counts                     -> themselves

A ratio over zero examples finalizes to 0.0 (Keras' ``divide_no_nan``).

>>> sums = MetricSums(loss_sum=3.0, num_correct=1, num_examples=4, num_batches=2)
>>> finalizers = metric_finalizers()
>>> {name: finalize(value) for (name, finalize), value in zip(finalizers.items(), unfinalized_metrics(sums).values())}
{'sparse_categorical_accuracy': np.float32(0.25), 'loss': np.float32(0.75), 'num_examples': np.int64(4), 'num_batches': np.int64(2)}
"""

from __future__ import annotations

import collections
from typing import Any, Callable, NamedTuple

import numpy as np

__all__ = ["MetricSums", "metric_finalizers", "unfinalized_metrics"]


class MetricSums(NamedTuple):
    """One client's running metric sums; ``MetricSums()`` is the reset state."""

    loss_sum: float = 0.0
    num_correct: int = 0
    num_examples: int = 0
    num_batches: int = 0

    def add_batch(self, batch_loss: Any, num_correct: Any, num_examples: int) -> "MetricSums":
        """Returns the sums after one more batch of mean loss `batch_loss`."""
        return MetricSums(
            self.loss_sum + float(batch_loss) * num_examples,
            self.num_correct + int(num_correct),
            self.num_examples + num_examples,
            self.num_batches + 1,
        )


def unfinalized_metrics(sums: MetricSums) -> collections.OrderedDict[str, Any]:
    """A client's unfinalized metrics (TFF's ``report_local_unfinalized_metrics``)."""
    return collections.OrderedDict(
        sparse_categorical_accuracy=np.array([sums.num_correct, sums.num_examples], np.float32),
        loss=np.array([sums.loss_sum, sums.num_examples], np.float32),
        num_examples=np.int64(sums.num_examples),
        num_batches=np.int64(sums.num_batches),
    )


def _ratio(value: np.ndarray) -> np.float32:
    total, count = value
    return np.float32(total / count) if count else np.float32(0.0)


def _count(value: Any) -> np.int64:
    return np.int64(value)


def metric_finalizers() -> collections.OrderedDict[str, Callable[[Any], Any]]:
    """Metric name -> finalizer of its summed unfinalized value (TFF's ``metric_finalizers``)."""
    return collections.OrderedDict(
        sparse_categorical_accuracy=_ratio, loss=_ratio, num_examples=_count, num_batches=_count
    )
