"""Golden tests: the tutorial's algorithm against real TFF 0.87 outputs.

Each reference starts from TFF's own initial weights `w0` and records the
global weights after every round. They come from real TFF
(`benchmarks/tff_reference/make_clip_reference.py`), never from this code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import GOLDEN, TFF_REFERENCE, emnist_client_batches, require
from fl_blocks.algorithms import build_fed_avg_with_clipping
from fl_blocks.models import ModelWeights, SoftmaxRegression
from fl_blocks.optimizers import build_sgdm

REFERENCES = [TFF_REFERENCE / "seed_clip_r3.npz"] + sorted(GOLDEN.glob("clip_*.npz"))


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.name)
def test_matches_tff_every_round(path):
    with np.load(require(path), allow_pickle=False) as ref:
        ref = dict(ref)
    config = json.loads(str(ref["config"]))
    num_classes = 62 if config["all_classes"] else 10
    clients = emnist_client_batches(ref["client_ids"], config["batch"], config["all_classes"])
    momentum = config.get("server_momentum") or None
    process = build_fed_avg_with_clipping(
        lambda: SoftmaxRegression(784, num_classes),
        build_sgdm(config["client_lr"]),
        build_sgdm(config["server_lr"], momentum=momentum),
        clip_norm=config["clip"],
    )
    state = process.set_model_weights(process.initialize(), ModelWeights([ref["w0_kernel"], ref["w0_bias"]], []))
    tff_metrics = [json.loads(m) for m in ref["metrics"]]
    for round_num in range(1, config["rounds"] + 1):
        state, metrics = process.next(state, clients)
        kernel, bias = process.get_model_weights(state).trainable
        assert kernel.dtype == np.float32 and bias.dtype == np.float32
        np.testing.assert_allclose(kernel, ref[f"w{round_num}_kernel"], rtol=0, atol=1e-6, err_msg=f"round {round_num}")
        np.testing.assert_allclose(bias, ref[f"w{round_num}_bias"], rtol=0, atol=1e-6, err_msg=f"round {round_num}")
        # Same metric names and structure as TFF (tuples print as JSON lists).
        assert json.loads(json.dumps(metrics)) == tff_metrics[round_num - 1]


def test_golden_files_are_present():
    """At least two extra TFF configurations are committed beside the shared seed one."""
    assert len(list(GOLDEN.glob("clip_*.npz"))) >= 2
