"""Row-order operations of a `Dataset` as streams of int index chunks (tf.data's take/skip/repeat/shuffle).

A *pass* is a zero-argument function returning an iterator of int64 index arrays;
each call is one iteration of the dataset. `buffer_shuffle` is also used on
element streams.

>>> stream = take(repeat(in_order(3), 2), 5)
>>> np.concatenate(list(stream())).tolist()
[0, 1, 2, 0, 1]
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterable, Iterator, Optional, TypeVar

import numpy as np

__all__ = ["Pass", "in_order", "take", "skip", "repeat", "shuffle", "buffer_shuffle", "rng_factory", "INFINITE"]

Pass = Callable[[], Iterator[np.ndarray]]
T = TypeVar("T")
INFINITE = -1  # tf.data.INFINITE_CARDINALITY
_CHUNK = 4096


def in_order(num_rows: int) -> Pass:
    """All rows once, in order."""
    return lambda: iter([np.arange(num_rows, dtype=np.int64)])


def take(upstream: Pass, count: int) -> Pass:
    """The first `count` rows of each pass."""

    def run() -> Iterator[np.ndarray]:
        left = count
        for chunk in upstream() if left > 0 else ():
            yield chunk[:left]
            left -= len(chunk)
            if left <= 0:
                return

    return run


def skip(upstream: Pass, count: int) -> Pass:
    """Each pass without its first `count` rows."""

    def run() -> Iterator[np.ndarray]:
        left = count
        for chunk in upstream():
            if left < len(chunk):
                yield chunk[max(left, 0):]
            left -= len(chunk)

    return run


def repeat(upstream: Pass, count: Optional[int]) -> Pass:
    """`count` passes of `upstream` back to back (forever if None or -1; stops if a pass is empty)."""

    def run() -> Iterator[np.ndarray]:
        epochs = itertools.count() if count is None or count < 0 else range(count)
        for _ in epochs:
            empty = True
            for chunk in upstream():
                empty = empty and len(chunk) == 0
                yield chunk
            if empty:
                return

    return run


def rng_factory(seed: Optional[int], reshuffle: bool) -> Callable[[], np.random.Generator]:
    base = int(np.random.SeedSequence().entropy) if seed is None else seed  # type: ignore[arg-type]
    iterations = itertools.count()
    if seed is None and reshuffle:
        return np.random.default_rng
    return lambda: np.random.default_rng([base, next(iterations) if reshuffle else 0])


def buffer_shuffle(items: Iterable[T], buffer_size: int, rng: np.random.Generator) -> Iterator[T]:
    """tf.data's buffer shuffle: fill a buffer, emit a uniformly chosen item, refill from the input."""
    buffer: list[T] = []
    draws: list[float] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        if not draws:
            draws = rng.random(_CHUNK).tolist()
        pick = int(draws.pop() * len(buffer))
        buffer[pick], item = item, buffer[pick]
        yield item
    yield from (buffer[i] for i in rng.permutation(len(buffer)))


def shuffle(upstream: Pass, buffer_size: int, seed: Optional[int], reshuffle_each_iteration: bool, num_rows: int) -> Pass:
    """Buffer shuffle of each pass; `num_rows` (-1 if unknown/infinite) enables the full-permutation fast path."""
    new_rng = rng_factory(seed, reshuffle_each_iteration)

    def run() -> Iterator[np.ndarray]:
        rng = new_rng()
        if buffer_size == 1:
            yield from upstream()
        elif 0 <= num_rows <= buffer_size:  # the buffer holds everything: a uniform permutation
            rows = np.concatenate([np.zeros(0, np.int64), *upstream()])
            yield rows[rng.permutation(len(rows))]
        else:
            shuffled = buffer_shuffle((int(i) for chunk in upstream() for i in chunk), buffer_size, rng)
            for block in iter(lambda: list(itertools.islice(shuffled, _CHUNK)), []):
                yield np.asarray(block, np.int64)

    return run
