"""Federated data sets: `ClientData`, the tf.data-like `Dataset`, and loaders."""

from fl_blocks.simulation.datasets import emnist, leaf, synthetic
from fl_blocks.simulation.datasets import partitioners, tfds_emnist
from fl_blocks.simulation.datasets.array_plan import ArrayPlan
from fl_blocks.simulation.datasets.client_data import ClientData, UnknownClientError, pixels_to_float32
from fl_blocks.simulation.datasets.dataset import INFINITE_CARDINALITY, Dataset

__all__ = ["ArrayPlan", "ClientData", "Dataset", "INFINITE_CARDINALITY", "UnknownClientError", "pixels_to_float32", "emnist", "leaf", "synthetic"]
