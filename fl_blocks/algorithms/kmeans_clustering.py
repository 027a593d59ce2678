"""Federated (mini-batch) k-means, composed from the four blocks as TFF's ``build_fed_kmeans``.

Each round, with centroids ``c`` (shape ``(k, *data_shape)``) and cluster
weights ``w`` (``state.finalizer``, starting at 1.0 each)::

    client:     assign every point to its nearest centroid (squared distance, first on ties)
                update = (per-cluster sums of points, per-cluster counts n)
    aggregator: sum over clients
    server:     c = (w * c + [n > 0] * sums) / (w + n);  w = w + n      (0 where w + n == 0)

>>> import numpy as np
>>> process = build_fed_kmeans(2, (1,), random_seed=(0, 0))
>>> state = process.set_model_weights(process.initialize(), np.array([[0.0], [10.0]], np.float32))
>>> output = process.next(state, [[np.array([[1.0], [9.0]], np.float32)], [np.array([[3.0]], np.float32)]])
>>> process.get_model_weights(output.state).ravel(), output.state.finalizer, dict(output.metrics["client_work"])
(array([1.3333334, 9.5      ], dtype=float32), array([3., 2.], dtype=float32), {'num_examples': np.float32(3.0)})
"""

from __future__ import annotations

import collections
import numbers
from collections.abc import Sequence
from typing import Any, Optional, cast

import numpy as np

from fl_blocks.aggregators.sum_factory import SumFactory
from fl_blocks.placements import AllEqual
from fl_blocks.specs import TensorSpec
from fl_blocks.templates.client_works import ClientResult, ClientWorkProcess
from fl_blocks.templates.composers import compose_learning_process
from fl_blocks.templates.distributors import DistributionProcess, build_broadcast_process
from fl_blocks.templates.finalizers import FinalizerProcess
from fl_blocks.templates.learning_process import LearningProcess
from fl_blocks.templates.measured_process import MeasuredProcessOutput

__all__ = ["build_fed_kmeans"]

_INDEX_DTYPE = np.int32
_POINT_DTYPE = np.float32
_WEIGHT_DTYPE = np.float32
_DISTANCE_BLOCK = 1 << 22  # distance entries computed at once (bounds memory for big clients)


def _client_points(dataset: Any, data_shape: tuple[int, ...], client_index: int) -> np.ndarray:
    """All points of one client as float32 ``[N, *data_shape]``; elements are points or batches of points."""
    if isinstance(dataset, np.ndarray) and dataset.shape[1:] == data_shape:
        dataset = [dataset]
    try:
        iterator = iter(dataset)
    except TypeError:
        raise TypeError(f"client {client_index}: a dataset must be an iterable of points or batches of points, got {type(dataset).__name__}") from None
    if iterator is dataset:
        raise TypeError(
            f"client {client_index}: the dataset is a one-shot iterator ({type(dataset).__name__}), which a second "
            "round would find empty; pass a re-iterable such as a list of batches or a Dataset"
        )
    chunks = [np.zeros((0,) + data_shape, _POINT_DTYPE)]
    for index, element in enumerate(iterator):
        where = f"client {client_index}, element {index}"
        if isinstance(element, (dict, collections.abc.Mapping, tuple, list)) and not isinstance(element, np.ndarray):
            raise ValueError(f"{where}: expected an array of points, got a {type(element).__name__}; map the dataset to its point arrays")
        array = np.asarray(element)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"{where}: points must be real numbers, got dtype {array.dtype}")
        if array.shape == data_shape:
            array = array[np.newaxis]
        elif array.shape[1:] != data_shape:
            raise ValueError(
                f"{where}: expected a point of shape {data_shape} or a batch of shape (B, {', '.join(map(str, data_shape))}), "
                f"got shape {array.shape}; data_shape of build_fed_kmeans must be the shape of one point"
            )
        chunks.append(array.astype(_POINT_DTYPE, copy=False))
    return np.concatenate(chunks)


