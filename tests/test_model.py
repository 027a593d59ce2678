"""`SoftmaxRegression` against finite differences and an independent per-example oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fl_blocks.models import ModelWeights, SoftmaxRegression
from oracle import example_loss_and_grads


def random_problem(seed, dim=5, classes=4, batch=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(dim, classes)).astype(dtype)
    bias = rng.normal(size=classes).astype(dtype)
    x = rng.normal(size=(batch, dim)).astype(dtype)
    y = rng.integers(0, classes, size=batch)
    return [kernel, bias], x, y


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_gradients_match_finite_differences(seed):
    model = SoftmaxRegression(5, 4)
    trainable, x, y = random_problem(seed)
    _, grads = model.loss_and_gradients(trainable, x, y)
    eps = 1e-6
    for leaf, grad in zip(range(2), grads):
        numeric = np.zeros_like(grad)
        for index in np.ndindex(grad.shape):
            plus = [t.copy() for t in trainable]
            minus = [t.copy() for t in trainable]
            plus[leaf][index] += eps
            minus[leaf][index] -= eps
            numeric[index] = (model.loss_and_gradients(plus, x, y)[0] - model.loss_and_gradients(minus, x, y)[0]) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_loss_and_gradients_match_per_example_oracle(seed):
    model = SoftmaxRegression(5, 4)
    (kernel, bias), x, y = random_problem(seed)
    loss, (gk, gb) = model.loss_and_gradients([kernel, bias], x, y)
    results = [example_loss_and_grads(kernel, bias, xi, int(yi)) for xi, yi in zip(x, y)]
    np.testing.assert_allclose(loss, np.mean([r[0] for r in results]), rtol=1e-12)
    np.testing.assert_allclose(gk, np.mean([r[1] for r in results], 0), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gb, np.mean([r[2] for r in results], 0), rtol=1e-10, atol=1e-14)


def test_loss_is_stable_for_huge_logits_and_clipped_as_keras():
    model = SoftmaxRegression(2, 3)
    trainable = [np.array([[1e4, 0, -1e4], [0, 0, 0]], np.float32), np.zeros(3, np.float32)]
    x, y = model.check_batch(np.array([[1.0, 0.0]], np.float32), np.array([2]))
    loss, grads = model.loss_and_gradients(trainable, x, y)
    # p = [1, 0, 0] is clipped to [1 - 1e-7, 1e-7, 1e-7]: loss = -log(1e-7 / (1 + 1e-7)), and no gradient flows.
    np.testing.assert_allclose(loss, -np.log(1e-7 / (1 + 1e-7)), rtol=1e-6)
    for g in grads:
        np.testing.assert_array_equal(g, np.zeros_like(g))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_clipped_regime_matches_oracle_and_finite_differences(seed):
    """Large logits, so some probabilities fall below 1e-7 and are clipped as Keras does."""
    model = SoftmaxRegression(5, 4)
    (kernel, bias), x, y = random_problem(seed)
    kernel = kernel * 8
    logits = x @ kernel + bias
    assume((np.exp(logits - logits.max(1, keepdims=True)) / np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)).min() < 1e-7)
    loss, (gk, gb) = model.loss_and_gradients([kernel, bias], x, y)
    results = [example_loss_and_grads(kernel, bias, xi, int(yi)) for xi, yi in zip(x, y)]
    # The loss can be as small as -log(1 - 1e-7) ~ 1e-7, where float64 log rounding alone is ~1e-17.
    np.testing.assert_allclose(loss, np.mean([r[0] for r in results]), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gk, np.mean([r[1] for r in results], 0), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(gb, np.mean([r[2] for r in results], 0), rtol=1e-8, atol=1e-12)
    eps = 1e-7
    numeric = np.zeros_like(gb)
    for k in range(4):
        step = np.zeros(4)
        step[k] = eps
        numeric[k] = (model.loss_and_gradients([kernel, bias + step], x, y)[0]
                      - model.loss_and_gradients([kernel, bias - step], x, y)[0]) / (2 * eps)
    np.testing.assert_allclose(gb, numeric, rtol=1e-4, atol=1e-6)


def test_leading_client_axis_broadcasts():
    model = SoftmaxRegression(5, 4)
    problems = [random_problem(seed) for seed in range(3)]
    kernel = np.stack([p[0][0] for p in problems])
    bias = np.stack([p[0][1] for p in problems])
    x = np.stack([p[1] for p in problems])
    y = np.stack([p[2] for p in problems])
    loss, (gk, gb) = model.loss_and_gradients([kernel, bias], x, y)
    for c, (trainable, xc, yc) in enumerate(problems):
        loss_c, (gk_c, gb_c) = model.loss_and_gradients(trainable, xc, yc)
        np.testing.assert_allclose(loss[c], loss_c, rtol=1e-12)
        np.testing.assert_allclose(gk[c], gk_c, rtol=1e-12)
        np.testing.assert_allclose(gb[c], gb_c, rtol=1e-12)


def test_initial_weights_keras_layout_and_glorot_scale():
    weights = SoftmaxRegression(784, 10, seed=3).initial_weights()
    assert isinstance(weights, ModelWeights) and weights.non_trainable == []
    kernel, bias = weights.trainable
    assert kernel.shape == (784, 10) and kernel.dtype == np.float32
    np.testing.assert_array_equal(bias, np.zeros(10, np.float32))
    target = np.sqrt(2.0 / (784 + 10))
    assert abs(kernel.std() - target) / target < 0.05
    assert np.abs(kernel).max() <= 2 * target / 0.87962566103423978 + 1e-6
    np.testing.assert_array_equal(kernel, SoftmaxRegression(784, 10, seed=3).initial_weights().trainable[0])
    assert not np.array_equal(kernel, SoftmaxRegression(784, 10, seed=4).initial_weights().trainable[0])


def test_batch_metrics_count_correct_predictions():
    model = SoftmaxRegression(2, 2)
    trainable = [np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.zeros(2, np.float32)]
    x, y = model.check_batch(np.array([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0]], np.float32), np.array([[0], [1], [1]]))
    loss_sum, correct, count = model.batch_metrics(trainable, x, y)
    assert (int(correct), count) == (2, 3)
    expected = 2 * np.log1p(np.exp(-2.0)) + np.log1p(np.exp(3.0))
    np.testing.assert_allclose(loss_sum, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "x, y, match",
    [
        (np.zeros((2, 784), np.float64), np.zeros(2, int), "float32"),
        (np.zeros((2, 28, 28), np.float32), np.zeros(2, int), r"float32 \[B, 784\]"),
        (np.zeros((2, 784), np.float32), np.zeros(3, int), "matching x"),
        (np.zeros((2, 784), np.float32), np.zeros(2, np.float32), "integer"),
        (np.zeros((2, 784), np.float32), np.array([0, 10]), r"label 10 is outside \[0, 10\)"),
        (np.zeros((2, 784), np.float32), np.array([[-1], [0]]), r"label -1 is outside"),
    ],
)
def test_bad_batches_raise_clear_errors(x, y, match):
    with pytest.raises(ValueError, match=match):
        SoftmaxRegression(784, 10).check_batch(x, y)


def test_loss_and_gradients_match_real_tff_keras_model():
    """Golden: TFF's from_keras_model forward pass (benchmarks/tff_reference/make_loss_reference.py)."""
    from conftest import GOLDEN

    with np.load(GOLDEN / "keras_loss.npz", allow_pickle=False) as ref:
        ref = dict(ref)
    cases = sorted({key.split("_")[0] for key in ref if key.endswith("_loss")})
    assert len(cases) >= 5
    for case in cases:
        kernel, bias = ref[f"{case}_kernel"], ref[f"{case}_bias"]
        model = SoftmaxRegression(*kernel.shape)
        x, y = model.check_batch(ref[f"{case}_x"], ref[f"{case}_y"])
        loss, (gk, gb) = model.loss_and_gradients([kernel, bias], x, y)
        np.testing.assert_allclose(loss, ref[f"{case}_loss"], rtol=1e-6, err_msg=case)
        np.testing.assert_allclose(gk, ref[f"{case}_gkernel"], rtol=1e-5, atol=1e-7, err_msg=case)
        np.testing.assert_allclose(gb, ref[f"{case}_gbias"], rtol=1e-5, atol=1e-7, err_msg=case)
