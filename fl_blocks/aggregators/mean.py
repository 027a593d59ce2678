"""`MeanFactory`: the weighted mean over clients, as TFF computes it.

Each client's value is multiplied by its weight, values and weights are summed
by the inner sum processes, and the server divides. A zero total weight gives
NaN (0 with ``no_nan_division=True``), which the finalizer then rejects.

>>> import numpy as np
>>> from fl_blocks.specs import TensorSpec, spec_of
>>> process = MeanFactory().create(TensorSpec((1,), "float32"), TensorSpec((), "float32"))
>>> values = [np.array([1.0], np.float32), np.array([4.0], np.float32)]
>>> output = process.next(process.initialize(), values, [np.float32(2), np.float32(1)])
>>> output.result, dict(output.measurements)
(array([2.], dtype=float32), {'mean_value': (), 'mean_weight': ()})
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any, Optional, cast

import numpy as np
import optree

from fl_blocks.aggregators.sum_factory import SumFactory, check_client_values
from fl_blocks.placements import StackedClients, stack_client_values
from fl_blocks.specs import TensorSpec, spec_of
from fl_blocks.templates.aggregation_process import AggregationProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput

__all__ = ["MeanFactory", "client_weights_array"]


def client_weights_array(weights: Sequence[Any], dtype: Any = np.float32) -> np.ndarray:
    """Returns CLIENTS weights as a 1-D array; rejects an empty or negative one."""
    array = np.asarray(weights.stacked if isinstance(weights, StackedClients) else weights, dtype=dtype)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"expected one scalar weight per client, got weights of shape {array.shape}")
    if np.any(array < 0):
        bad = int(np.flatnonzero(array < 0)[0])
        raise ValueError(f"client {bad} has negative weight {array[bad]}; weights must be >= 0")
    return array


def _weighted_total(weights: np.ndarray, leaf: np.ndarray) -> np.ndarray:
    """``sum_c weights[c] * leaf[c]``, read in the leaf's memory order (no copy of a transposed stack)."""
    count, size = len(leaf), int(np.prod(leaf.shape[1:]))
    if leaf.flags.c_contiguous:
        return cast(np.ndarray, np.matmul(weights, leaf.reshape(count, size)).reshape(leaf.shape[1:]))
    order = sorted(range(1, leaf.ndim), key=lambda a: -leaf.strides[a])  # the per-client axes, outermost first
    ordered = leaf.transpose([0] + order)
    if not ordered.flags.c_contiguous:
        return cast(np.ndarray, np.tensordot(weights, leaf, axes=1))
    total = np.matmul(weights, ordered.reshape(count, size)).reshape(ordered.shape[1:])
    return np.ascontiguousarray(total.transpose(np.argsort(order)))


def _divide(total: np.ndarray, weight: np.ndarray, no_nan: bool) -> np.ndarray:
    weight = weight.astype(total.dtype)
    if no_nan and weight == 0:
        return np.zeros_like(total)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 is NaN, without a warning
        return cast(np.ndarray, total / weight)


class MeanFactory:
    """Builds a weighted-mean `AggregationProcess` (TFF's ``tff.aggregators.MeanFactory``).

    State is ``OrderedDict(value_sum_process, weight_sum_process)``;
    measurements are ``OrderedDict(mean_value, mean_weight)``, the inner sum
    processes' measurements.
    """

    def __init__(
        self,
        value_sum_factory: Optional[SumFactory] = None,
        weight_sum_factory: Optional[SumFactory] = None,
        no_nan_division: bool = False,
    ) -> None:
        self._value_sum_factory = value_sum_factory
        self._weight_sum_factory = weight_sum_factory
        self._no_nan_division = no_nan_division

    def create(self, value_spec: Any, weight_spec: Any = TensorSpec((), "float32")) -> AggregationProcess:
        """Returns the weighted-mean process for values of `value_spec`."""
        value_spec, weight_spec = spec_of(value_spec), spec_of(weight_spec)
        fused = self._value_sum_factory is None and self._weight_sum_factory is None
        value_sum = (self._value_sum_factory or SumFactory()).create(value_spec)
        weight_sum = (self._weight_sum_factory or SumFactory()).create(weight_spec)
        no_nan = self._no_nan_division

        def initialize_fn() -> collections.OrderedDict[str, tuple[()]]:
            return collections.OrderedDict(value_sum_process=value_sum.initialize(), weight_sum_process=weight_sum.initialize())

        def next_fn(state: collections.OrderedDict[str, Any], value: Sequence[Any], weight: Sequence[Any]) -> MeasuredProcessOutput:
            weights = client_weights_array(weight, weight_spec.dtype)
            check_client_values(value, value_spec, len(weights), "MeanFactory process")
            stacked = stack_client_values(value)
            if fused:
                value_state, weight_state = state["value_sum_process"], state["weight_sum_process"]
                value_measurements = weight_measurements = ()
                total = optree.tree_map(lambda leaf: _weighted_total(weights.astype(leaf.dtype), leaf), stacked)
                total_weight = weights.sum(dtype=weights.dtype)
            else:
                weighted = optree.tree_map(
                    lambda leaf: leaf * weights.astype(leaf.dtype).reshape((-1,) + (1,) * (leaf.ndim - 1)), stacked
                )
                value_state, total, value_measurements = value_sum.next(state["value_sum_process"], StackedClients(weighted))
                weight_state, total_weight, weight_measurements = weight_sum.next(state["weight_sum_process"], StackedClients(weights))
            mean = optree.tree_map(lambda leaf: _divide(leaf, np.asarray(total_weight), no_nan), total)
            new_state = collections.OrderedDict(value_sum_process=value_state, weight_sum_process=weight_state)
            measurements = collections.OrderedDict(mean_value=value_measurements, mean_weight=weight_measurements)
            return MeasuredProcessOutput(new_state, mean, measurements)

        return AggregationProcess(initialize_fn, next_fn, value_spec=value_spec, weight_spec=weight_spec)
