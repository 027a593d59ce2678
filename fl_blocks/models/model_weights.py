"""`ModelWeights(trainable, non_trainable)`, TFF's container of model weights.

>>> import numpy as np
>>> weights = ModelWeights(trainable=[np.zeros((2, 3), np.float32), np.zeros(3, np.float32)], non_trainable=[])
>>> [w.shape for w in weights.trainable]
[(2, 3), (3,)]
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["ModelWeights"]


class ModelWeights(NamedTuple):
    """A model's trainable and non-trainable weights, each a list of arrays."""

    trainable: Any
    non_trainable: Any
