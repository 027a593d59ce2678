"""Review of the packed-Gram dual form (commits since 5028daf): bugs found, each against the per-client loop.

Every test fails on the code it was written against.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from fl_blocks.execution import cache, client_grams
from fl_blocks.models import ModelWeights
from fl_blocks.optimizers import build_sgdm
from fl_blocks.placements import AllEqual
from fl_blocks.simulation.datasets import ClientData
from test_executors import CLASSES, DIM, assert_results_close, run_client_work, weights_with_scale


pytestmark = pytest.mark.usefixtures("empty_cache")


def test_one_softmax_shift_for_the_whole_chunk_rounds_away_another_clients_update(monkeypatch):
    """dlogits(shift_once=True) subtracts client A's top logit (63) from client B's logits (~1e-3).

    B's shifted logits round to ulp(63) / 2 = 1.9e-6 instead of being exact (the loop
    subtracts B's own row maximum), so B's update depends on A being in its chunk:
    off by 4.5e-6 where the loop is within 6e-7 of the float64 oracle (B alone: 3e-8).
    """
    monkeypatch.setattr(cache, "DUAL", "always")
    kernel = np.zeros((DIM, CLASSES), np.float32)
    kernel[0, 0] = 1
    weights = AllEqual(ModelWeights([kernel, np.zeros(CLASSES, np.float32)], []))
    a = [(np.array([[63, 0, 0, 0, 0, 0]], np.float32), np.array([0], np.int32))]
    xb = np.zeros((3, DIM), np.float32)
    xb[:, 0], xb[:, 1] = [1.1e-3, -0.7e-3, 0.3e-3], 32  # near-uniform softmax, labels 0, 1, 2: the update cancels
    b = [(xb, np.array([0, 1, 2], np.int32))]
    sgd = build_sgdm(1.0)
    assert_results_close(run_client_work("vectorized", [a, b], weights, sgd, clip=1e6),
                         run_client_work("loop", [a, b], weights, sgd, clip=1e6))


def test_a_client_twice_in_one_round_does_not_break_the_gram_budget(monkeypatch):
    """The same dataset twice in a round: `client_grams.assemble` computes its Gram matrix for both slots;
    counting its bytes twice for one entry would never return the extra bytes, and eviction would pop an
    empty OrderedDict (KeyError) once they exceed GRAM_BYTES (here 0: keep no client's Gram). Pre-existing."""
    monkeypatch.setattr(client_grams, "GRAM_BYTES", 0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, DIM)).astype(np.float32), rng.integers(0, CLASSES, 9).astype(np.int32)
    x.flags.writeable = y.flags.writeable = False
    train = ClientData.from_arrays({"a": collections.OrderedDict(x=x, y=y)})
    weights = AllEqual(weights_with_scale(rng, 1.0))
    for _ in range(3):  # stepped when first seen, then in dual form
        dataset = train.create_dataset_for_client("a").batch(4).map(lambda e: (e["x"], e["y"].reshape(-1, 1)))
        lists = [[(np.array(bx), np.array(by)) for bx, by in dataset]] * 2
        assert_results_close(run_client_work("vectorized", [dataset, dataset], weights),
                             run_client_work("loop", lists, weights))


def test_rows_whose_gram_overflows_float32_give_the_loops_finite_update(monkeypatch):
    """Rows ~1e19 (finite, nearly parallel): K = X X^T + 1 overflows float32 to inf, so the clip norm is inf,
    the step's rate 0 and the next step's correction K_10 U_0 is inf * 0 = NaN. The loop's float32 norm
    overflows too, so it steps by 0 and its update is finite (0); no input is non-finite. Pre-existing
    (5028daf's full float32 Gram did the same)."""
    monkeypatch.setattr(cache, "DUAL", "always")
    rng = np.random.default_rng(1)
    x = ((1 + 0.1 * rng.normal(size=(6, DIM))) * 1e19).astype(np.float32)
    y = rng.integers(0, CLASSES, 6).astype(np.int32)
    data = [[(x[:3], y[:3]), (x[3:], y[3:])]]
    weights = AllEqual(weights_with_scale(rng, 1.0))
    assert_results_close(run_client_work("vectorized", data, weights), run_client_work("loop", data, weights))
