"""Semantics of the tutorial's algorithm: hand-computed rounds and properties against an oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import oracle
from fl_blocks.algorithms import build_fed_avg_with_clipping
from fl_blocks.models import ModelWeights, SoftmaxRegression
from fl_blocks.optimizers import build_sgdm


def tiny_process(client_lr=0.1, server_lr=1.0, clip=1.0, dim=1, classes=2):
    return build_fed_avg_with_clipping(
        lambda: SoftmaxRegression(dim, classes), build_sgdm(client_lr), build_sgdm(server_lr), clip_norm=clip
    )


def start(process, kernel, bias):
    weights = ModelWeights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)], [])
    return process.set_model_weights(process.initialize(), weights)


def batch(xs, ys):
    return (np.array(xs, np.float32).reshape(len(xs), -1), np.array(ys).reshape(-1, 1))


def test_one_round_two_tiny_clients_by_hand():
    # Zero weights: p = [1/2, 1/2] for every input.
    # Client A: x=1, y=0 -> grad kernel [[-1/2, 1/2]], bias [-1/2, 1/2]; norm 1, not clipped.
    #   trained (lr 0.1) = +-0.05, update = initial - trained = [[-0.05, 0.05]], [-0.05, 0.05]; weight 1.
    # Client B: two copies of x=2, y=1 -> grad kernel [[1, -1]], bias [1/2, -1/2]; norm sqrt(2.5) > 1,
    #   clipped by 1/sqrt(2.5): update = 0.1/sqrt(2.5) * ([[1, -1]], [1/2, -1/2]); weight 2.
    # Weighted mean, then server SGD lr 1: new = 0 - mean update.
    process = tiny_process()
    state = start(process, [[0.0, 0.0]], [0.0, 0.0])
    clients = [[batch([1.0], [0])], [batch([2.0, 2.0], [1, 1])]]
    state, metrics = process.next(state, clients)
    s = 0.1 / np.sqrt(2.5)
    mean_kernel = (1 * -0.05 + 2 * s) / 3
    mean_bias = (1 * -0.05 + 2 * s / 2) / 3
    kernel, bias = process.get_model_weights(state).trainable
    np.testing.assert_allclose(kernel, [[-mean_kernel, mean_kernel]], rtol=1e-6)
    np.testing.assert_allclose(bias, [-mean_bias, mean_bias], rtol=1e-6)
    assert metrics["finalizer"]["update_non_finite"] == 0
    assert list(metrics) == ["distributor", "client_work", "aggregator", "finalizer"]


def random_clients(rng, num_clients, dim, classes, batch_size):
    clients = []
    for _ in range(num_clients):
        n = int(rng.integers(1, 3 * batch_size))
        x = rng.normal(scale=3.0, size=(n, dim)).astype(np.float32)
        y = rng.integers(0, classes, size=(n, 1)).astype(np.int32)
        clients.append([(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)])
    return clients


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.1, 3.0), st.floats(0.01, 0.5), st.floats(0.1, 2.0))
def test_rounds_match_independent_oracle(seed, clip, client_lr, server_lr):
    rng = np.random.default_rng(seed)
    dim, classes = 6, 3
    clients = random_clients(rng, int(rng.integers(1, 5)), dim, classes, batch_size=4)
    process = build_fed_avg_with_clipping(
        lambda: SoftmaxRegression(dim, classes, seed=seed % 1000), build_sgdm(client_lr), build_sgdm(server_lr), clip
    )
    state = process.initialize()
    kernel, bias = (w.astype(np.float64) for w in process.get_model_weights(state).trainable)
    for _ in range(2):
        state, _ = process.next(state, clients)
        kernel, bias = oracle.fed_avg_round(kernel, bias, clients, client_lr, server_lr, clip)
        got_kernel, got_bias = process.get_model_weights(state).trainable
        np.testing.assert_allclose(got_kernel, kernel, atol=2e-5)
        np.testing.assert_allclose(got_bias, bias, atol=2e-5)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_server_lr_zero_leaves_weights_unchanged(seed):
    rng = np.random.default_rng(seed)
    process = build_fed_avg_with_clipping(lambda: SoftmaxRegression(6, 3, seed=1), build_sgdm(0.3), build_sgdm(0.0))
    state = process.initialize()
    before = process.get_model_weights(state)
    state, _ = process.next(state, random_clients(rng, 3, 6, 3, 4))
    after = process.get_model_weights(state)
    for b, a in zip(before.trainable, after.trainable):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.1, 3.0))
def test_one_client_with_server_lr_one_equals_its_local_training(seed, clip):
    rng = np.random.default_rng(seed)
    [client] = random_clients(rng, 1, 6, 3, 4)
    process = build_fed_avg_with_clipping(lambda: SoftmaxRegression(6, 3, seed=2), build_sgdm(0.2), build_sgdm(1.0), clip)
    state = process.initialize()
    kernel, bias = process.get_model_weights(state).trainable
    state, _ = process.next(state, [client])
    local_kernel, local_bias = oracle.local_training(kernel, bias, client, 0.2, clip)
    got_kernel, got_bias = process.get_model_weights(state).trainable
    np.testing.assert_allclose(got_kernel, local_kernel, atol=1e-5)
    np.testing.assert_allclose(got_bias, local_bias, atol=1e-5)


def test_empty_client_dataset_contributes_zero_weight():
    process = tiny_process()
    state = start(process, [[0.3, -0.2]], [0.1, 0.0])
    full = [[batch([1.0, -1.0], [0, 1])], [batch([2.0], [1])]]
    with_empty = full + [[]]
    state_a, _ = process.next(state, full)
    state_b, _ = process.next(state, with_empty)
    for a, b in zip(process.get_model_weights(state_a).trainable, process.get_model_weights(state_b).trainable):
        np.testing.assert_array_equal(a, b)


def test_empty_client_result_is_zero_update_with_zero_weight():
    from fl_blocks.algorithms import build_gradient_clipping_client_work

    work = build_gradient_clipping_client_work(lambda: SoftmaxRegression(1, 2, seed=5), build_sgdm(0.1))
    weights = SoftmaxRegression(1, 2, seed=5).initial_weights()
    [result] = work.next(work.initialize(), [weights], [[]]).result
    assert result.update_weight == 0 and result.update_weight.dtype == np.float32
    for leaf in result.update:
        np.testing.assert_array_equal(leaf, np.zeros_like(leaf))


def test_all_empty_clients_give_nan_mean_and_the_update_is_rejected():
    process = tiny_process()
    state = start(process, [[0.3, -0.2]], [0.1, 0.0])
    new_state, metrics = process.next(state, [[], []])
    assert metrics["finalizer"]["update_non_finite"] == 1
    for a, b in zip(process.get_model_weights(new_state).trainable, process.get_model_weights(state).trainable):
        np.testing.assert_array_equal(a, b)


def test_non_finite_data_is_rejected_and_weights_kept():
    process = tiny_process()
    state = start(process, [[0.3, -0.2]], [0.1, 0.0])
    new_state, metrics = process.next(state, [[batch([np.nan], [0])], [batch([1.0], [1])]])
    assert metrics["finalizer"]["update_non_finite"] == 1
    assert new_state.finalizer == state.finalizer
    for a, b in zip(process.get_model_weights(new_state).trainable, process.get_model_weights(state).trainable):
        np.testing.assert_array_equal(a, b)


def test_empty_client_list_raises():
    process = tiny_process()
    with pytest.raises(ValueError, match="client_data is empty"):
        process.next(process.initialize(), [])


def test_bad_batch_names_client_and_batch():
    process = tiny_process()
    good = batch([1.0], [0])
    with pytest.raises(ValueError, match=r"client 1, batch 1: label 5 is outside \[0, 2\)"):
        process.next(process.initialize(), [[good], [good, batch([1.0], [5])]])
    with pytest.raises(ValueError, match=r"client 0, batch 0: batch x must be float32"):
        process.next(process.initialize(), [[(np.ones((1, 1), np.float64), np.zeros((1, 1), int))]])


def test_datasets_are_reiterated_each_round_and_inputs_not_mutated():
    process = tiny_process()
    state = start(process, [[0.0, 0.0]], [0.0, 0.0])
    x, y = batch([1.0, 2.0], [0, 1])
    x_copy = x.copy()
    kernel_before = process.get_model_weights(state).trainable[0].copy()
    state1, _ = process.next(state, [[(x, y)]])
    state2, _ = process.next(state1, [[(x, y)]])
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(process.get_model_weights(state).trainable[0], kernel_before)
    assert not np.array_equal(process.get_model_weights(state2).trainable[0], process.get_model_weights(state1).trainable[0])


def test_momentum_server_optimizer_state_is_tff_shaped():
    process = build_fed_avg_with_clipping(lambda: SoftmaxRegression(1, 2), build_sgdm(0.1), build_sgdm(1.0, momentum=0.9))
    state = process.initialize()
    assert list(state.finalizer) == ["learning_rate", "momentum", "accumulator"]
    hparams = process.get_hparams(state)
    assert hparams["finalizer"] == {"learning_rate": 1.0, "momentum": 0.9}
    state = process.set_hparams(state, {"client_work": {}, "finalizer": {"learning_rate": 0.5, "momentum": 0.9}})
    assert state.finalizer["learning_rate"] == 0.5


def test_one_shot_iterator_dataset_is_refused_not_silently_dropped():
    process = tiny_process()
    with pytest.raises(TypeError, match="client 0: the dataset is a one-shot iterator"):
        process.next(process.initialize(), [iter([batch([1.0], [0])])])


@pytest.mark.parametrize(
    "dataset, match",
    [
        (None, "client 0: a dataset must be an iterable of \\(x, y\\) batches, got NoneType"),
        ([{"pixels": np.ones((1, 1), np.float32), "label": np.zeros(1, int)}], "got a dict with keys \\['pixels', 'label'\\]"),
        (batch([1.0], [0]), "client 0, batch 0: expected a batch \\(x, y\\), got ndarray"),
        ([(np.ones((1, 1, 1), np.float32), np.zeros((1, 1), int))], "client 0, batch 0: batch x must be float32 \\[B, 1\\]"),
    ],
)
def test_bad_dataset_structure_is_named(dataset, match):
    process = tiny_process()
    with pytest.raises((TypeError, ValueError), match=match):
        process.next(process.initialize(), [dataset])


def test_label_shapes_and_integer_types_give_the_same_round():
    process = tiny_process(dim=2, classes=3)
    state = start(process, [[0.1, 0.0, -0.1], [0.2, 0.3, 0.0]], [0.0, 0.1, 0.0])
    x = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]], np.float32)
    results = []
    for y in (np.array([[0], [2], [1]], np.int32), np.array([0, 2, 1], np.int64), np.array([0, 2, 1], np.uint8)):
        new_state, _ = process.next(state, [[(x, y)], [{"x": x, "y": y}]])
        results.append(process.get_model_weights(new_state).trainable)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_rejected_round_keeps_momentum_state_for_the_next_round():
    process = build_fed_avg_with_clipping(lambda: SoftmaxRegression(1, 2), build_sgdm(0.1), build_sgdm(0.5, momentum=0.9))
    state = start(process, [[0.2, -0.1]], [0.0, 0.0])
    good = [[batch([1.0, -1.0], [0, 1])], [batch([2.0], [1])]]
    state1, _ = process.next(state, good)
    rejected, metrics = process.next(state1, [[batch([np.inf], [0])]])
    assert metrics["finalizer"]["update_non_finite"] == 1
    np.testing.assert_array_equal(rejected.finalizer["accumulator"][0], state1.finalizer["accumulator"][0])
    after_rejected, _ = process.next(rejected, good)
    direct, _ = process.next(state1, good)
    for a, b in zip(process.get_model_weights(after_rejected).trainable, process.get_model_weights(direct).trainable):
        np.testing.assert_array_equal(a, b)


def test_float64_update_cannot_silently_change_weight_dtype():
    from fl_blocks.specs import spec_of
    from fl_blocks.templates import build_apply_optimizer_finalizer

    weights = ModelWeights([np.zeros(2, np.float32)], [])
    finalizer = build_apply_optimizer_finalizer(build_sgdm(1.0), spec_of(weights))
    with pytest.raises(ValueError, match=r"gradient float64\[2\] does not match weight float32\[2\]"):
        finalizer.next(finalizer.initialize(), weights, [np.zeros(2, np.float64)])
