"""`FinalizerProcess` and `build_apply_optimizer_finalizer`.

The finalizer applies the aggregated update to the global weights at the
server: ``optimizer.next(state, weights.trainable, update)``. By default an
update holding NaN or Inf is rejected: the previous state and weights are kept
and ``update_non_finite`` is measured as 1.

>>> import numpy as np
>>> from fl_blocks.models import ModelWeights
>>> from fl_blocks.optimizers import build_sgdm
>>> from fl_blocks.specs import spec_of
>>> weights = ModelWeights([np.ones(2, np.float32)], [])
>>> finalizer = build_apply_optimizer_finalizer(build_sgdm(1.0), spec_of(weights))
>>> out = finalizer.next(finalizer.initialize(), weights, [np.full(2, 0.25, np.float32)])
>>> out.result.trainable, dict(out.measurements)
([array([0.75, 0.75], dtype=float32)], {'update_non_finite': 0})
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Optional

import numpy as np
import optree

from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.optimizers.optimizer import Optimizer
from fl_blocks.specs import spec_of
from fl_blocks.templates.measured_process import MeasuredProcessOutput, WeightsUpdateProcess

__all__ = ["FinalizerProcess", "build_apply_optimizer_finalizer", "reject_non_finite_update"]


class FinalizerProcess(WeightsUpdateProcess):
    """Server work after aggregation.

    ``next(state, weights, update) -> MeasuredProcessOutput(state,
    result=new weights, measurements)``.
    """

    role = "finalizer"


def reject_non_finite_update(state: Any, update: Any) -> tuple[bool, collections.OrderedDict[str, int]]:
    """TFF's default ``should_reject_update``: reject when any update value is NaN or Inf."""
    del state
    non_finite = any(not np.isfinite(leaf).all() for leaf in optree.tree_leaves(update))
    return non_finite, collections.OrderedDict(update_non_finite=int(non_finite))


def build_apply_optimizer_finalizer(
    optimizer_fn: Optimizer,
    model_weights_spec: Any,
    should_reject_update: Optional[Callable[[Any, Any], tuple[bool, Any]]] = reject_non_finite_update,
) -> FinalizerProcess:
    """Returns a finalizer that applies one `optimizer_fn` step to the trainable weights.

    Its state is the optimizer's state. `should_reject_update(new_state,
    update) -> (reject, measurements)`; ``None`` never rejects and measures ``()``.
    """
    if not isinstance(optimizer_fn, Optimizer):
        raise TypeError(
            f"optimizer_fn must be an fl_blocks Optimizer such as build_sgdm(learning_rate=1.0), "
            f"got {type(optimizer_fn).__name__}"
        )
    if not isinstance(model_weights_spec, ModelWeights):
        raise TypeError(f"model_weights_spec must be a ModelWeights of TensorSpecs, got {type(model_weights_spec).__name__}")
    model_weights_spec = spec_of(model_weights_spec)

    def initialize_fn() -> Any:
        return optimizer_fn.initialize(model_weights_spec.trainable)

    def next_fn(state: Any, weights: ModelWeights, update: Any) -> MeasuredProcessOutput:
        new_state, new_trainable = optimizer_fn.next(state, weights.trainable, update)
        if should_reject_update is None:
            return MeasuredProcessOutput(new_state, ModelWeights(new_trainable, weights.non_trainable), ())
        reject, measurements = should_reject_update(new_state, update)
        if reject:
            return MeasuredProcessOutput(state, weights, measurements)
        return MeasuredProcessOutput(new_state, ModelWeights(new_trainable, weights.non_trainable), measurements)

    return FinalizerProcess(
        initialize_fn,
        next_fn,
        weights_spec=model_weights_spec,
        update_spec=model_weights_spec.trainable,
        get_hparams_fn=optimizer_fn.get_hparams,
        set_hparams_fn=optimizer_fn.set_hparams,
    )
