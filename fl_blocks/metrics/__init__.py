"""Metrics aggregation (TFF's ``tff.learning.metrics``) and the training metrics of a Keras-style model."""

from fl_blocks.metrics.aggregator import sum_then_finalize
from fl_blocks.metrics.model_metrics import (
    MetricSums,
    metric_finalizers,
    unfinalized_metrics,
)
from fl_blocks.metrics.sum_aggregation_factory import SumThenFinalizeFactory

__all__ = ["MetricSums", "SumThenFinalizeFactory", "metric_finalizers", "sum_then_finalize", "unfinalized_metrics"]
