"""A client's batches as ``(x, labels)`` arrays, checked with errors that name the client and batch.

`iterate_batches` checks every batch with ``model.check_batch`` (the per-client
loop). `checked_batch_list` does the same structural checks with plain attribute
tests on the common case and leaves label ranges to one vectorized
`check_label_range` over many batches.

>>> import numpy as np
>>> from fl_blocks.models import SoftmaxRegression
>>> batches = [(np.zeros((2, 3), np.float32), np.array([[0], [1]]))]
>>> [(x.shape, y.tolist()) for x, y in iterate_batches(SoftmaxRegression(3, 2), batches, 0)]
[((2, 3), [0, 1])]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fl_blocks.models.model import Model

__all__ = ["unpack_batch", "iterate_batches", "checked_batch_list", "check_label_range"]


def unpack_batch(batch: Any) -> tuple[Any, Any]:
    """``(x, y)`` of a batch given as a pair or as a dict with keys ``'x'`` and ``'y'``."""
    if isinstance(batch, Mapping):
        if "x" in batch and "y" in batch:
            return batch["x"], batch["y"]
        raise ValueError(
            f"expected a batch (x, y) or a dict with keys 'x' and 'y', got a dict with keys {list(batch)}; "
            "map batches to (x, y) as the tutorial's batch_format_fn does"
        )
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(
        f"expected a batch (x, y), got {type(batch).__name__}; a client's dataset must yield (x, y) batches, "
        "so wrap a single batch in a list"
    )


def _iterator(dataset: Any, client_index: int) -> Iterator[Any]:
    try:
        iterator: Iterator[Any] = iter(dataset)
    except TypeError:
        raise TypeError(f"client {client_index}: a dataset must be an iterable of (x, y) batches, got {type(dataset).__name__}") from None
    if iterator is dataset:
        raise TypeError(
            f"client {client_index}: the dataset is a one-shot iterator ({type(dataset).__name__}), which a second "
            "round would find empty; pass a re-iterable such as a list of batches or a Dataset"
        )
    return iterator


def _check(model: Model, batch: Any, client_index: int, batch_index: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        x, y = model.check_batch(*unpack_batch(batch))
    except (ValueError, TypeError) as error:
        raise ValueError(f"client {client_index}, batch {batch_index}: {error}") from None
    if len(y) == 0:
        raise ValueError(f"client {client_index}, batch {batch_index}: the batch has no examples; drop empty batches")
    return x, y


def iterate_batches(model: Model, dataset: Any, client_index: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields checked ``(x, y)`` batches; a bad dataset or batch raises naming the client and batch."""
    for batch_index, batch in enumerate(_iterator(dataset, client_index)):
        yield _check(model, batch, client_index, batch_index)


def _fast(batch: Any, input_dim: int) -> Any:
    """``(x, labels [B])`` when the batch is plainly valid in structure, else None (labels unchecked)."""
    if type(batch) is tuple and len(batch) == 2:
        x, y = batch
    elif isinstance(batch, Mapping) and "x" in batch and "y" in batch:
        x, y = batch["x"], batch["y"]
    else:
        return None
    if type(x) is not np.ndarray or type(y) is not np.ndarray or x.dtype != np.float32 or x.ndim != 2:
        return None
    n = x.shape[0]
    if x.shape[1] != input_dim or n == 0 or y.dtype.kind not in "iu" or not (y.shape == (n,) or y.shape == (n, 1)):
        return None
    return x, y.reshape(n)


def checked_batch_list(model: Model, input_dim: int, dataset: Any, client_index: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """All of a client's batches as ``(x, labels [B])``, structure checked; call `check_label_range` after."""
    batches = []
    for batch_index, batch in enumerate(_iterator(dataset, client_index)):
        checked = _fast(batch, input_dim)
        batches.append(checked if checked is not None else _check(model, batch, client_index, batch_index))
    return batches


def check_label_range(model: Model, labels: np.ndarray, num_classes: int, batches: Sequence[tuple[int, Sequence[Any]]]) -> None:
    """Raises ``model.check_batch``'s error for the first bad batch when any label is outside ``[0, num_classes)``.

    `labels` holds every label of `batches`, a sequence of ``(client_index, batch list)``.
    """
    if labels.size == 0 or (labels.min() >= 0 and labels.max() < num_classes):
        return
    for client_index, client_batches in batches:
        for batch_index, batch in enumerate(client_batches):
            _check(model, batch, client_index, batch_index)
