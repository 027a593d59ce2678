"""`UnweightedMeanFactory` and `as_weighted_aggregator`, as TFF computes them.

The unweighted mean sums the client values (inner value-sum process) and the
number of clients (inner count-sum process over an int32 one per client),
then divides: ``sum_i(value_i) / count``. State is ``(value_sum_state,
count_sum_state)``; measurements ``OrderedDict(mean_value, mean_count)``.
`as_weighted_aggregator` wraps an unweighted factory so it takes, and
ignores, a weight per client.

>>> import numpy as np
>>> process = UnweightedMeanFactory().create(TensorSpec((2,), "float32"))
>>> output = process.next(process.initialize(), [np.array([1.0, 2.0], np.float32), np.array([3.0, 6.0], np.float32)])
>>> output.result, dict(output.measurements), output.state
(array([2., 4.], dtype=float32), {'mean_value': (), 'mean_count': ()}, ((), ()))
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import optree

from fl_blocks.aggregators.sum_factory import SumFactory
from fl_blocks.placements import StackedClients
from fl_blocks.specs import TensorSpec, spec_of
from fl_blocks.templates.aggregation_process import AggregationProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput

__all__ = ["UnweightedMeanFactory", "as_weighted_aggregator"]

_COUNT_SPEC = TensorSpec((), "int32")


def _check_float_spec(value_spec: Any) -> None:
    leaves = optree.tree_leaves(value_spec)
    bad = [leaf for leaf in leaves if not np.issubdtype(np.dtype(leaf.dtype), np.floating)]
    if bad:
        raise TypeError(
            f"UnweightedMeanFactory averages floating values only, got {', '.join(str(b) for b in bad)}; "
            "cast integer values to float32 first"
        )


def _check_unweighted_factory(factory: Any, name: str) -> Any:
    if not callable(getattr(factory, "create", None)):
        raise TypeError(f"{name} must be an unweighted aggregation factory such as SumFactory(), got {type(factory).__name__}")
    return factory


class UnweightedMeanFactory:
    """Builds an unweighted-mean `AggregationProcess` (TFF's ``tff.aggregators.UnweightedMeanFactory``)."""

    def __init__(self, value_sum_factory: Optional[Any] = None, count_sum_factory: Optional[Any] = None) -> None:
        self._value_sum_factory = _check_unweighted_factory(value_sum_factory or SumFactory(), "value_sum_factory")
        self._count_sum_factory = _check_unweighted_factory(count_sum_factory or SumFactory(), "count_sum_factory")

    def create(self, value_spec: Any) -> AggregationProcess:
        """Returns the unweighted-mean process for values of `value_spec`."""
        value_spec = spec_of(value_spec)
        _check_float_spec(value_spec)
        value_sum = self._value_sum_factory.create(value_spec)
        count_sum = self._count_sum_factory.create(_COUNT_SPEC)

        def initialize_fn() -> tuple[Any, Any]:
            return (value_sum.initialize(), count_sum.initialize())

        def next_fn(state: tuple[Any, Any], value: Sequence[Any]) -> MeasuredProcessOutput:
            value_state, count_state = state
            value_output = value_sum.next(value_state, value)
            count_output = count_sum.next(count_state, StackedClients(np.ones(len(value), np.int32)))
            count = count_output.result
            mean = optree.tree_map(lambda total: total / np.asarray(count, total.dtype), value_output.result)
            measurements = collections.OrderedDict(mean_value=value_output.measurements, mean_count=count_output.measurements)
            return MeasuredProcessOutput((value_output.state, count_output.state), mean, measurements)

        return AggregationProcess(initialize_fn, next_fn, value_spec=value_spec)


class _UnweightedAsWeightedFactory:
    """A weighted factory whose processes ignore the weights."""

    def __init__(self, unweighted_factory: Any) -> None:
        self._factory = _check_unweighted_factory(unweighted_factory, "unweighted_aggregator")

    def create(self, value_spec: Any, weight_spec: Any = TensorSpec((), "float32")) -> AggregationProcess:
        """Returns a process with ``next(state, value, weight)`` that drops `weight`."""
        process = self._factory.create(value_spec)
        if process.is_weighted:
            raise TypeError("as_weighted_aggregator needs an unweighted factory (create(value_spec)), got a weighted one")

        def next_fn(state: Any, value: Sequence[Any], weight: Sequence[Any]) -> MeasuredProcessOutput:
            del weight  # unused, as in TFF
            output: MeasuredProcessOutput = process.next(state, value)
            return output

        return AggregationProcess(process.initialize, next_fn, value_spec=process.value_spec, weight_spec=spec_of(weight_spec))


def as_weighted_aggregator(unweighted_aggregator: Any) -> _UnweightedAsWeightedFactory:
    """Wraps an unweighted factory as a weighted one that ignores the weights (TFF's name)."""
    return _UnweightedAsWeightedFactory(unweighted_aggregator)
