"""Seeded partitioners: centralized labelled arrays -> simulated clients.

Each partitioner is a pure function of its arguments and ``seed`` (through
``numpy.random.default_rng(seed)``) returning one int64 index array per client.
Every example is assigned to exactly one client, and each client's indices are
ascending (the client keeps the data set's order). `partition_arrays` turns a
partition into a `ClientData`.

>>> labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
>>> [p.tolist() for p in shard_partition(labels, num_clients=2, shards_per_client=2, seed=0)]
[[0, 1, 4, 5], [2, 3, 6, 7]]
>>> sorted(np.concatenate(dirichlet_partition(labels, 3, alpha=0.5, seed=1)).tolist()) == list(range(8))
True
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from fl_blocks.simulation.datasets.client_data import ClientData

__all__ = ["METHODS", "dirichlet_partition", "iid_partition", "label_counts", "partition_arrays", "partition_labels",
           "check_options", "shard_partition", "size_partition"]

Partition = list[np.ndarray]
METHODS = ("iid", "dirichlet", "shards", "sizes")
_MAX_TRIES = 100  # Dirichlet redraws to reach `min_size`


def _int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _rng(seed: Any) -> np.random.Generator:
    return np.random.default_rng(_int("seed", seed, 0))


def _labels(labels: Any) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {array.shape}")
    if array.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers, got dtype {array.dtype}")
    return array


def _clients(num_clients: Any, num_examples: int, what: str = "examples") -> int:
    count = _int("num_clients", num_clients, 1)
    if count > num_examples:
        raise ValueError(f"num_clients ({count}) exceeds the number of {what} ({num_examples})")
    return count


def _split(order: np.ndarray, sizes: np.ndarray) -> Partition:
    return [np.sort(part).astype(np.int64) for part in np.split(order, np.cumsum(sizes)[:-1])]


def iid_partition(num_examples: int, num_clients: int, seed: int) -> Partition:
    """Uniformly random clients of near-equal size (sizes differ by at most one).

    >>> [len(p) for p in iid_partition(10, 3, seed=0)]
    [4, 3, 3]
    """
    num_examples = _int("num_examples", num_examples, 0)
    num_clients = _clients(num_clients, num_examples)
    order = _rng(seed).permutation(num_examples)
    return [np.sort(part).astype(np.int64) for part in np.array_split(order, num_clients)]


def size_partition(num_examples: int, num_clients: int, seed: int, sigma: float = 1.0, min_size: int = 1) -> Partition:
    """Random clients whose sizes are proportional to LogNormal(0, `sigma`) draws.

    Each client gets at least `min_size` examples; the rest is shared out by the
    draws (largest remainder). ``sigma=0`` gives equal sizes, as `iid_partition`.

    >>> sorted(len(p) for p in size_partition(100, 4, seed=0, sigma=0.0))
    [25, 25, 25, 25]
    """
    num_examples = _int("num_examples", num_examples, 0)
    num_clients = _clients(num_clients, num_examples)
    min_size = _int("min_size", min_size, 0)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    if num_clients * min_size > num_examples:
        raise ValueError(f"min_size ({min_size}) x num_clients ({num_clients}) exceeds num_examples ({num_examples})")
    rng = _rng(seed)
    weights = rng.lognormal(0.0, float(sigma), num_clients)
    share = weights / weights.sum() * (num_examples - num_clients * min_size)
    sizes = np.floor(share).astype(np.int64)
    sizes[np.argsort(sizes - share, kind="stable")[: num_examples - num_clients * min_size - sizes.sum()]] += 1
    return _split(rng.permutation(num_examples), sizes + min_size)


def dirichlet_partition(labels: Any, num_clients: int, alpha: float, seed: int, min_size: int = 0) -> Partition:
    """Label skew: each class is split across clients by proportions drawn from Dirichlet(`alpha`).

    As in Hsu et al. (2019) and Yurochkin et al. (2019). Small `alpha` gives each
    client few classes; large `alpha` approaches an IID split. Draws are repeated
    (up to 100 times) until every client has at least `min_size` examples.

    >>> [len(p) for p in dirichlet_partition(np.repeat([0, 1], 50), 2, alpha=1e6, seed=0)]
    [50, 50]
    """
    labels = _labels(labels)
    num_clients = _clients(num_clients, labels.size)
    if not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be finite and > 0, got {alpha}")
    min_size = _int("min_size", min_size, 0)
    if num_clients * min_size > labels.size:
        raise ValueError(f"min_size ({min_size}) x num_clients ({num_clients}) exceeds the {labels.size} examples")
    rng = _rng(seed)
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for _ in range(_MAX_TRIES):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for members in classes:
            members = rng.permutation(members)
            cuts = np.round(np.cumsum(rng.dirichlet(np.full(num_clients, float(alpha))))[:-1] * members.size)
            for client, piece in enumerate(np.split(members, cuts.astype(np.int64))):
                parts[client].append(piece)
        partition = [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
        if min(len(p) for p in partition) >= min_size:
            return partition
    raise ValueError(f"no Dirichlet draw in {_MAX_TRIES} gave every client min_size={min_size} examples; "
                     "lower min_size or num_clients, or raise alpha")


def shard_partition(labels: Any, num_clients: int, shards_per_client: int = 2, seed: int = 0) -> Partition:
    """McMahan et al. (2017): sort by label, cut into ``num_clients * shards_per_client``
    near-equal shards, and give each client `shards_per_client` random shards.

    >>> [len(p) for p in shard_partition(np.arange(12) % 3, num_clients=3, seed=0)]
    [4, 4, 4]
    """
    labels = _labels(labels)
    shards_per_client = _int("shards_per_client", shards_per_client, 1)
    num_clients = _int("num_clients", num_clients, 1)
    if num_clients * shards_per_client > labels.size:
        raise ValueError(f"num_clients x shards_per_client ({num_clients} x {shards_per_client}) shards exceed "
                         f"the {labels.size} examples")
    shards = np.array_split(np.argsort(labels, kind="stable"), num_clients * shards_per_client)
    owners = _rng(seed).permutation(len(shards)).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])).astype(np.int64) for row in owners]


def check_options(method: str, num_clients: int, seed: int, *, alpha: float = 0.5, shards_per_client: int = 2,
                  sigma: float = 1.0, min_size: int = 0) -> None:
    """Checks `partition_labels`' options without any labels, e.g. before a download; names the bad one."""
    if method not in METHODS:
        raise ValueError(f"partition method must be one of {METHODS}, got {method!r}")
    _int("num_clients", num_clients, 1), _int("seed", seed, 0), _int("min_size", min_size, 0)
    if method == "dirichlet" and not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be finite and > 0, got {alpha}")
    if method == "shards":
        _int("shards_per_client", shards_per_client, 1)
    if method == "sizes" and not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")


