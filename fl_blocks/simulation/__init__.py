"""Simulation helpers: federated data sets and client sampling (TFF's ``tff.simulation``)."""

from fl_blocks.simulation import datasets
from fl_blocks.simulation.sampling import build_uniform_sampling_fn

__all__ = ["build_uniform_sampling_fn", "datasets"]
