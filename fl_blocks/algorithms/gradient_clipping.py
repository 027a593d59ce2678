"""The tutorial's algorithm: FedAvg whose clients clip each gradient's global norm.

Client work, per client, exactly as in TFF's *Composing Learning Algorithms*::

    w = server weights
    for (x, y) in client dataset:
        g = grad loss(w; x, y)
        n = global_norm(g)
        if n > clip_norm: g = g * (clip_norm / n)
        w = optimizer.next(w, g)
    update = server weights - w;  update_weight = number of examples

>>> from fl_blocks.models import SoftmaxRegression
>>> from fl_blocks.optimizers import build_sgdm
>>> process = build_fed_avg_with_clipping(
...     lambda: SoftmaxRegression(784, 10), build_sgdm(0.01), build_sgdm(1.0), clip_norm=1.0)
>>> state = process.initialize()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np

from fl_blocks.aggregators.mean import MeanFactory
from fl_blocks.execution.batches import iterate_batches
from fl_blocks.execution.lockstep import is_elementwise
from fl_blocks.execution.processes import usable_cores
from fl_blocks.execution.vectorized import client_results
from fl_blocks.models.model import Model
from fl_blocks.models.model_weights import ModelWeights
from fl_blocks.optimizers.optimizer import Optimizer
from fl_blocks.models.softmax import SoftmaxRegression
from fl_blocks.placements import AllEqual, StackedClients
from fl_blocks.specs import TensorSpec, spec_of
from fl_blocks.templates.client_works import ClientResult, ClientWorkProcess
from fl_blocks.templates.composers import compose_learning_process
from fl_blocks.templates.distributors import build_broadcast_process
from fl_blocks.templates.finalizers import build_apply_optimizer_finalizer
from fl_blocks.templates.learning_process import LearningProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput

__all__ = [
    "EXECUTORS", "build_fed_avg_with_clipping", "build_gradient_clipping_client_work", "clip_by_global_norm",
    "global_norm", "iterate_batches",
]

#: How client work runs: "vectorized" (all clients in lockstep), "loop" (client by client, the plain
#: reading of the algorithm) or "auto" (vectorized when the model and optimizer allow it, else loop).
EXECUTORS = ("auto", "vectorized", "loop")


def global_norm(tensors: Sequence[np.ndarray], client_axis: bool = False) -> Any:
    """``sqrt(sum of squares)`` over all arrays, in their dtype (``tf.linalg.global_norm``).

    With `client_axis`, each array's first axis indexes clients and one norm
    per client is returned.
    """
    if client_axis:
        return np.sqrt(sum(np.square(t).sum(axis=tuple(range(1, t.ndim))) for t in tensors))  # any memory order, no copy
    return np.sqrt(sum(np.vdot(t, t) for t in tensors))


def clip_by_global_norm(tensors: Sequence[np.ndarray], clip_norm: float, client_axis: bool = False) -> list[np.ndarray]:
    """Scales `tensors` by ``clip_norm / n`` when their global norm ``n`` exceeds `clip_norm`.

    With `client_axis`, each client (first axis) is clipped by its own norm.
    """
    norm = global_norm(tensors, client_axis)
    if client_axis:
        scale = np.divide(np.asarray(clip_norm, norm.dtype), norm, out=np.ones_like(norm), where=norm > clip_norm)
        return [t * scale.reshape((-1,) + (1,) * (t.ndim - 1)) for t in tensors]
    if norm > clip_norm:
        scale = np.asarray(clip_norm, norm.dtype) / norm
        return [t * scale for t in tensors]
    return list(tensors)


def _check_optimizer(optimizer: Any, name: str) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{name} must be an fl_blocks Optimizer such as build_sgdm(0.01), got {type(optimizer).__name__}")
    return optimizer


def _executor(executor: str, model: Model, optimizer: Optimizer) -> str:
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(map(repr, EXECUTORS))}, got {executor!r}")
    if executor == "loop":
        return executor
    reason = None
    if type(model) is not SoftmaxRegression:
        reason = f"it trains SoftmaxRegression models only, got {type(model).__name__}"
    elif not is_elementwise(optimizer):
        reason = f"the client optimizer {type(optimizer).__name__} does not step stacked clients elementwise"
    if reason and executor == "vectorized":
        raise ValueError(f"the vectorized executor cannot run this client work: {reason}; use executor='loop'")
    return "loop" if reason else "vectorized"


def _processes(processes: Optional[int]) -> int:
    if processes is None:
        return usable_cores()
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be a positive int or None (one per CPU), got {processes!r}")
    return processes


def _all_float32(weights: Sequence[ModelWeights] | AllEqual[ModelWeights], count: int) -> bool:
    """Whether every client's trainable weights are float32 arrays (what the vectorized executor computes in)."""
    if isinstance(weights, StackedClients):  # one stack per leaf: its dtype is every client's
        clients = [weights.stacked]
    else:
        clients = [weights.value] if isinstance(weights, AllEqual) else [weights[i] for i in range(count)]
    return all(getattr(leaf, "dtype", None) == np.float32 for w in clients for leaf in w.trainable)


