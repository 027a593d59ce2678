"""Work shared between this process and forked helper processes, results in shared memory.

`shared_empty` allocates an array in an anonymous shared mapping (an earlier
one of the same size once no array views it; `release_shared` lets them go):
forked processes write their part of the results straight into it, so
nothing is pickled or copied back. `run_shares` runs ``work(share)`` for
every share, the first in this process and the others in forked children
(which see this process's memory, e.g. every client's data, as it was at the
fork), and re-raises a child's error here. Fork is POSIX-only (and not used on macOS);
elsewhere every share runs here, one after another. While shares run, BLAS
keeps to one thread per process (with threadpoolctl, the ``parallel`` extra):
OpenBLAS threads on top of the helpers would contend for the same cores.

>>> out = shared_empty((4,), np.int64)
>>> def work(share):
...     for i in share:
...         out[i] = i * i
>>> run_shares(work, [[0, 1], [2, 3]])
>>> out.tolist()
[0, 1, 4, 9]
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
import sys
import threading
import traceback
import weakref
from collections.abc import Sequence
from typing import Any, Callable, TypeVar

import numpy as np

__all__ = ["can_fork", "shared_empty", "release_shared", "run_shares", "balanced_shares", "usable_cores"]

T = TypeVar("T")
_REBUILT: dict[str, type[Exception]] = {"ValueError": ValueError, "TypeError": TypeError, "KeyError": KeyError}


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it, else the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def can_fork() -> bool:
    """Whether helper processes can be forked here."""
    if sys.platform == "darwin":  # fork after Accelerate/BLAS use is unsafe on macOS
        return False
    return hasattr(os, "fork") and "fork" in multiprocessing.get_all_start_methods()


#: Shared mappings made by this process, each with its first array (which every view of it keeps alive):
#: once that is gone, a mapping of the same size is reused instead of a new one, whose pages would fault in
#: one by one (about 45 ms for the 107 MB of kernel updates of a 3,400-client round on this machine kind).
#: Any fork but `run_shares`' own (whose helpers end before it returns) forgets them, in both processes:
#: the other process may still view them.
_MAPPINGS: list[tuple[mmap.mmap, "weakref.ref[np.ndarray]"]] = []
_LOCK = threading.Lock()
_OWN_FORK = [False]


def shared_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialized array in memory shared with the helpers `run_shares` forks after this call."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    nbytes = max(count * dtype.itemsize, 1)
    with _LOCK:
        free = [i for i, (buffer, root) in enumerate(_MAPPINGS) if root() is None]
        same = [i for i in free if len(_MAPPINGS[i][0]) == nbytes]
        if same:
            buffer = _MAPPINGS.pop(same[0])[0]
        else:  # none to reuse: let the unused ones go, and map a new one (anonymous MAP_SHARED)
            _MAPPINGS[:] = [entry for i, entry in enumerate(_MAPPINGS) if i not in free]
            buffer = mmap.mmap(-1, nbytes)
        root = np.frombuffer(buffer, dtype, count=count)
        _MAPPINGS.append((buffer, weakref.ref(root)))
    return root.reshape(shape)


def release_shared() -> None:
    """Lets go of the shared mappings kept for reuse (each is unmapped once no array views it)."""
    with _LOCK:
        _MAPPINGS.clear()


def _before_fork() -> None:
    _LOCK.acquire()
    if not _OWN_FORK[0]:  # not one of run_shares' helpers: the new process may keep views of them
        _MAPPINGS.clear()


def _after_fork_in_child() -> None:
    _MAPPINGS.clear()  # the parent may reuse what it frees: never reuse it here
    _LOCK.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_LOCK.release, after_in_child=_after_fork_in_child)


def balanced_shares(costs: Sequence[float], count: int) -> list[list[int]]:
    """Indices of `costs` split into `count` shares of about equal total cost (largest first, greedy)."""
    shares: list[list[int]] = [[] for _ in range(count)]
    totals = [0.0] * count
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        j = totals.index(min(totals))
        shares[j].append(i)
        totals[j] += costs[i]
    return [sorted(share) for share in shares]


def _child(work: Callable[[T], None], share: T, connection: Any) -> None:
    try:
        work(share)
    except BaseException as error:  # report anything to the parent, which re-raises it
        connection.send((type(error).__name__, str(error), traceback.format_exc()))
        raise SystemExit(1) from None
    connection.send(None)


def run_shares(work: Callable[[T], None], shares: Sequence[T]) -> None:
    """Runs ``work(share)`` for each share: the first here, the others in forked processes, all at once."""
    if len(shares) <= 1 or not can_fork():  # nothing to share out, or no fork here
        for share in shares:
            work(share)
        return
    with _one_blas_thread():  # each process takes a core: BLAS threads would only contend for them
        _fork_and_run(work, shares)


def _one_blas_thread() -> Any:
    """Limits BLAS to one thread here and in children forked meanwhile (the `parallel` extra), else nothing."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover - without the extra, helpers share the cores with BLAS threads
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _fork_and_run(work: Callable[[T], None], shares: Sequence[T]) -> None:
    context = multiprocessing.get_context("fork")
    children = []
    _OWN_FORK[0] = True
    try:
        for share in shares[1:]:
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_child, args=(work, share, sender), daemon=True)
            process.start()
            sender.close()
            children.append((process, receiver))
    finally:
        _OWN_FORK[0] = False
    error = None
    try:
        work(shares[0])
    finally:
        for process, receiver in children:
            try:
                report = receiver.recv()
            except EOFError:
                report = ("ChildProcessError", "a helper process died before reporting", "")
            process.join()
            if error is None and (report is not None or process.exitcode != 0):
                error = report or ("ChildProcessError", f"a helper process exited with code {process.exitcode}", "")
    if error is not None:
        name, message, trace = error
        if name in _REBUILT:  # the error the same work would raise here, e.g. a bad batch named by client
            raise _REBUILT[name](message)
        raise RuntimeError(f"a helper process failed with {name}: {message}\n{trace}")
