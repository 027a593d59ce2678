"""`DistributionProcess` and `build_broadcast_process`.

>>> import numpy as np
>>> from fl_blocks.models import ModelWeights
>>> from fl_blocks.specs import spec_of
>>> weights = ModelWeights([np.ones(2, np.float32)], [])
>>> broadcast = build_broadcast_process(spec_of(weights))
>>> output = broadcast.next(broadcast.initialize(), weights)
>>> output.result[3] is weights, output.measurements
(True, ())
"""

from __future__ import annotations

from typing import Any, Callable

from fl_blocks.placements import AllEqual
from fl_blocks.specs import spec_of
from fl_blocks.templates.measured_process import MeasuredProcess, MeasuredProcessOutput

__all__ = ["DistributionProcess", "build_broadcast_process"]


class DistributionProcess(MeasuredProcess):
    """Sends a SERVER value to the clients.

    ``next(state, value) -> MeasuredProcessOutput(state, result@CLIENTS, measurements)``.
    `value_spec` is the spec tree of the value it distributes.
    """

    role = "distributor"

    def __init__(self, initialize_fn: Callable[[], Any], next_fn: Callable[..., Any], *, value_spec: Any) -> None:
        super().__init__(initialize_fn, next_fn)
        self.value_spec = value_spec


def build_broadcast_process(model_weights_spec: Any) -> DistributionProcess:
    """A stateless distributor that sends the same value to every client.

    Its state and measurements are ``()``; its result is an `AllEqual` value.
    """

    def initialize_fn() -> tuple[()]:
        return ()

    def next_fn(state: tuple[()], value: Any) -> MeasuredProcessOutput:
        return MeasuredProcessOutput(state, AllEqual(value), ())

    return DistributionProcess(initialize_fn, next_fn, value_spec=spec_of(model_weights_spec))
