"""Hot-path rewrites that must give the very values of the plain NumPy expression they replace."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from fl_blocks.execution import dual
from fl_blocks.execution.lockstep import dlogits
from fl_blocks.simulation.datasets.client_data import pixels_to_float32


def test_dlogits_softmax_shift_is_each_rows_own_maximum():
    logits = np.array([[[3.0, 1.0, 2.0, -1.0, 7.0]], [[-5.0, -9.0, -4.0, -4.5, -8.0]]], np.float32)
    onehot = np.zeros_like(logits, bool)
    onehot[:, :, 0] = True
    got = dlogits(logits.copy(), onehot, np.ones((2, 1, 1), np.float32), True, axis=2)
    exps = np.exp(logits.astype(np.float64) - logits.max(axis=2, keepdims=True))  # float64 oracle
    np.testing.assert_allclose(got, exps / exps.sum(axis=2, keepdims=True) - onehot, atol=1e-7)


def test_pixels_to_float32_gives_each_byte_over_255_in_float32():
    stored = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = np.array([np.float32(b) / np.float32(255) for b in range(256)], np.float32).reshape(16, 16)  # scalar by scalar
    out = pixels_to_float32({"label": np.int32(2), "pixels": stored})
    assert out["pixels"].dtype == np.float32 and list(out) == ["label", "pixels"]
    np.testing.assert_array_equal(out["pixels"], expected)
    assert pixels_to_float32({"label": 0, "pixels": np.uint8(51)})["pixels"] == expected.flat[51]  # one element's scalar


def test_pixels_to_float32_of_other_dtypes_converts_then_divides():
    for stored in (np.array([0.0, 0.5, 255.0]), np.array([0, 7, 300], np.int64), np.array([True, False])):
        out = pixels_to_float32({"label": 0, "pixels": stored})["pixels"]
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, stored.astype(np.float32) / np.float32(255))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 9), st.integers(1, 140), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_forward_of_a_shared_kernel_is_every_clients_product(count, rows, dim, seed):
    """One kernel broadcast to every client (one product for all rows) or one kernel per client: each row's
    logits to float32 rounding of the float64 oracle."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, rows, dim)).astype(np.float32)
    shared = np.broadcast_to(rng.normal(size=(dim, 3)).astype(np.float32), (count, dim, 3))
    for kernel in (shared, rng.normal(size=(count, dim, 3)).astype(np.float32)):
        got = dual.forward(x, kernel)
        oracle = np.matmul(x.astype(np.float64), kernel.astype(np.float64))
        bound = np.matmul(np.abs(x.astype(np.float64)), np.abs(kernel.astype(np.float64))) * dim * 2.0 ** -23
        assert got.shape == oracle.shape and got.dtype == np.float32
        assert (np.abs(got - oracle) <= bound).all()


def test_forward_keeps_the_kernels_dtype():
    x = np.ones((5, 3, 4), np.float32)
    kernel = np.broadcast_to(np.arange(8.0).reshape(4, 2), (5, 4, 2))  # float64
    got = dual.forward(x, kernel)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.matmul(x, kernel))


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(0, 70), min_size=1, max_size=12), batch=st.integers(1, 32), drop=st.booleans(),
       max_rows=st.integers(1, 200))
def test_widest_batch_is_read_once_and_groups_keep_within_max_rows(counts, batch, drop, max_rows):
    """A client's `widest` is its largest batch (0 without batches), for plans and for batch lists alike, and
    `group_clients` keeps every group of two or more clients within `max_rows` padded by-client rows."""
    import collections
    from fl_blocks.execution.layout import client_source, group_clients
    from fl_blocks.models import SoftmaxRegression
    from fl_blocks.simulation.datasets import ClientData

    rng = np.random.default_rng(len(counts) * 100 + batch)
    columns = collections.OrderedDict(
        (f"c{i}", collections.OrderedDict(label=rng.integers(0, 3, n).astype(np.int32), pixels=rng.random((n, 4)).astype(np.float32)))
        for i, n in enumerate(counts))
    data = ClientData.from_arrays(columns)
    model = SoftmaxRegression(4, 3)
    plans = [data.create_dataset_for_client(c).batch(batch, drop).map(lambda e: (e["pixels"], e["label"])) for c in columns]
    lists = [[(e["pixels"][i:i + batch], e["label"][i:i + batch]) for i in range(0, len(e["label"]), batch)
              if not drop or i + batch <= len(e["label"])] for e in columns.values()]
    for datasets in (plans, lists):
        sources = [client_source(model, d, i) for i, d in enumerate(datasets)]
        assert [s.widest for s in sources] == [int(s.sizes.max(initial=0)) for s in sources]
        for group in group_clients(sources, max_rows):
            padded = len(group) * max(len(s.sizes) for s in group) * max(int(s.sizes.max()) for s in group)
            assert len(group) == 1 or padded <= max_rows