def _find_closest_centroids(centroids: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Index of each point's nearest centroid by squared distance (the first one on ties)."""
    k = centroids.shape[0]
    flat_centroids = centroids.reshape(k, -1)
    flat_points = points.reshape(points.shape[0], flat_centroids.shape[1])
    step = max(1, _DISTANCE_BLOCK // max(1, k * flat_centroids.shape[1]))
    indices = [np.zeros(0, _INDEX_DTYPE)]
    for start in range(0, flat_points.shape[0], step):
        shifted = flat_centroids[np.newaxis] - flat_points[start:start + step, np.newaxis]
        indices.append(np.argmin((shifted * shifted).sum(axis=2), axis=1).astype(_INDEX_DTYPE))
    return np.concatenate(indices)


def _kmeans_step(centroids: np.ndarray, points: np.ndarray) -> tuple[ClientResult, np.float32]:
    """One client's ``ClientResult((cluster_sums, cluster_weights), ())`` and its number of points."""
    closest = _find_closest_centroids(centroids, points)
    cluster_sums = np.zeros_like(centroids)
    np.add.at(cluster_sums, closest, points)  # in data order, as TFF's scatter-add reduce
    cluster_weights = np.bincount(closest, minlength=centroids.shape[0]).astype(_WEIGHT_DTYPE)
    return ClientResult(update=(cluster_sums, cluster_weights), update_weight=()), _WEIGHT_DTYPE(points.shape[0])


def _build_kmeans_client_work(centroids_spec: TensorSpec, weights_spec: TensorSpec) -> ClientWorkProcess:
    """Stateless client work: nearest-centroid sums and counts; measures the summed ``num_examples``."""
    data_shape = centroids_spec.shape[1:]

    def initialize_fn() -> tuple[()]:
        return ()

    def next_fn(state: tuple[()], centroids: Sequence[np.ndarray] | AllEqual[np.ndarray], client_data: Sequence[Any]) -> MeasuredProcessOutput:
        results, num_examples = [], _WEIGHT_DTYPE(0)
        for i, dataset in enumerate(client_data):
            result, count = _kmeans_step(np.asarray(centroids[i], _POINT_DTYPE), _client_points(dataset, data_shape, i))
            results.append(result)
            num_examples = _WEIGHT_DTYPE(num_examples + count)
        return MeasuredProcessOutput(state, results, collections.OrderedDict(num_examples=num_examples))

    process = ClientWorkProcess(initialize_fn, next_fn, weights_spec=centroids_spec, update_spec=(centroids_spec, weights_spec))
    process.update_weight_spec = ()
    return process


def _divide_no_nan(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, np.divide(x, y, out=np.zeros_like(x), where=y != 0))


def _update_centroids(centroids: np.ndarray, weights: np.ndarray, new_sums: np.ndarray, new_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFF's server rule: a weighted combination of the current centroids and the new sums."""
    total_weights = weights + new_weights
    scale_shape = (-1,) + (1,) * (centroids.ndim - 1)
    current_scale = _divide_no_nan(weights, total_weights).reshape(scale_shape)
    new_scale = _divide_no_nan((new_weights > 0).astype(_POINT_DTYPE), total_weights).reshape(scale_shape)
    return current_scale * centroids + new_scale * new_sums, total_weights


def _build_kmeans_finalizer(centroids_spec: TensorSpec, weights_spec: TensorSpec) -> FinalizerProcess:
    """Finalizer whose state is the cluster weights (pseudo-count 1.0 each to start); measurements ``()``."""

    def initialize_fn() -> np.ndarray:
        return np.ones(weights_spec.shape, _WEIGHT_DTYPE)

    def next_fn(state: np.ndarray, centroids: np.ndarray, summed_updates: tuple[np.ndarray, np.ndarray]) -> MeasuredProcessOutput:
        new_sums, new_weights = summed_updates
        updated_centroids, updated_weights = _update_centroids(centroids, state, new_sums, new_weights)
        return MeasuredProcessOutput(updated_weights, updated_centroids, ())

    return FinalizerProcess(initialize_fn, next_fn, weights_spec=centroids_spec, update_spec=(centroids_spec, weights_spec))


def _check_shapes(num_clusters: Any, data_shape: Any) -> tuple[int, ...]:
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, numbers.Integral) or num_clusters < 1:
        raise ValueError(f"num_clusters must be an integer >= 1, got {num_clusters!r}")
    try:
        dims = tuple(data_shape)
    except TypeError:
        raise TypeError(f"data_shape must be a tuple of ints, the shape of one point such as (784,), got {data_shape!r}") from None
    if any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims):
        raise ValueError(f"data_shape must hold integers >= 1 (the shape of one point, e.g. (784,)), got {data_shape!r}")
    return tuple(int(d) for d in dims)


def _check_seed(random_seed: Any) -> tuple[int, int]:
    if not random_seed:  # as TFF: no seed (or an empty one) draws a fresh one when building
        return (int(np.random.SeedSequence().generate_state(1, np.uint64)[0]), 0)
    if len(random_seed) != 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in random_seed):
        raise ValueError(f"random_seed must be a tuple of two integers, got {random_seed!r}")
    return (int(random_seed[0]), int(random_seed[1]))


def build_fed_kmeans(
    num_clusters: int,
    data_shape: tuple[int, ...],
    random_seed: Optional[tuple[int, int]] = None,
    distributor: Optional[DistributionProcess] = None,
    sum_aggregator: Optional[SumFactory] = None,
) -> LearningProcess:
    """Federated k-means (TFF's ``tff.learning.algorithms.build_fed_kmeans``) as a `LearningProcess`.

    The model weights are the centroids, float32 ``(num_clusters, *data_shape)``,
    drawn from a standard normal seeded by `random_seed` (NumPy's generator, so
    not TFF's draw). ``state.finalizer`` holds the float32 cluster weights. A
    client dataset is an iterable of points of shape `data_shape` (as TFF's
    unbatched sequence) or of batches ``[B, *data_shape]``. `distributor`
    defaults to `build_broadcast_process`; `sum_aggregator` (an unweighted
    factory) to `SumFactory`. Metrics: ``client_work.num_examples`` (float32).
    """
    data_shape = _check_shapes(num_clusters, data_shape)
    seed = _check_seed(random_seed)
    centroids_spec = TensorSpec((int(num_clusters),) + data_shape, "float32")
    weights_spec = TensorSpec((int(num_clusters),), "float32")

    def initialize_centers() -> np.ndarray:
        rng = np.random.default_rng([s % 2**64 for s in seed])
        return rng.standard_normal(centroids_spec.shape, dtype=_POINT_DTYPE)

    if distributor is None:
        distributor = build_broadcast_process(centroids_spec)
    client_work = _build_kmeans_client_work(centroids_spec, weights_spec)
    if sum_aggregator is None:
        sum_aggregator = SumFactory()
    if not callable(getattr(sum_aggregator, "create", None)):
        raise TypeError(f"sum_aggregator must be an unweighted aggregation factory such as SumFactory(), got {type(sum_aggregator).__name__}")
    aggregator = sum_aggregator.create((centroids_spec, weights_spec))
    if aggregator.is_weighted:
        raise TypeError("sum_aggregator must be unweighted (create(value_spec)), as TFF's UnweightedAggregationFactory; got a weighted process")
    finalizer = _build_kmeans_finalizer(centroids_spec, weights_spec)
    # The model weights are the centroids array itself (as in TFF), not a ModelWeights.
    return compose_learning_process(cast(Any, initialize_centers), distributor, client_work, aggregator, finalizer)
