"""What this machine does on the round's kinds of work, measured beside the rounds, so runs on different machines can be compared.

    python -m benchmarks.machine

The rounds' absolute times move with the machine: on a slower one both
fl_blocks and the per-client loop slow down more than TFF does (TFF's round is
mostly its own runtime). Five probes, medians of several runs:

- ``square_gflops``: float32 ``(2048, 2048) @ (2048, 2048)`` with BLAS's default
  threads (the compute floor assumes 2 x 100 GFLOP/s);
- ``ten_column_gflops``: float32 ``(2048, 784) @ (784, 10)``, the shape of ``X W0``;
- ``ten_column_one_core_gflops``: the same with BLAS kept to one thread (threadpoolctl,
  from the ``test`` or ``parallel`` extra; NaN without it), as in each process of
  ``processes=2``: with 10 columns, BLAS packs the rows on every call, so one
  core runs these products well below its square-product rate;
- ``small_product_us``: float32 ``(20, 784) @ (784, 10)``, one batch's logits in the
  per-client loop (BLAS's fixed cost per call; per-client products in the
  vectorized path pay it too);
- ``small_call_us``: one NumPy call on a ``(10, 10, 20)`` array (``a + a``), the
  unit cost of a lockstep step's ~30 small calls.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Callable, Optional, TypeVar

import numpy as np

T = TypeVar("T")


def median_seconds(fn: Callable[[], object], runs: int, warm_up: bool = True) -> float:
    """The median of `runs` timed calls of `fn`, after one untimed call when `warm_up`."""
    if warm_up:
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def one_thread(fn: Callable[[], T]) -> Optional[T]:
    """``fn()`` with BLAS kept to one thread; None without threadpoolctl (the ``test`` or ``parallel`` extra)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    with threadpool_limits(limits=1, user_api="blas"):
        return fn()


def probe() -> dict[str, float]:
    """The five figures of the module docstring."""
    rng = np.random.default_rng(0)
    square = rng.random((2048, 2048), dtype=np.float32)
    rows, kernel = rng.random((2048, 784), dtype=np.float32), rng.random((784, 10), dtype=np.float32)
    small = rng.random((10, 10, 20), dtype=np.float32)
    batch = rows[:20]

    def ten_columns() -> float:
        return 2 * 2048 * 784 * 10 / median_seconds(lambda: rows @ kernel, 200) / 1e9

    one_core = one_thread(ten_columns)
    return {
        "square_gflops": 2 * 2048 ** 3 / median_seconds(lambda: square @ square, 7) / 1e9,
        "ten_column_gflops": ten_columns(),
        "ten_column_one_core_gflops": float("nan") if one_core is None else one_core,
        "small_product_us": median_seconds(lambda: batch @ kernel, 20000) * 1e6,
        "small_call_us": median_seconds(lambda: small + small, 20000) * 1e6,
    }


def describe(figures: dict[str, float]) -> str:
    return (f"This machine: float32 matrix products at {figures['square_gflops']:.0f} GFLOP/s (square) and "
            f"{figures['ten_column_gflops']:.0f} GFLOP/s (10 columns, as X W0; "
            f"{figures['ten_column_one_core_gflops']:.0f} on one core); one batch's (20, 784) @ (784, 10) takes "
            f"{figures['small_product_us']:.1f} µs and a small NumPy call {figures['small_call_us']:.2f} µs.")


if __name__ == "__main__":
    found = probe()
    print(json.dumps(found))
    print(describe(found))
