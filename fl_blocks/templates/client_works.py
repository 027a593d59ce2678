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
from typing import Any, Callable, NamedTuple, Optional

from fl_blocks.placements import StackedClients
from fl_blocks.templates.measured_process import HparamsMixin, MeasuredProcess

__all__ = ["ClientResult", "ClientWorkProcess", "unzip_client_results"]


class ClientResult(NamedTuple):
    """One client's contribution: a model `update` and its aggregation weight."""

    update: Any
    update_weight: Any


class ClientWorkProcess(HparamsMixin, MeasuredProcess):
    """Local work at the clients.

    ``next(state, weights, client_data) -> MeasuredProcessOutput(state,
    result=ClientResult@CLIENTS, measurements)``. `weights_spec` is the model
    weights spec it trains from; `update_spec` the spec of one client's update.
    """

    role = "client work"

    def __init__(
        self,
        initialize_fn: Callable[[], Any],
        next_fn: Callable[..., Any],
        *,
        weights_spec: Any,
        update_spec: Any,
        get_hparams_fn: Optional[Callable[[Any], Any]] = None,
        set_hparams_fn: Optional[Callable[[Any, Any], Any]] = None,
    ) -> None:
        super().__init__(initialize_fn, next_fn)
        self.weights_spec = weights_spec
        self.update_spec = update_spec
        self._get_hparams_fn = get_hparams_fn
        self._set_hparams_fn = set_hparams_fn


def unzip_client_results(results: Sequence) -> tuple[Sequence, Sequence]:
    """Splits CLIENTS `ClientResult`s into CLIENTS updates and CLIENTS weights."""
    if isinstance(results, StackedClients):
        stacked = results.stacked
        return StackedClients(stacked.update), StackedClients(stacked.update_weight)
    return [r.update for r in results], [r.update_weight for r in results]
