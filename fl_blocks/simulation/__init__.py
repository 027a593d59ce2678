"""Simulation helpers: federated data sets (TFF's ``tff.simulation``)."""

from fl_blocks.simulation import datasets

__all__ = ["datasets"]
