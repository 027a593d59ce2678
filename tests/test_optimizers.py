"""Optimizers: TFF's formulas by hand, state keys, hyperparameters, purity, structure, errors, scheduling."""

from __future__ import annotations

import collections
import copy

import numpy as np
import optree
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fl_blocks.optimizers import (
    Optimizer,
    build_adagrad,
    build_adam,
    build_adamw,
    build_rmsprop,
    build_sgdm,
    build_yogi,
    schedule_learning_rate,
)
from fl_blocks.specs import spec_of


def test_plain_sgd_by_hand_and_state_keys():
    sgd = build_sgdm(learning_rate=0.1)
    w = [np.array([1.0, 2.0], np.float32)]
    state = sgd.initialize(spec_of(w))
    assert dict(state) == {"learning_rate": 0.1}
    state, new_w = sgd.next(state, w, [np.array([10.0, -10.0], np.float32)])
    np.testing.assert_allclose(new_w[0], [0.0, 3.0], atol=1e-7)
    assert new_w[0].dtype == np.float32
    np.testing.assert_array_equal(w[0], [1.0, 2.0])  # inputs untouched


def test_momentum_zero_keeps_plain_sgd_state_as_tff():
    assert list(build_sgdm(0.1, momentum=0.0).initialize([np.zeros(1)])) == ["learning_rate"]


def test_momentum_accumulates_by_hand():
    sgd = build_sgdm(learning_rate=0.5, momentum=0.9)
    w = [np.array([0.0], np.float64)]
    state = sgd.initialize(spec_of(w))
    assert list(state) == ["learning_rate", "momentum", "accumulator"]
    state, w = sgd.next(state, w, [np.array([1.0])])  # a = 1, w = -0.5
    state, w = sgd.next(state, w, [np.array([1.0])])  # a = 1.9, w = -0.5 - 0.95
    np.testing.assert_allclose(state["accumulator"][0], [1.9])
    np.testing.assert_allclose(w[0], [-1.45])


def test_hparams_round_trip():
    sgd = build_sgdm(learning_rate=0.5, momentum=0.9)
    state = sgd.initialize([np.zeros(2)])
    assert sgd.get_hparams(state) == {"learning_rate": 0.5, "momentum": 0.9}
    new_state = sgd.set_hparams(state, {"learning_rate": 0.25})
    assert new_state["learning_rate"] == 0.25 and state["learning_rate"] == 0.5
    with pytest.raises(KeyError, match="no hyperparameter"):
        sgd.set_hparams(state, {"beta_1": 0.3})


@pytest.mark.parametrize("kwargs, match", [({"learning_rate": -1.0}, "learning_rate"), ({"momentum": 1.5}, "momentum")])
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_sgdm(**kwargs)


def test_mismatched_gradients_raise():
    sgd = build_sgdm(0.1)
    state = sgd.initialize([np.zeros(2)])
    with pytest.raises(ValueError, match=r"gradient float64\[3\] does not match weight float64\[2\]"):
        sgd.next(state, [np.zeros(2)], [np.zeros(3)])
    with pytest.raises(ValueError, match="structured"):
        sgd.next(state, [np.zeros(2)], [np.zeros(2), np.zeros(2)])


# ---- The adaptive optimizers and schedule_learning_rate ----

ADAPTIVE = {
    "adam": lambda: build_adam(0.1),
    "yogi": lambda: build_yogi(0.1),
    "adagrad": lambda: build_adagrad(0.1),
    "rmsprop": lambda: build_rmsprop(0.1),
    "adamw": lambda: build_adamw(0.1),
}
HPARAMS = {  # TFF's get_hparams keys, in order (benchmarks/tff_reference/README.md)
    "adam": ["learning_rate", "beta_1", "beta_2", "epsilon"],
    "yogi": ["learning_rate", "beta_1", "beta_2", "epsilon"],
    "adagrad": ["learning_rate", "epsilon"],
    "rmsprop": ["learning_rate", "decay", "epsilon"],
    "adamw": ["learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay"],
}
arrays = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4), elements=st.floats(-5, 5))


