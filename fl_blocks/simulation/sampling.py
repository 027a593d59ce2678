"""Per-round client sampling: TFF 0.87's ``tff.simulation.build_uniform_sampling_fn``.

With an integer `random_seed`, round ``r`` draws from a fresh
``np.random.RandomState(seed_r)`` where ``seed_r`` comes from a Park-Miller
(Lehmer) generator: ``start = RandomState(random_seed).randint(1, 2**31 - 2)``
and ``seed_r = 16807**r * start mod (2**31 - 1)``. The sample is
``RandomState(seed_r).choice(sample_range, size, replace).tolist()``, so a round's
cohort depends only on ``(random_seed, round_num, size)``: no state is carried
between calls and rounds may be asked for in any order. Elements come back as
``numpy.asarray(sample_range)[i].tolist()`` does (Python ``str``/``int``), as in TFF.
With ``random_seed=None`` each call draws from fresh OS entropy (TFF's
nondeterministic mode).

>>> sample = build_uniform_sampling_fn(["a", "b", "c", "d", "e"], random_seed=1)
>>> sample(3, 2) == sample(3, 2)
True
>>> sorted(set(sample(3, 5)))
['a', 'b', 'c', 'd', 'e']
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Optional, Sequence

import numpy as np

__all__ = ["build_uniform_sampling_fn", "MLCG_MODULUS", "MLCG_MULTIPLIER"]

MLCG_MODULUS = 2**31 - 1  # Park and Miller, "Random Number Generators: Good Ones are Hard to Find"
MLCG_MULTIPLIER = 16807


def _integer(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {int(value)}")
    return int(value)


def build_uniform_sampling_fn(
    sample_range: Sequence[Any], replace: bool = False, random_seed: Optional[int] = None
) -> Callable[[int, int], list[Any]]:
    """Returns ``sample_fn(round_num, size)``: `size` elements of `sample_range` drawn uniformly.

    Args:
      sample_range: a non-string 1-D sequence (list, tuple, range, 1-D array) to sample from.
      replace: whether to sample with replacement (duplicates allowed).
      random_seed: an integer in ``[0, 2**32)`` making every round's sample reproducible,
        or None for a nondeterministic sample on every call.

    ``sample_fn`` raises `TypeError` for a non-integer `round_num` or `size` and
    `ValueError` for a negative one, or when `size` exceeds ``len(sample_range)``
    without replacement. Unlike TFF, NumPy integers are accepted as a seed (TFF
    silently treats them as None) and a negative `round_num` is refused (TFF
    would use the modular inverse).
    """
    if isinstance(sample_range, (str, bytes)) or not hasattr(sample_range, "__len__"):
        raise TypeError(f"sample_range must be a sequence of elements, got {type(sample_range).__name__}")
    population = np.asarray(sample_range)
    if population.ndim != 1:
        raise ValueError(f"sample_range must be one-dimensional, got shape {population.shape}")
    if not isinstance(replace, (bool, np.bool_)):
        raise TypeError(f"replace must be a bool, got {type(replace).__name__} {replace!r}")
    replace = bool(replace)
    start: Optional[int] = None
    if random_seed is not None:
        seed = _integer(random_seed, "random_seed")
        if seed >= 2**32:
            raise ValueError(f"random_seed must be < 2**32 (a NumPy RandomState seed), got {seed}")
        start = int(np.random.RandomState(seed).randint(1, MLCG_MODULUS - 1))

    def sample_fn(round_num: int, size: int) -> list[Any]:
        """Returns the `size` sampled elements for round `round_num`, as a list."""
        round_num = _integer(round_num, "round_num")
        size = _integer(size, "size")
        if not replace and size > len(population):
            raise ValueError(f"cannot sample {size} clients without replacement from a population of {len(population)}")
        if size and not len(population):
            raise ValueError(f"cannot sample {size} clients from an empty sample_range")
        if start is None:
            state = np.random.RandomState()
        else:
            state = np.random.RandomState(pow(MLCG_MULTIPLIER, round_num, MLCG_MODULUS) * start % MLCG_MODULUS)
        chosen: list[Any] = state.choice(population, size=size, replace=replace).tolist()
        return chosen

    return sample_fn
