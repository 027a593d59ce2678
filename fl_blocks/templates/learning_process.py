"""`LearningProcess`, `LearningProcessOutput` and `LearningAlgorithmState`.

A learning process is an iterative process over a `LearningAlgorithmState`:
``next(state, client_data) -> LearningProcessOutput(state, metrics)``, plus
access to the global model weights inside the state.

>>> process = LearningProcess(
...     initialize_fn=lambda: LearningAlgorithmState(0.0, (), (), (), ()),
...     next_fn=lambda state, data: LearningProcessOutput(
...         state._replace(global_model_weights=state.global_model_weights + len(data)), {}),
...     get_model_weights=lambda state: state.global_model_weights,
...     set_model_weights=lambda state, w: state._replace(global_model_weights=w))
>>> process.get_model_weights(process.next(process.initialize(), ["a", "b"]).state)
2.0
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, cast

from fl_blocks.specs import check_same_spec, spec_of
from fl_blocks.templates.measured_process import HparamsMixin, IterativeProcess

__all__ = ["LearningAlgorithmState", "LearningProcess", "LearningProcessOutput"]


class LearningAlgorithmState(NamedTuple):
    """The state of a composed learning algorithm (TFF's names)."""

    global_model_weights: Any
    distributor: Any
    client_work: Any
    aggregator: Any
    finalizer: Any


class LearningProcessOutput(NamedTuple):
    """What `LearningProcess.next` returns."""

    state: Any
    metrics: Any


class LearningProcess(HparamsMixin, IterativeProcess):
    """An iterative learning algorithm with access to its global model weights."""

    def __init__(
        self,
        initialize_fn: Callable[[], Any],
        next_fn: Callable[[Any, Any], LearningProcessOutput],
        get_model_weights: Callable[[Any], Any],
        set_model_weights: Callable[[Any, Any], Any],
        *,
        get_hparams_fn: Optional[Callable[[Any], Any]] = None,
        set_hparams_fn: Optional[Callable[[Any, Any], Any]] = None,
    ) -> None:
        super().__init__(initialize_fn, next_fn)
        self._get_model_weights = get_model_weights
        self._set_model_weights = set_model_weights
        self._get_hparams_fn = get_hparams_fn
        self._set_hparams_fn = set_hparams_fn

    def next(self, state: Any, client_data: Any) -> LearningProcessOutput:
        """Runs one round on `client_data`, a sequence with one dataset per client."""
        try:
            count = len(client_data)
        except TypeError:
            raise TypeError(
                f"client_data must be a sequence with one dataset per client, got {type(client_data).__name__}"
            ) from None
        if count == 0:
            raise ValueError("client_data is empty: a round needs at least one client")
        return cast(LearningProcessOutput, self._next_fn(state, client_data))

    def get_model_weights(self, state: Any) -> Any:
        """Returns the global model weights held in `state`."""
        return self._get_model_weights(state)

    def set_model_weights(self, state: Any, model_weights: Any) -> Any:
        """Returns `state` with only its global model weights replaced."""
        check_same_spec(
            spec_of(self._get_model_weights(state)), spec_of(model_weights),
            consumer="set_model_weights", producer="the given model_weights",
        )
        return self._set_model_weights(state, model_weights)
