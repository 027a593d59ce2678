"""`AggregationProcess`: combines a CLIENTS value into a SERVER value.

``next(state, value@CLIENTS[, weight@CLIENTS]) -> MeasuredProcessOutput(state,
result@SERVER, measurements)``. `value_spec` is the spec of one client's
value; `weight_spec` is ``None`` for an unweighted process.

>>> from fl_blocks.templates.measured_process import MeasuredProcessOutput
>>> maximum = AggregationProcess(lambda: (), lambda state, values: MeasuredProcessOutput(state, max(values), ()),
...                              value_spec=None)
>>> maximum.next(maximum.initialize(), [3, 7, 5]).result, maximum.is_weighted
(7, False)
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from fl_blocks.templates.measured_process import MeasuredProcess

__all__ = ["AggregationProcess"]


class AggregationProcess(MeasuredProcess):
    """A stateful aggregation of client values (TFF's ``tff.templates.AggregationProcess``)."""

    role = "aggregator"

    def __init__(
        self,
        initialize_fn: Callable[[], Any],
        next_fn: Callable[..., Any],
        *,
        value_spec: Any,
        weight_spec: Optional[Any] = None,
    ) -> None:
        super().__init__(initialize_fn, next_fn)
        self.value_spec = value_spec
        self.weight_spec = weight_spec

    @property
    def is_weighted(self) -> bool:
        """Whether ``next`` takes a weight per client."""
        return self.weight_spec is not None
