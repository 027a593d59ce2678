"""`ClientWorkProcess` and `ClientResult`.

A client work's ``next(state, weights@CLIENTS, client_data@CLIENTS)`` returns
a CLIENTS value of `ClientResult(update, update_weight)`: a list with one
result per client, or a `StackedClients` of one `ClientResult` whose leaves
carry a leading client axis.

>>> result = ClientResult(update=[1.0], update_weight=3.0)
>>> result.update_weight
3.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from fl_blocks.placements import StackedClients
from fl_blocks.specs import TensorSpec
from fl_blocks.templates.measured_process import WeightsUpdateProcess

__all__ = ["ClientResult", "ClientWorkProcess", "unzip_client_results"]


class ClientResult(NamedTuple):
    """One client's contribution: a model `update` and its aggregation weight."""

    update: Any
    update_weight: Any


class ClientWorkProcess(WeightsUpdateProcess):
    """Local work at the clients.

    ``next(state, weights, client_data) -> MeasuredProcessOutput(state,
    result=ClientResult@CLIENTS, measurements)``. `weights_spec` is the model
    weights spec it trains from; `update_spec` the spec of one client's update.
    """

    role = "client work"
    #: The spec of each client's ``update_weight``; set it on the instance for another weight type.
    update_weight_spec: Any = TensorSpec((), "float32")


def unzip_client_results(results: Sequence[ClientResult]) -> tuple[Sequence[Any], Sequence[Any]]:
    """Splits CLIENTS `ClientResult`s into CLIENTS updates and CLIENTS weights."""
    if isinstance(results, StackedClients):
        stacked = results.stacked
        return StackedClients(stacked.update), StackedClients(stacked.update_weight)
    return [r.update for r in results], [r.update_weight for r in results]
