"""`IterativeProcess` and `MeasuredProcess`: a pair of plain functions.

An iterative process is ``initialize() -> state`` and
``next(state, ...) -> state``. A measured process's ``next`` returns a
`MeasuredProcessOutput(state, result, measurements)`. There is no tracing:
the functions are ordinary Python, so a debugger steps straight into them.

>>> counter = MeasuredProcess(
...     initialize_fn=lambda: 0,
...     next_fn=lambda state, x: MeasuredProcessOutput(state + 1, x * 2, {"calls": state + 1}),
... )
>>> counter.next(counter.initialize(), 21)
MeasuredProcessOutput(state=1, result=42, measurements={'calls': 1})
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

__all__ = ["IterativeProcess", "MeasuredProcess", "MeasuredProcessOutput"]


class MeasuredProcessOutput(NamedTuple):
    """What a `MeasuredProcess.next` returns (TFF's names)."""

    state: Any
    result: Any
    measurements: Any


class IterativeProcess:
    """A process built from ``initialize_fn() -> state`` and ``next_fn(state, ...)``."""

    def __init__(self, initialize_fn: Callable[[], Any], next_fn: Callable[..., Any]) -> None:
        if not callable(initialize_fn) or not callable(next_fn):
            raise TypeError(
                f"{type(self).__name__} needs callable initialize_fn and next_fn, got "
                f"{type(initialize_fn).__name__} and {type(next_fn).__name__}"
            )
        self._initialize_fn = initialize_fn
        self._next_fn = next_fn

    def initialize(self) -> Any:
        """Returns the initial state."""
        return self._initialize_fn()

    def next(self, state: Any, *args: Any) -> Any:
        """Runs one step from `state`."""
        return self._next_fn(state, *args)


class MeasuredProcess(IterativeProcess):
    """An `IterativeProcess` whose ``next`` returns a `MeasuredProcessOutput`."""

    role = "measured process"

    def next(self, state: Any, *args: Any) -> MeasuredProcessOutput:
        output = self._next_fn(state, *args)
        if not isinstance(output, MeasuredProcessOutput):
            raise TypeError(
                f"the {self.role}'s next_fn must return MeasuredProcessOutput(state, result, "
                f"measurements), got {type(output).__name__}"
            )
        return output


class HparamsMixin:
    """``get_hparams(state)`` and ``set_hparams(state, hparams)``, defaulting as TFF does."""

    _get_hparams_fn: Optional[Callable[[Any], Any]]
    _set_hparams_fn: Optional[Callable[[Any, Any], Any]]

    def get_hparams(self, state: Any) -> Any:
        """Returns the hyperparameters held in `state` (an empty dict by default)."""
        return {} if self._get_hparams_fn is None else self._get_hparams_fn(state)

    def set_hparams(self, state: Any, hparams: Any) -> Any:
        """Returns `state` with new hyperparameters (unchanged by default)."""
        return state if self._set_hparams_fn is None else self._set_hparams_fn(state, hparams)


class WeightsUpdateProcess(HparamsMixin, MeasuredProcess):
    """A measured process that reads model weights of `weights_spec` and makes or takes updates of `update_spec`."""

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
