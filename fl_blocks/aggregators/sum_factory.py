"""`SumFactory`: the plain sum over clients.

>>> import numpy as np
>>> from fl_blocks.specs import TensorSpec
>>> process = SumFactory().create(TensorSpec((2,), "float32"))
>>> process.next(process.initialize(), [np.ones(2, np.float32), np.ones(2, np.float32)]).result
array([2., 2.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import optree

from fl_blocks.placements import stack_client_values
from fl_blocks.specs import check_same_spec, spec_of
from fl_blocks.templates.aggregation_process import AggregationProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput

__all__ = ["SumFactory", "sum_over_clients"]


def check_client_values(values: Sequence[Any], value_spec: Any, expected_count: Optional[int], consumer: str) -> None:
    """Checks a CLIENTS value's count and its first client's spec against `value_spec`."""
    if len(values) == 0:
        raise ValueError(f"{consumer} got no client values: a round needs at least one client")
    if expected_count is not None and len(values) != expected_count:
        raise ValueError(f"{consumer} got {len(values)} client values but {expected_count} weights")
    check_same_spec(value_spec, spec_of(values[0]), consumer=consumer, producer="client 0's value")


def sum_over_clients(values: Sequence[Any]) -> Any:
    """Sums a non-empty CLIENTS value leaf by leaf, keeping each leaf's dtype."""
    stacked = stack_client_values(values)
    return optree.tree_map(lambda leaf: leaf.sum(axis=0, dtype=leaf.dtype), stacked)


class SumFactory:
    """Builds an unweighted `AggregationProcess` that sums; state and measurements are ``()``."""

    def create(self, value_spec: Any) -> AggregationProcess:
        """Returns the sum process for values of `value_spec`."""
        value_spec = spec_of(value_spec)

        def initialize_fn() -> tuple[()]:
            return ()

        def next_fn(state: tuple[()], value: Sequence[Any]) -> MeasuredProcessOutput:
            check_client_values(value, value_spec, None, "SumFactory process")
            return MeasuredProcessOutput(state, sum_over_clients(value), ())

        return AggregationProcess(initialize_fn, next_fn, value_spec=value_spec)
