"""Aggregators: factories whose ``create`` builds an `AggregationProcess`."""

from fl_blocks.aggregators.mean import MeanFactory
from fl_blocks.aggregators.sum_factory import SumFactory
from fl_blocks.aggregators.unweighted_mean import UnweightedMeanFactory, as_weighted_aggregator

__all__ = ["MeanFactory", "SumFactory", "UnweightedMeanFactory", "as_weighted_aggregator"]