def test_adam_first_step_by_hand():
    # t = 1: acc = 0.1 g, pre = 0.001 g^2, lr_t = lr sqrt(0.001) / 0.1, w = -lr_t * acc / (sqrt(pre) + eps)
    adam = build_adam(learning_rate=0.5, epsilon=0.01)
    state, w = adam.next(adam.initialize([np.zeros(1)]), [np.zeros(1)], [np.array([2.0])])
    lr_t = 0.5 * np.sqrt(0.001) / 0.1
    np.testing.assert_allclose(w[0], [-lr_t * 0.2 / (np.sqrt(0.004) + 0.01)], rtol=1e-12)
    assert state["step"] == 1 and state["step"].dtype == np.int32


def test_yogi_preconditioner_moves_additively_by_hand():
    yogi = build_yogi(learning_rate=0.1, beta_2=0.5, initial_preconditioner_value=1.0)
    state = yogi.initialize([np.zeros(2)])
    state, _ = yogi.next(state, [np.zeros(2)], [np.array([2.0, 0.5])])
    # pre += (1 - 0.5) * sign(g^2 - pre) * g^2: 1 + 0.5 * 4 = 3 and 1 - 0.5 * 0.25 = 0.875
    np.testing.assert_allclose(state["preconditioner"][0], [3.0, 0.875])


def test_adagrad_and_rmsprop_by_hand():
    adagrad = build_adagrad(learning_rate=1.0, initial_preconditioner_value=5.0, epsilon=0.0)
    state, w = adagrad.next(adagrad.initialize([np.zeros(1)]), [np.zeros(1)], [np.array([2.0])])
    np.testing.assert_allclose(w[0], [-2.0 / 3.0])  # pre = 5 + 4 = 9
    rmsprop = build_rmsprop(learning_rate=1.0, decay=0.5, epsilon=1.0)
    state, w = rmsprop.next(rmsprop.initialize([np.zeros(1)]), [np.zeros(1)], [np.array([2.0])])
    np.testing.assert_allclose(w[0], [-2.0 / (np.sqrt(2.0) + 1.0)])  # pre = 0.5 * 4
    assert "step" not in state


def test_adamw_decays_the_old_weights_scaled_by_lr():
    adamw = build_adamw(learning_rate=0.5, weight_decay=0.1)
    state = adamw.initialize([np.zeros(2)])
    _, w = adamw.next(state, [np.array([1.0, -4.0])], [np.zeros(2)])
    np.testing.assert_allclose(w[0], [1.0 - 0.05, -4.0 + 0.2])
    assert build_adamw(1.0).get_hparams(adamw.initialize([np.zeros(1)]))["weight_decay"] == 0.1


@pytest.mark.parametrize("name", ["adam", "yogi", "adagrad", "rmsprop"])
@given(weights=arrays, steps=st.integers(1, 3))
def test_zero_gradients_leave_weights_unchanged(name, weights, steps):
    optimizer = ADAPTIVE[name]()
    state, w = optimizer.initialize([weights]), [weights]
    for _ in range(steps):
        state, w = optimizer.next(state, w, [np.zeros_like(weights)])
    np.testing.assert_array_equal(w[0], weights)


@pytest.mark.parametrize("name", ["adagrad", "rmsprop"])
@given(weights=arrays)
def test_zero_gradient_after_a_step_moves_nothing(name, weights):
    optimizer = ADAPTIVE[name]()
    state, w = optimizer.next(optimizer.initialize([weights]), [weights], [np.ones_like(weights)])
    _, w2 = optimizer.next(state, w, [np.zeros_like(weights)])
    np.testing.assert_array_equal(w2[0], w[0])


@pytest.mark.parametrize("name", sorted(ADAPTIVE))
@given(weights=arrays, data=st.data())
def test_inputs_are_not_modified(name, weights, data):
    gradients = data.draw(hnp.arrays(np.float64, weights.shape, elements=st.floats(-5, 5)))
    optimizer = ADAPTIVE[name]()
    state, w = optimizer.next(optimizer.initialize([weights]), [weights], [gradients])
    before = copy.deepcopy((state, w, [gradients]))
    optimizer.next(state, w, [gradients])
    for got, want in zip(optree.tree_leaves((state, w, [gradients])), optree.tree_leaves(before)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(ADAPTIVE))