def build_gradient_clipping_client_work(
    model_fn: Callable[[], Model], optimizer: Optimizer, clip_norm: float = 1.0, *, executor: str = "auto",
    processes: Optional[int] = 1,
) -> ClientWorkProcess:
    """Client work that trains one epoch with per-batch global-norm gradient clipping.

    State and measurements are ``()``; each client's result is
    ``ClientResult(update=initial - trained, update_weight=num_examples)``.
    `executor` (see `EXECUTORS`) changes speed only: the vectorized executor
    (plain SGD in dual form, see `fl_blocks.execution.dual`) agrees with the
    loop to float32 rounding: within 1e-6 on the tutorial's EMNIST rounds, and
    within a few dozen float32 ulps of the largest weight or update when those
    are large. It computes in float32: weights of another dtype (e.g. float64)
    are trained by the loop (one process), whose updates keep their dtype.
    The vectorized kernel updates are a transposed view of a ``(clients, classes,
    dim)`` stack (each client's is Fortran-ordered). With `processes` > 1
    (None: one per CPU) the vectorized executor shares large rounds out to
    forked helper processes (POSIX), with identical results.
    """
    _check_optimizer(optimizer, "optimizer")
    if not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0, got {clip_norm!r}")
    model = model_fn()
    weights_spec = spec_of(model.initial_weights())
    vectorized = _executor(executor, model, optimizer) == "vectorized"
    processes = _processes(processes)

    def train_client(weights: ModelWeights, dataset: Any, client_index: int) -> ClientResult:
        initial = list(weights.trainable)
        trainable = initial
        opt_state = optimizer.initialize(weights_spec.trainable)
        num_examples = 0
        for x, y in iterate_batches(model, dataset, client_index):
            _, grads = model.loss_and_gradients(trainable, x, y)
            opt_state, trainable = optimizer.next(opt_state, trainable, clip_by_global_norm(grads, clip_norm))
            num_examples += y.shape[0]
        update = [a - b for a, b in zip(initial, trainable)]
        return ClientResult(update=update, update_weight=np.float32(num_examples))

    def initialize_fn() -> tuple[()]:
        return ()

    def next_fn(state: tuple[()], weights: Sequence[ModelWeights] | AllEqual[ModelWeights], client_data: Sequence[Any]) -> MeasuredProcessOutput:
        if vectorized and _all_float32(weights, len(client_data)):  # (other dtypes: the loop, in theirs)
            assert isinstance(model, SoftmaxRegression)
            return MeasuredProcessOutput(state, client_results(model, optimizer, clip_norm, weights, client_data, processes), ())
        results = [train_client(weights[i], dataset, i) for i, dataset in enumerate(client_data)]
        return MeasuredProcessOutput(state, results, ())

    return ClientWorkProcess(initialize_fn, next_fn, weights_spec=weights_spec, update_spec=weights_spec.trainable)


def build_fed_avg_with_clipping(
    model_fn: Callable[[], Model],
    client_optimizer_fn: Optimizer,
    server_optimizer_fn: Optimizer,
    clip_norm: float = 1.0,
    *,
    executor: str = "auto",
    processes: Optional[int] = 1,
) -> LearningProcess:
    """The tutorial's FedAvg with client gradient clipping, composed from the four blocks.

    `executor` and `processes` choose how the client work runs (see
    `build_gradient_clipping_client_work`); they change speed, not results.
    """
    _check_optimizer(server_optimizer_fn, "server_optimizer_fn")
    initial_model_weights_fn = model_fn().initial_weights
    weights_spec = spec_of(initial_model_weights_fn())
    distributor = build_broadcast_process(weights_spec)
    client_work = build_gradient_clipping_client_work(model_fn, client_optimizer_fn, clip_norm, executor=executor, processes=processes)
    aggregator = MeanFactory().create(client_work.update_spec, TensorSpec((), "float32"))
    finalizer = build_apply_optimizer_finalizer(server_optimizer_fn, weights_spec)
    return compose_learning_process(initial_model_weights_fn, distributor, client_work, aggregator, finalizer)
