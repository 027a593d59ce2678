"""Shared test helpers: the shared EMNIST data (skipped when absent) and tiny clients."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from hypothesis import settings

# Property tests are reproducible by default: the same examples on every run, so CI cannot flake.
# `python -m pytest --hypothesis-profile=explore` draws fresh random examples to hunt for new failures.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("deterministic")

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
DATA_NPZ = SHARED / "data" / "femnist_leaf_subset.npz"
TFF_REFERENCE = SHARED / "tff_reference"
GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"


@pytest.fixture
def empty_cache():
    """The executors' cross-round cache, emptied before and after the test (use: ``pytestmark``)."""
    from fl_blocks.execution import cache

    cache.clear()
    yield
    cache.clear()


def require(path: pathlib.Path) -> pathlib.Path:
    """Skips the calling test, with the reason, when a shared file is absent."""
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (it sits in ../shared beside the repo)")
    return path


def emnist_client_batches(client_ids, batch_size: int, all_classes: bool = False):
    """The tutorial's client datasets from the shared npz: lists of (x float32 [B,784], y int32 [B,1])."""
    with np.load(require(DATA_NPZ), allow_pickle=False) as data:
        ids = list(data["train_client_ids"])
        offsets = data["train_offsets"]
        pixels, labels = data["train_pixels"], data["train_labels"]
    clients = []
    for client_id in client_ids:
        i = ids.index(str(client_id))
        px, lb = pixels[offsets[i]:offsets[i + 1]], labels[offsets[i]:offsets[i + 1]]
        if not all_classes:
            px, lb = px[lb < 10], lb[lb < 10]
        x = (px.astype(np.float32) / np.float32(255)).reshape(-1, 784)
        y = lb.astype(np.int32).reshape(-1, 1)
        clients.append([(x[s:s + batch_size], y[s:s + batch_size]) for s in range(0, len(x), batch_size)])
    return clients
