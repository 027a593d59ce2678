"""Property tests of global-norm clipping, and that the client work really clips."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fl_blocks.algorithms.gradient_clipping import clip_by_global_norm, global_norm

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)
grads = st.tuples(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 4)), elements=finite),
    hnp.arrays(np.float64, st.integers(1, 4), elements=finite),
)
clip_norms = st.floats(1e-3, 1e3)


def _norm(tensors):
    return float(np.sqrt(sum((t.astype(np.float64) ** 2).sum() for t in tensors)))


@given(grads, clip_norms)
def test_clipped_norm_is_at_most_clip_norm(g, c):
    assert _norm(clip_by_global_norm(g, c)) <= c * (1 + 1e-12)


@given(grads, clip_norms)
def test_direction_is_preserved(g, c):
    clipped = clip_by_global_norm(g, c)
    n = _norm(g)
    if n == 0:
        return
    scale = _norm(clipped) / n
    assert 0 < scale <= 1 + 1e-12
    for original, new in zip(g, clipped):
        np.testing.assert_allclose(new, original * scale, rtol=1e-9, atol=1e-12)


@given(grads, clip_norms)
def test_no_op_when_norm_within_clip(g, c):
    if _norm(g) <= c:
        for original, new in zip(g, clip_by_global_norm(g, c)):
            np.testing.assert_array_equal(new, original)


@given(grads, clip_norms, st.floats(1e-2, 1e2))
def test_scale_equivariance(g, c, a):
    scaled = clip_by_global_norm([t * a for t in g], c * a)
    for left, right in zip(scaled, clip_by_global_norm(g, c)):
        np.testing.assert_allclose(left, right * a, rtol=1e-9, atol=1e-9 * a)


def test_global_norm_matches_definition():
    g = [np.array([[3.0, 0.0]], np.float32), np.array([4.0], np.float32)]
    assert global_norm(g) == 5.0
    assert global_norm(g).dtype == np.float32


@settings(max_examples=20, deadline=None)
@given(st.floats(0.05, 2.0), st.integers(0, 2**16))
def test_client_work_step_never_exceeds_lr_times_clip(clip, seed):
    """With one batch, the local move is at most lr * clip in global norm."""
    from fl_blocks.algorithms import build_gradient_clipping_client_work
    from fl_blocks.models import SoftmaxRegression
    from fl_blocks.optimizers import build_sgdm

    rng = np.random.default_rng(seed)
    model_fn = lambda: SoftmaxRegression(6, 3, seed=seed)  # noqa: E731
    work = build_gradient_clipping_client_work(model_fn, build_sgdm(0.5), clip_norm=clip)
    x = (rng.normal(size=(4, 6)) * 50).astype(np.float32)
    y = rng.integers(0, 3, size=(4, 1))
    weights = model_fn().initial_weights()
    result = work.next(work.initialize(), [weights], [[(x, y)]]).result[0]
    assert _norm(result.update) <= 0.5 * clip * (1 + 1e-5)
    assert result.update_weight == 4


@given(st.lists(grads, min_size=1, max_size=4).filter(lambda gs: len({tuple(t.shape for t in g) for g in gs}) == 1), clip_norms)
def test_client_axis_clips_each_client_as_alone(clients, c):
    stacked = [np.stack([g[i] for g in clients]) for i in range(2)]
    together = clip_by_global_norm(stacked, c, client_axis=True)
    norms = global_norm(stacked, client_axis=True)
    for k, g in enumerate(clients):
        np.testing.assert_allclose(norms[k], _norm(g), rtol=1e-12)
        for leaf, alone in zip(together, clip_by_global_norm(g, c)):
            np.testing.assert_allclose(leaf[k], alone, rtol=1e-12, atol=1e-300)