def partition_labels(method: str, labels: Any, num_clients: int, seed: int, *, alpha: float = 0.5,
                     shards_per_client: int = 2, sigma: float = 1.0, min_size: int = 0) -> Partition:
    """Dispatches on `method` (one of `METHODS`); options a method does not use are ignored.

    >>> len(partition_labels("iid", np.zeros(6, np.int64), 3, seed=0))
    3
    """
    check_options(method, num_clients, seed, alpha=alpha, shards_per_client=shards_per_client, sigma=sigma,
                  min_size=min_size)
    size = _labels(labels).size
    if method == "iid":
        return iid_partition(size, num_clients, seed)
    if method == "sizes":
        return size_partition(size, num_clients, seed, sigma=sigma, min_size=min_size)
    if method == "shards":
        return shard_partition(labels, num_clients, shards_per_client, seed)
    return dirichlet_partition(labels, num_clients, alpha, seed, min_size=min_size)


def label_counts(labels: Any, partition: Sequence[np.ndarray], num_classes: Optional[int] = None) -> np.ndarray:
    """Per-client class counts, int64 ``[num_clients, num_classes]`` (labels must be >= 0).

    >>> label_counts(np.array([0, 1, 1]), [np.array([0, 1]), np.array([2])]).tolist()
    [[1, 1], [0, 1]]
    """
    labels = _labels(labels)
    width = int(labels.max(initial=-1)) + 1 if num_classes is None else num_classes
    return np.stack([np.bincount(labels[p], minlength=width) for p in partition]).astype(np.int64)


def _read_only_copy(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]`` as a fresh read-only array (the caller's `array` is left writable)."""
    rows: np.ndarray = np.array(array[index], copy=True, order="C")  # owns its bytes: no writable base
    rows.flags.writeable = False
    return rows


def partition_arrays(columns: Mapping[str, Any], partition: Sequence[Any], client_ids: Optional[Sequence[str]] = None,
                     element_fn: Optional[Callable[..., Any]] = None) -> ClientData:
    """A `ClientData` whose client ``i`` holds ``OrderedDict(name=column[partition[i]])``.

    Columns are equal-length arrays (e.g. ``label`` and uint8 ``pixels``); rows are
    copied per client, dtypes kept, into read-only storage (so the vectorized
    executor can keep per-client Gram matrices across rounds; `columns` themselves
    stay as they are). Client ids default to ``client_0 ... client_{C-1}``
    (zero-padded). `element_fn` is passed to `ClientData.from_arrays`.

    >>> data = partition_arrays({"label": np.arange(4)}, [np.array([0, 3]), np.array([1, 2])])
    >>> data.client_ids, [int(e["label"]) for e in data.create_dataset_for_client("client_1")]
    (['client_0', 'client_1'], [1, 2])
    """
    arrays = collections.OrderedDict((name, np.asarray(value)) for name, value in columns.items())
    if not arrays:
        raise ValueError("columns must hold at least one array")
    lengths = {name: (a.shape[0] if a.ndim else None) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1 or None in lengths.values():
        raise ValueError(f"columns must be arrays of equal length, got lengths {lengths}")
    num_rows = next(iter(lengths.values()))
    assert num_rows is not None
    if client_ids is None:
        width = len(str(max(len(partition) - 1, 0)))
        client_ids = [f"client_{i:0{width}d}" for i in range(len(partition))]
    if len(client_ids) != len(partition):
        raise ValueError(f"client_ids has {len(client_ids)} ids but the partition has {len(partition)} clients")
    per_client = {}
    for client_id, part in zip(client_ids, partition):
        index = np.asarray(part) if len(part) else np.zeros(0, np.int64)
        if index.ndim != 1 or index.dtype.kind not in "iu" or (index.size and not 0 <= index.min() <= index.max() < num_rows):
            raise ValueError(f"partition for client {client_id!r} must be 1-D integer indices in [0, {num_rows})")
        per_client[str(client_id)] = collections.OrderedDict((name, _read_only_copy(a, index)) for name, a in arrays.items())
    if len(per_client) != len(partition):
        raise ValueError("client_ids contains duplicates")
    return ClientData.from_arrays(per_client, element_fn=element_fn)
