"""fl_blocks: TensorFlow Federated's composable learning building blocks in NumPy."""

from fl_blocks import aggregators, algorithms, models, optimizers, templates
from fl_blocks.models import ModelWeights
from fl_blocks.specs import TensorSpec

__version__ = "0.1.0"
__all__ = ["ModelWeights", "TensorSpec", "aggregators", "algorithms", "models", "optimizers", "templates"]
