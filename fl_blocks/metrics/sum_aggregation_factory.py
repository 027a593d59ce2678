"""`SumThenFinalizeFactory`: metrics aggregation that also keeps totals over all rounds.

The process's state is ``(inner_summation_state, accumulated unfinalized
metrics)``; its result is ``(current_round_metrics, total_rounds_metrics)``,
both finalized (TFF's ``tff.learning.metrics.SumThenFinalizeFactory``).

>>> import numpy as np
>>> process = SumThenFinalizeFactory({"n": int}).create({"n": np.int64(0)})
>>> state = process.initialize()
>>> state, (current, total), _ = process.next(state, [{"n": np.int64(2)}, {"n": np.int64(3)}])
>>> state, (current, total), _ = process.next(state, [{"n": np.int64(1)}])
>>> current["n"], total["n"]
(1, 6)
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any, Optional, cast

import optree

from fl_blocks.metrics.aggregator import (
    MetricFinalizers,
    finalize_metrics,
    sum_unfinalized_metrics,
)
from fl_blocks.specs import spec_of, zeros_like_spec
from fl_blocks.templates.aggregation_process import AggregationProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput

__all__ = ["SumThenFinalizeFactory"]


class SumThenFinalizeFactory:
    """Sums client metrics (optionally by `inner_summation_factory`), accumulates them, finalizes both."""

    def __init__(
        self,
        metric_finalizers: MetricFinalizers,
        initial_unfinalized_metrics: Optional[collections.OrderedDict[str, Any]] = None,
        inner_summation_factory: Optional[Any] = None,
    ) -> None:
        self._metric_finalizers = metric_finalizers
        self._initial = initial_unfinalized_metrics
        self._inner = inner_summation_factory

    def create(self, local_unfinalized_metrics_spec: Any) -> AggregationProcess:
        """Returns the process for client metrics shaped as `local_unfinalized_metrics_spec`."""
        spec = spec_of(local_unfinalized_metrics_spec)
        inner = None if self._inner is None else self._inner.create(spec)
        initial = zeros_like_spec(spec) if self._initial is None else self._initial
        finalizers = self._metric_finalizers

        def initialize_fn() -> tuple[Any, Any]:
            return (() if inner is None else inner.initialize(), initial)

        def next_fn(state: tuple[Any, Any], unfinalized_metrics: Sequence[Any]) -> MeasuredProcessOutput:
            inner_state, accumulated = state
            if inner is None:
                summed, measurements = sum_unfinalized_metrics(unfinalized_metrics), ()
            else:
                inner_state, summed, measurements = inner.next(inner_state, unfinalized_metrics)
            accumulated = cast(Any, optree.tree_map(lambda total, new: total + new, accumulated, summed))
            result = (finalize_metrics(finalizers, summed), finalize_metrics(finalizers, accumulated))
            return MeasuredProcessOutput((inner_state, accumulated), result, measurements)

        return AggregationProcess(initialize_fn, next_fn, value_spec=spec)
