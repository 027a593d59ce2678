"""Aggregators: factories whose ``create`` builds an `AggregationProcess`."""

from fl_blocks.aggregators.mean import MeanFactory
from fl_blocks.aggregators.sum_factory import SumFactory

__all__ = ["MeanFactory", "SumFactory"]
