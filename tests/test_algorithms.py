"""Semantics of the learning algorithms on two tiny clients, with expected values computed by hand.

Model: softmax regression with 1 input and 2 classes, starting from zero
weights, so every probability is 1/2, every loss ln 2, and the gradient of
one example (x, y) is ``x * (1/2 - onehot(y))`` for the kernel and
``1/2 - onehot(y)`` for the bias (divided by the batch size).

Client A: one batch x=[[1]], y=[0]   -> SGD(0.1) update  kernel [[-0.05,  0.05]], bias [-0.05,  0.05]
Client B: one batch x=[[2],[2]], y=[1, 1] -> update      kernel [[ 0.1, -0.1 ]], bias [ 0.05, -0.05]
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_blocks.aggregators import MeanFactory, SumFactory, UnweightedMeanFactory
from fl_blocks.algorithms import (
    ClientWeighting,
    build_fed_eval,
    build_fed_sgd,
    build_unweighted_fed_avg,
    build_unweighted_fed_prox,
    build_weighted_fed_avg,
    build_weighted_fed_avg_with_optimizer_schedule,
    build_weighted_fed_prox,
    build_weighted_mime_lite,
)
from fl_blocks.models import ModelWeights, SoftmaxRegression
from fl_blocks.optimizers import build_sgdm
from fl_blocks.placements import AllEqual
from fl_blocks.templates import build_model_delta_client_work


class ZeroStart(SoftmaxRegression):
    def __init__(self) -> None:
        super().__init__(input_dim=1, num_classes=2)

    def initial_weights(self) -> ModelWeights:
        return ModelWeights([np.zeros((1, 2), np.float32), np.zeros(2, np.float32)], [])


def batch(xs, ys):
    return (np.array(xs, np.float32).reshape(-1, 1), np.array(ys, np.int32).reshape(-1, 1))


CLIENT_A = [batch([1.0], [0])]
CLIENT_B = [batch([2.0, 2.0], [1, 1])]
CLIENT_NAN = [batch([np.inf], [0])]
LN2 = math.log(2.0)


def weights_after_one_round(process, clients):
    output = process.next(process.initialize(), clients)
    kernel, bias = process.get_model_weights(output.state).trainable
    return kernel, bias, output.metrics


def test_weighted_fed_avg_one_round_by_hand():
    kernel, bias, metrics = weights_after_one_round(build_weighted_fed_avg(ZeroStart, build_sgdm(0.1)), [CLIENT_A, CLIENT_B])
    # mean update = (1 * update_A + 2 * update_B) / 3; server SGD(1.0): w = 0 - mean update
    np.testing.assert_allclose(kernel, [[-0.05, 0.05]], atol=1e-7)
    np.testing.assert_allclose(bias, [-0.05 / 3, 0.05 / 3], atol=1e-7)
    train = metrics["client_work"]["train"]
    assert list(train) == ["sparse_categorical_accuracy", "loss", "num_examples", "num_batches"]
    assert train["num_examples"] == 3 and train["num_batches"] == 2
    assert train["loss"] == pytest.approx(LN2, rel=1e-6)
    assert train["sparse_categorical_accuracy"] == pytest.approx(1 / 3)  # equal logits: argmax picks class 0
    assert dict(metrics["aggregator"]) == {"mean_value": (), "mean_weight": ()}
    assert dict(metrics["finalizer"]) == {"update_non_finite": 0}


def test_unweighted_fed_avg_ignores_the_number_of_examples():
    kernel, bias, metrics = weights_after_one_round(build_unweighted_fed_avg(ZeroStart, build_sgdm(0.1)), [CLIENT_A, CLIENT_B])
    np.testing.assert_allclose(kernel, [[-0.025, 0.025]], atol=1e-7)  # (update_A + update_B) / 2
    np.testing.assert_allclose(bias, [0.0, 0.0], atol=1e-7)
    assert dict(metrics["aggregator"]) == {"mean_value": (), "mean_count": ()}
    assert metrics["client_work"]["train"]["num_examples"] == 3  # metrics are summed without client weights


def test_non_finite_client_is_zeroed_with_weight_zero_and_metrics_reset():
    process = build_weighted_fed_avg(ZeroStart, build_sgdm(0.1))
    kernel, bias, metrics = weights_after_one_round(process, [CLIENT_A, CLIENT_NAN])
    np.testing.assert_allclose(kernel, [[0.05, -0.05]], atol=1e-7)  # only client A counts
    np.testing.assert_allclose(bias, [0.05, -0.05], atol=1e-7)
    train = metrics["client_work"]["train"]
    assert (train["num_examples"], train["num_batches"]) == (1, 1)
    assert train["loss"] == pytest.approx(LN2, rel=1e-6) and train["sparse_categorical_accuracy"] == 1.0
    assert metrics["finalizer"]["update_non_finite"] == 0


def test_non_finite_client_result_itself():
    client_work = build_model_delta_client_work(ZeroStart, build_sgdm(0.1), ClientWeighting.NUM_EXAMPLES)
    work_output = client_work.next(client_work.initialize(), AllEqual(ZeroStart().initial_weights()), [CLIENT_NAN])
    result = work_output.result[0]
    assert result.update_weight == np.float32(0.0)
    assert all(np.array_equal(u, np.zeros_like(u)) for u in result.update)
    assert work_output.measurements["train"]["num_examples"] == 0
    assert work_output.measurements["train"]["loss"] == 0.0  # Keras' divide_no_nan over zero examples


def test_fed_prox_keeps_a_non_finite_clients_metrics():
    _, _, metrics = weights_after_one_round(build_weighted_fed_prox(ZeroStart, 0.5, build_sgdm(0.1)), [CLIENT_A, CLIENT_NAN])
    train = metrics["client_work"]["train"]
    assert train["num_examples"] == 2 and math.isnan(train["loss"])


def test_all_clients_non_finite_is_rejected_by_the_finalizer():
    process = build_weighted_fed_avg(ZeroStart, build_sgdm(0.1))
    kernel, _, metrics = weights_after_one_round(process, [CLIENT_NAN])
    np.testing.assert_array_equal(kernel, np.zeros((1, 2)))  # 0 / 0 is NaN: the server keeps its weights
    assert metrics["finalizer"]["update_non_finite"] == 1


@pytest.mark.parametrize("weighted", [True, False])
def test_fed_prox_with_zero_strength_equals_fed_avg(weighted):
    clients = [[batch([1.0], [0]), batch([0.5], [1])], [batch([2.0, -1.0], [1, 0])]]
    prox = (build_weighted_fed_prox if weighted else build_unweighted_fed_prox)(ZeroStart, 0.0, build_sgdm(0.3))
    avg = (build_weighted_fed_avg if weighted else build_unweighted_fed_avg)(ZeroStart, build_sgdm(0.3))
    prox_state, avg_state = prox.initialize(), avg.initialize()
    for _ in range(2):
        prox_state, avg_state = prox.next(prox_state, clients).state, avg.next(avg_state, clients).state
    for a, b in zip(prox.get_model_weights(prox_state).trainable, avg.get_model_weights(avg_state).trainable):
        np.testing.assert_array_equal(a, b)


def test_fed_prox_adds_tff_proximal_term_on_the_second_step():
    mu, lr = 0.5, 0.1
    client = [batch([1.0], [0]), batch([1.0], [0])]
    kernel, bias, _ = weights_after_one_round(build_weighted_fed_prox(ZeroStart, mu, build_sgdm(lr)), [client])
    w1 = np.array([0.05, -0.05])  # kernel row and bias are equal here (x = 1)
    p = np.exp(2 * w1) / np.exp(2 * w1).sum()  # logits x * k + b = 2 * w1
    g = p - np.array([1.0, 0.0])
    w2 = w1 - lr * (g + mu * (0.0 - w1))  # TFF 0.87: + mu * (initial - current)
    np.testing.assert_allclose(kernel[0], -(0.0 - w2), atol=1e-7)  # server SGD(1.0) applies w - (w0 - w2) = w2
    np.testing.assert_allclose(bias, w2, atol=1e-7)


def test_fed_sgd_is_one_server_step_along_the_weighted_mean_gradient():
    kernel, bias, metrics = weights_after_one_round(build_fed_sgd(ZeroStart), [CLIENT_A, CLIENT_B])
    # gradients: A kernel [[-0.5, 0.5]], bias [-0.5, 0.5]; B kernel [[1, -1]], bias [0.5, -0.5]; weights 1 and 2
    mean_kernel, mean_bias = np.array([[0.5, -0.5]]), np.array([1 / 6, -1 / 6])
    np.testing.assert_allclose(kernel, -0.1 * mean_kernel, atol=1e-7)  # default server SGD(0.1)
    np.testing.assert_allclose(bias, -0.1 * mean_bias, atol=1e-7)
    assert metrics["client_work"]["train"]["num_batches"] == 2


def test_mime_lite_momentum_state_is_updated_at_the_server_only():
    process = build_weighted_mime_lite(ZeroStart, build_sgdm(0.1, momentum=0.9))
    output = process.next(process.initialize(), [CLIENT_A, CLIENT_B])
    accumulator = output.state.client_work[0]["accumulator"]
    np.testing.assert_allclose(accumulator[0], [[0.5, -0.5]], atol=1e-7)  # 0.9 * 0 + weighted mean full gradient
    np.testing.assert_allclose(accumulator[1], [1 / 6, -1 / 6], atol=1e-7)
    kernel, _ = process.get_model_weights(output.state).trainable
    np.testing.assert_allclose(kernel, [[-0.05, 0.05]], atol=1e-7)  # round 1 with accumulator 0 is FedAvg


def test_schedule_counts_rounds_and_reports_the_learning_rate():
    process = build_weighted_fed_avg_with_optimizer_schedule(ZeroStart, lambda r: 0.1 / (r + 1), lambda lr: build_sgdm(lr))
    state = process.initialize()
    rates = []
    for _ in range(3):
        output = process.next(state, [CLIENT_A])
        state = output.state
        rates.append(float(output.metrics["client_work"]["client_learning_rate"]))
    assert int(state.client_work) == 3
    assert rates == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert dict(process.get_hparams(state)["client_work"]) == {}


def test_fed_eval_accumulates_over_rounds_and_keeps_the_weights():
    process = build_fed_eval(ZeroStart)
    state = process.initialize()
    for round_num in (1, 2):
        output = process.next(state, [CLIENT_A, CLIENT_B])
        state = output.state
        evaluation = output.metrics["client_work"]["eval"]
        assert evaluation["current_round_metrics"]["num_examples"] == 3
        assert evaluation["total_rounds_metrics"]["num_examples"] == 3 * round_num
        assert evaluation["total_rounds_metrics"]["loss"] == pytest.approx(LN2, rel=1e-6)
        assert evaluation["current_round_metrics"]["sparse_categorical_accuracy"] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(process.get_model_weights(state).trainable[0], np.zeros((1, 2)))
    assert list(output.metrics) == ["distributor", "client_work", "aggregator", "finalizer"]
    assert output.metrics["finalizer"] == ()


def test_hparams_round_trip_and_take_effect():
    process = build_weighted_fed_avg(ZeroStart, build_sgdm(0.1, momentum=0.5), build_sgdm(0.7))
    state = process.initialize()
    hparams = process.get_hparams(state)
    assert dict(hparams["client_work"]) == {"learning_rate": 0.1, "momentum": 0.5}
    assert dict(hparams["finalizer"]) == {"learning_rate": 0.7}
    frozen = process.set_hparams(state, {"client_work": {"learning_rate": 0.0, "momentum": 0.5}, "finalizer": hparams["finalizer"]})
    kernel, _ = process.get_model_weights(process.next(frozen, [CLIENT_A]).state).trainable
    np.testing.assert_array_equal(kernel, np.zeros((1, 2)))  # client lr 0: no update
    with pytest.raises(KeyError, match="learning_rate"):
        process.set_hparams(state, {"client_work": {"lr": 0.1}, "finalizer": hparams["finalizer"]})


def test_optimizer_may_be_a_no_arg_callable():
    by_instance = weights_after_one_round(build_weighted_fed_avg(ZeroStart, build_sgdm(0.1)), [CLIENT_A, CLIENT_B])
    by_callable = weights_after_one_round(
        build_weighted_fed_avg(ZeroStart, lambda: build_sgdm(0.1), lambda: build_sgdm(1.0)), [CLIENT_A, CLIENT_B]
    )
    np.testing.assert_array_equal(by_instance[0], by_callable[0])


def test_custom_aggregators_are_used():
    kernel, _, metrics = weights_after_one_round(
        build_weighted_fed_avg(ZeroStart, build_sgdm(0.1), model_aggregator=MeanFactory(no_nan_division=True)), [CLIENT_NAN]
    )
    assert metrics["finalizer"]["update_non_finite"] == 0  # 0 / 0 is 0 with no_nan_division
    process = build_unweighted_fed_avg(ZeroStart, build_sgdm(0.1), model_aggregator=UnweightedMeanFactory())
    assert process.initialize().aggregator == ((), ())


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: build_weighted_fed_avg(ZeroStart, "sgd"), TypeError, "build_sgdm"),
        (lambda: build_weighted_fed_avg(ZeroStart, build_sgdm(0.1), server_optimizer_fn=3), TypeError, "server_optimizer_fn"),
        (lambda: build_weighted_fed_avg(ZeroStart, build_sgdm(0.1), client_weighting="uniform"), TypeError, "ClientWeighting"),
        (lambda: build_weighted_fed_avg(ZeroStart, build_sgdm(0.1), model_aggregator=SumFactory()), TypeError, "as_weighted_aggregator"),
        (lambda: build_weighted_fed_avg(ZeroStart(), build_sgdm(0.1)), TypeError, "model_fn"),
        (lambda: build_weighted_fed_avg(lambda: "model", build_sgdm(0.1)), TypeError, "model_fn must return"),
        (lambda: build_weighted_fed_prox(ZeroStart, -0.1, build_sgdm(0.1)), ValueError, "proximal_strength"),
        (lambda: build_weighted_fed_prox(ZeroStart, "0.1", build_sgdm(0.1)), TypeError, "proximal_strength"),
        (lambda: build_unweighted_fed_avg(ZeroStart, build_sgdm(0.1), model_aggregator=MeanFactory()), TypeError, "unweighted"),
        (lambda: build_weighted_mime_lite(ZeroStart, None), TypeError, "base_optimizer"),
        (lambda: build_weighted_fed_avg_with_optimizer_schedule(ZeroStart, 0.1, build_sgdm), TypeError, "callables"),
    ],
)
def test_bad_arguments_name_what_is_wrong(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_bad_client_batch_names_the_client():
    process = build_weighted_fed_avg(ZeroStart, build_sgdm(0.1))
    with pytest.raises(ValueError, match="client 1, batch 0"):
        process.next(process.initialize(), [CLIENT_A, [(np.ones((1, 3), np.float32), np.zeros((1, 1), np.int32))]])