def test_nested_structures_are_kept_and_give_the_flat_result(name):
    rng = np.random.default_rng(0)
    leaves = [rng.normal(size=s) for s in [(2, 3), (3,), (), (1, 2)]]
    grads = [rng.normal(size=np.shape(x)) for x in leaves]

    def nest(x):
        return {"dense": [x[0], (x[1], x[2])], "bias": x[3]}

    optimizer = ADAPTIVE[name]()
    flat_state, flat_w = optimizer.initialize(spec_of(leaves)), leaves
    state, w = optimizer.initialize(spec_of(nest(leaves))), nest(leaves)
    for _ in range(2):
        flat_state, flat_w = optimizer.next(flat_state, flat_w, grads)
        state, w = optimizer.next(state, w, nest(grads))
    assert optree.tree_structure(w) == optree.tree_structure(nest(leaves))
    order = (3, 0, 1, 2)  # optree lists dict keys sorted: bias, then dense
    for key in ("accumulator", "preconditioner"):
        if key in state:
            assert optree.tree_structure(state[key]) == optree.tree_structure(nest(leaves))
            for a, b in zip(optree.tree_leaves(state[key]), [flat_state[key][i] for i in order]):
                np.testing.assert_array_equal(a, b)
    for a, b in zip(optree.tree_leaves(w), [flat_w[i] for i in order]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(ADAPTIVE))
