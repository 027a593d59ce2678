"""`SumFactory`: the plain sum over clients.

>>> import numpy as np
>>> from fl_blocks.specs import TensorSpec
>>> process = SumFactory().create(TensorSpec((2,), "float32"))
>>> process.next(process.initialize(), [np.ones(2, np.float32), np.ones(2, np.float32)]).result
array([2., 2.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optree

from fl_blocks.placements import stack_client_values
from fl_blocks.templates.aggregation_process import AggregationProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput

__all__ = ["SumFactory", "sum_over_clients"]


def sum_over_clients(values: Sequence) -> Any:
    """Sums a non-empty CLIENTS value leaf by leaf, keeping each leaf's dtype."""
    stacked = stack_client_values(values)
    return optree.tree_map(lambda leaf: leaf.sum(axis=0, dtype=leaf.dtype), stacked)


class SumFactory:
    """Builds an unweighted `AggregationProcess` that sums; state and measurements are ``()``."""

    def create(self, value_spec: Any) -> AggregationProcess:
        """Returns the sum process for values of `value_spec`."""

        def initialize_fn() -> tuple:
            return ()

        def next_fn(state: tuple, value: Sequence) -> MeasuredProcessOutput:
            return MeasuredProcessOutput(state, sum_over_clients(value), ())

        return AggregationProcess(initialize_fn, next_fn, value_spec=value_spec)
