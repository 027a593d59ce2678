"""Models: `ModelWeights`, the `Model` protocol and `SoftmaxRegression`."""

from fl_blocks.models.model import Model
from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.models.softmax import SoftmaxRegression

__all__ = ["Model", "ModelWeights", "SoftmaxRegression"]
