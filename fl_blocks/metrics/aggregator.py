"""`sum_then_finalize`: TFF's default aggregation of client metrics.

Unfinalized metrics are summed over clients (no client weighting) and then
finalized once, at the server.

>>> import numpy as np
>>> aggregate = sum_then_finalize({"loss": lambda v: v[0] / v[1]})
>>> dict(aggregate([{"loss": np.array([6.0, 3.0])}, {"loss": np.array([2.0, 1.0])}]))
{'loss': np.float64(2.0)}
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np
import optree

__all__ = ["sum_then_finalize", "sum_unfinalized_metrics", "finalize_metrics"]

MetricFinalizers = Mapping[str, Callable[[Any], Any]]


def sum_unfinalized_metrics(client_metrics: Sequence[Any]) -> Any:
    """Leaf-wise sum of the clients' unfinalized metrics, keeping each leaf's dtype."""
    if len(client_metrics) == 0:
        raise ValueError("no client metrics to sum: a round needs at least one client")
    try:
        return optree.tree_map(
            lambda *leaves: np.sum(np.stack([np.asarray(v) for v in leaves]), axis=0, dtype=np.asarray(leaves[0]).dtype),
            client_metrics[0], *client_metrics[1:],
        )
    except ValueError as error:
        raise ValueError(f"clients reported unfinalized metrics of different structures: {error}") from None


def finalize_metrics(metric_finalizers: MetricFinalizers, unfinalized: Mapping[str, Any]) -> collections.OrderedDict[str, Any]:
    """Applies each metric's finalizer, in the finalizers' order; the names must match."""
    if set(metric_finalizers) != set(unfinalized):
        raise ValueError(
            f"metric finalizers {list(metric_finalizers)} do not match the unfinalized metrics {list(unfinalized)}"
        )
    return collections.OrderedDict((name, finalize(unfinalized[name])) for name, finalize in metric_finalizers.items())


def sum_then_finalize(metric_finalizers: MetricFinalizers) -> Callable[[Sequence[Any]], collections.OrderedDict[str, Any]]:
    """Returns ``aggregate(client_unfinalized_metrics) -> finalized metrics`` (TFF's ``sum_then_finalize``)."""
    if not isinstance(metric_finalizers, Mapping) or not all(callable(f) for f in metric_finalizers.values()):
        raise TypeError("metric_finalizers must map each metric name to a callable finalizer")

    def aggregate(client_metrics: Sequence[Any]) -> collections.OrderedDict[str, Any]:
        return finalize_metrics(metric_finalizers, sum_unfinalized_metrics(client_metrics))

    return aggregate
