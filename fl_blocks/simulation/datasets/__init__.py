"""Federated data sets: `ClientData`, the tf.data-like `Dataset`, and loaders."""

from fl_blocks.simulation.datasets import emnist, leaf, synthetic
from fl_blocks.simulation.datasets.client_data import ClientData
from fl_blocks.simulation.datasets.dataset import Dataset

__all__ = ["ClientData", "Dataset", "emnist", "leaf", "synthetic"]
