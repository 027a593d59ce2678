"""The dual form's pieces against independent float64 oracles: Gram matrices and batch clip norms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fl_blocks.execution import dual


def oracle_squared_norm(grads: np.ndarray, rows: np.ndarray) -> float:
    """``|G^T X|^2 + |G^T 1|^2`` in float64 from the rows: the squared norm of the kernel and bias gradients."""
    g, x = grads.astype(np.float64), rows.astype(np.float64)
    kernel, bias = g.T @ x, g.sum(axis=0)
    return float((kernel**2).sum() + (bias**2).sum())


def test_grams_of_packs_the_lower_block_triangle_of_x_x_transposed_plus_one():
    rng = np.random.default_rng(0)
    x = rng.random((3, 4 * 2, 5)).astype(np.float32)
    full = np.einsum("cid,cjd->cij", x.astype(np.float64), x.astype(np.float64)) + 1
    packed = dual.grams_of(x, width=2)
    assert packed.shape == (3, 2 * 2 * (1 + 2 + 3 + 4))
    for k in range(4):
        np.testing.assert_allclose(dual.panel(packed, k, 2), full[:, 2 * k:2 * k + 2, :2 * k + 2], rtol=1e-6)


def test_fewer_batches_use_a_prefix_of_the_packed_panels():
    rng = np.random.default_rng(4)
    x = rng.random((1, 3 * 2, 5)).astype(np.float32)
    np.testing.assert_array_equal(dual.grams_of(x[:, :4], 2)[0], dual.grams_of(x, 2)[0, :dual.panel_span(1, 2).stop])


def diagonal_block(packed: np.ndarray, k: int, width: int) -> np.ndarray:
    return dual.panel(packed, k, width)[:, :, k * width:]


def test_grams_of_diagonal_blocks_are_float64_products_rounded():
    rng = np.random.default_rng(1)
    x = (rng.random((2, 6, 50)) * 255).astype(np.float32)
    grams = dual.grams_of(x, width=3)
    for k in range(2):
        block = x[:, 3 * k:3 * k + 3].astype(np.float64)
        rounded = (np.einsum("cid,cjd->cij", block, block) + 1).astype(np.float32)
        np.testing.assert_array_equal(diagonal_block(grams, k, 3), rounded)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), width=st.integers(1, 6), scale=st.sampled_from([1.0, 255.0]))
def test_squared_norms_match_the_rows_oracle(seed, width, scale):
    rng = np.random.default_rng(seed)
    rows = (rng.random((4, width, 30)) * scale).astype(np.float32)
    grads = rng.normal(size=(4, width, 3)).astype(np.float32)
    gram = diagonal_block(dual.grams_of(rows, width), 0, width)
    got = dual._squared_norms(grads.transpose(0, 2, 1), gram, rows)  # it takes them class-major
    expected = [oracle_squared_norm(g, r) for g, r in zip(grads, rows)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def cancelling_batch() -> tuple[np.ndarray, np.ndarray]:
    """Near-duplicate pixel rows with gradients summing to almost zero: ``<G K G>`` cancels almost entirely."""
    rng = np.random.default_rng(2)
    rows = (np.float32(255) + rng.normal(scale=0.02, size=(1, 3, 784))).astype(np.float32)
    grads = np.array([[[0.4, -0.2, -0.2], [-0.2, 0.4, -0.2], [-0.2, -0.2, 0.4]]], np.float32)
    return grads, rows


def test_squared_norm_is_exact_where_gradient_rows_cancel():
    grads, rows = cancelling_batch()
    got = dual._squared_norms(grads.transpose(0, 2, 1), diagonal_block(dual.grams_of(rows, 3), 0, 3), rows)
    np.testing.assert_allclose(got, [oracle_squared_norm(grads[0], rows[0])], rtol=1e-9)


def test_the_cancelling_batch_needs_the_fallback():
    """``<G K G>`` from the float32 block alone is far off there (even negative on some BLAS kernels):
    the test above checks the fallback, not luck."""
    grads, rows = cancelling_batch()
    block = diagonal_block(dual.grams_of(rows, 3), 0, 3)[0].astype(np.float64)
    g = grads[0].astype(np.float64)
    from_block = float(((g @ g.T) * block).sum())
    assert abs(from_block - oracle_squared_norm(grads[0], rows[0])) > 0.01 * oracle_squared_norm(grads[0], rows[0])


@pytest.mark.parametrize("trusted", [0.0, dual._TRUSTED])
def test_fallback_and_block_agree_on_ordinary_batches(monkeypatch, trusted):
    rng = np.random.default_rng(3)
    rows = rng.random((5, 4, 20)).astype(np.float32)
    grads = rng.normal(size=(5, 4, 3)).astype(np.float32)
    monkeypatch.setattr(dual, "_TRUSTED", trusted)  # 0: every client from its rows
    got = dual._squared_norms(grads.transpose(0, 2, 1), diagonal_block(dual.grams_of(rows, 4), 0, 4), rows)
    np.testing.assert_allclose(got, [oracle_squared_norm(g, r) for g, r in zip(grads, rows)], rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.integers(0, 4), min_size=1, max_size=6), width=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_updates_by_batch_count_equal_the_float64_product_over_each_clients_own_rows(batches, width, seed):
    """Clients sorted by batch count (most first), each reading only its own batches' rows; whatever lies
    in the slots it leaves empty (here NaN) is not read, and a client without batches gets a zero update."""
    batches = sorted(batches, reverse=True)
    rng = np.random.default_rng(seed)
    steps, rows = batches[0], batches[0] * width
    u = rng.normal(size=(len(batches), 2, rows)).astype(np.float32)
    x = rng.normal(size=(len(batches), rows, 5)).astype(np.float32)
    for i, n in enumerate(batches):
        u[i, :, n * width:] = np.nan
        x[i, n * width:] = np.nan
    active = [sum(n > k for n in batches) for k in range(steps)]
    got = dual._by_batch_count(u, x, active, width)
    for i, n in enumerate(batches):
        expected = u[i, :, :n * width].astype(np.float64) @ x[i, :n * width].astype(np.float64)
        np.testing.assert_allclose(got[i], expected, rtol=1e-5, atol=1e-5)