def test_mismatched_gradients_and_state_raise(name):
    optimizer = ADAPTIVE[name]()
    state = optimizer.initialize([np.zeros(2, np.float32)])
    w = [np.zeros(2, np.float32)]
    with pytest.raises(ValueError, match=r"gradient float32\[3\] does not match weight float32\[2\]"):
        optimizer.next(state, w, [np.zeros(3, np.float32)])
    with pytest.raises(ValueError, match=r"gradient float64\[2\] does not match weight float32\[2\]"):
        optimizer.next(state, w, [np.zeros(2)])
    with pytest.raises(ValueError, match="gradients are structured"):
        optimizer.next(state, w, {"w": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match=r"(accumulator|preconditioner) float32\[2\] does not match weight float32\[4\].*initialized"):
        optimizer.next(state, [np.zeros(4, np.float32)], [np.zeros(4, np.float32)])


@pytest.mark.parametrize("name", sorted(ADAPTIVE))
def test_hparams_as_tff_and_only_hparams_can_be_set(name):
    optimizer = ADAPTIVE[name]()
    state = optimizer.initialize([np.zeros(2)])
    hparams = optimizer.get_hparams(state)
    assert list(hparams) == HPARAMS[name] and hparams["learning_rate"] == 0.1
    new_state = optimizer.set_hparams(state, {"learning_rate": 0.5, "epsilon": 0.25})
    assert new_state["learning_rate"] == 0.5 and new_state["epsilon"] == 0.25 and state["learning_rate"] == 0.1
    assert list(new_state) == list(state)
    for key in ("preconditioner", "step", "momentum"):
        with pytest.raises(KeyError, match=f"no hyperparameter.*{key}.*only hyperparameters can be set"):
            optimizer.set_hparams(state, {key: 0})
    with pytest.raises(ValueError, match="`epsilon` must be nonnegative"):
        optimizer.set_hparams(state, {"epsilon": -1.0})


@pytest.mark.parametrize(
    "build, kwargs, match",
    [
        (build_adam, {"learning_rate": -0.1}, r"Adam `learning_rate` must be nonnegative"),
        (build_adam, {"learning_rate": 0.1, "beta_1": 1.5}, r"Adam `beta_1` must be in the range \[0.0, 1.0\]"),
        (build_adam, {"learning_rate": 0.1, "beta_2": -0.1}, r"`beta_2` must be in the range"),
        (build_adam, {"learning_rate": 0.1, "epsilon": -1e-7}, r"`epsilon` must be nonnegative"),
        (build_adam, {"learning_rate": float("nan")}, r"`learning_rate` must be nonnegative and finite"),
        (build_yogi, {"learning_rate": 0.1, "initial_preconditioner_value": -1.0}, r"Yogi `initial_preconditioner_value`"),
        (build_adagrad, {"learning_rate": 0.1, "initial_preconditioner_value": -1.0}, r"`initial_preconditioner_value`"),
        (build_adagrad, {"learning_rate": 0.1, "epsilon": -1.0}, r"Adagrad `epsilon`"),
        (build_rmsprop, {"learning_rate": 0.1, "decay": 1.1}, r"RMSProp `decay` must be in the range"),
        (build_adamw, {"learning_rate": 0.1, "weight_decay": -0.1}, r"AdamW `weight_decay` must be nonnegative"),
    ],
)
def test_invalid_hyperparameters_raise_as_tff(build, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)


def test_non_number_hyperparameter_raises_type_error():
    with pytest.raises(TypeError, match="`beta_1` must be a real number"):
        build_adam(0.1, beta_1="0.9")  # type: ignore[arg-type]


# schedule_learning_rate: TFF's semantics (learning/optimizers/scheduling.py): state
# {round_num: int32, optimizer: inner}, the i-th `next` (from 0) steps with schedule_fn(i).


def test_scheduled_sgd_by_hand():
    calls = []

    def schedule(i):
        calls.append(i)
        return 0.1 * 0.5**i

    sgd = schedule_learning_rate(build_sgdm(1.0), schedule)
    state = sgd.initialize([np.zeros(1)])
    assert list(state) == ["round_num", "optimizer"] and state["round_num"].dtype == np.int32
    assert state["optimizer"]["learning_rate"] == 0.1
    w = [np.zeros(1)]
    for _ in range(3):
        state, w = sgd.next(state, w, [np.ones(1)])
    np.testing.assert_allclose(w[0], [-(0.1 + 0.05 + 0.025)])
    assert state["round_num"] == 3 and state["round_num"].dtype == np.int32
    assert state["optimizer"]["learning_rate"] == 0.1 * 0.5**3  # the rate of the next step
    assert calls == [0, 1, 2, 3] and all(type(i) is np.int32 for i in calls)


def test_scheduled_adam_equals_adam_with_the_rate_set_before_each_step():
    rates = [0.3, 0.1, 0.02]
    scheduled = schedule_learning_rate(build_adam(1.0), lambda i: rates[min(int(i), 2)])
    adam = build_adam(1.0)
    rng = np.random.default_rng(1)
    w = w_ref = [rng.normal(size=3)]
    s, s_ref = scheduled.initialize(spec_of(w)), adam.initialize(spec_of(w))
    for i in range(3):
        g = [rng.normal(size=3)]
        s, w = scheduled.next(s, w, g)
        s_ref, w_ref = adam.next(adam.set_hparams(s_ref, {"learning_rate": rates[i]}), w_ref, g)
        np.testing.assert_array_equal(w[0], w_ref[0])
    assert s["optimizer"]["step"] == 3  # the inner step counter runs on


def test_scheduled_hparams_are_empty_as_tff():
    sgd = schedule_learning_rate(build_sgdm(), lambda i: 0.1)
    state = sgd.initialize([np.zeros(1)])
    assert sgd.get_hparams(state) == collections.OrderedDict()
    assert sgd.set_hparams(state, {}) == state
    with pytest.raises(KeyError, match="no hyperparameter"):
        sgd.set_hparams(state, {"learning_rate": 0.5})


def test_schedule_errors():
    with pytest.raises(TypeError, match="needs an fl_blocks Optimizer"):
        schedule_learning_rate(lambda: None, lambda i: 0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="schedule_fn"):
        schedule_learning_rate(build_sgdm(), 0.1)  # type: ignore[arg-type]

    class NoLearningRate(Optimizer):
        def initialize(self, specs):
            return collections.OrderedDict(step=0)

        def next(self, state, weights, gradients):
            return state, weights

    with pytest.raises(KeyError, match="learning rate under 'learning_rate'"):
        schedule_learning_rate(NoLearningRate(), lambda i: 0.1).initialize([np.zeros(1)])
    sgd = schedule_learning_rate(build_sgdm(), lambda i: 0.1 - 0.1 * int(i))
    state = sgd.initialize([np.zeros(1)])
    state, _ = sgd.next(state, [np.zeros(1)], [np.ones(1)])  # schedule_fn(1) = 0: fine
    with pytest.raises(ValueError, match=r"schedule_fn\(2\) `learning_rate` must be nonnegative"):
        sgd.next(state, [np.zeros(1)], [np.ones(1)])
