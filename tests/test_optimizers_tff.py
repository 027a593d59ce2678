"""Optimizers against real TFF 0.87 (tests/golden/optimizers.json) and an independent float64 oracle.

The golden is 14 cases run by TFF as `tff.tensorflow.computation`s: float32
weights, float32 hyperparameters, int32 step (benchmarks/tff_reference/README.md).
The oracle below is written from the documented formulas in their textbook
form (``b * m + (1 - b) * g``), not from fl_blocks' code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import GOLDEN, require
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fl_blocks import optimizers
from fl_blocks.specs import spec_of

BUILDERS = {name: getattr(optimizers, name) for name in optimizers.__all__ if name.startswith("build_")}


def _golden():
    with open(require(GOLDEN / "optimizers.json")) as f:
        return json.load(f)


def _array(tensor):
    return np.asarray(tensor["value"], tensor["dtype"])


def _case_names():
    path = GOLDEN / "optimizers.json"
    return [case["name"] for case in json.loads(path.read_text())["cases"]] if path.exists() else ["(golden absent)"]


def _check_state(state, expected):
    """Every key in TFF's order; hyperparameters round to TFF's float32 exactly; step int32; trees to 1e-6."""
    assert list(state) == list(expected)
    for key, want in expected.items():
        got = state[key]
        if isinstance(want, list):  # a tree (accumulator / preconditioner) of float32 tensors
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.dtype == np.dtype(w["dtype"])
                # TFF's own float32 arithmetic, reproduced op for op: 1e-6 leaves room for a libm ulp only.
                np.testing.assert_allclose(g, _array(w), rtol=1e-6, atol=1e-6, err_msg=key)
        elif want["dtype"] == "int32":
            assert np.asarray(got).dtype == np.int32 and got == want["value"], key
        else:
            # fl_blocks keeps hyperparameters as Python floats and casts them to the weights' dtype when
            # stepping; TFF keeps the float32 cast. They must be the same float32 number.
            assert np.float32(got) == np.float32(want["value"]), (key, got, want["value"])


@pytest.mark.parametrize("name", _case_names())
def test_matches_tff_step_by_step(name):
    golden = _golden()
    case = next(c for c in golden["cases"] if c["name"] == name)
    weights = [_array(t) for t in golden["initial_weights"]]
    optimizer = BUILDERS[case["builder"].rsplit(".", 1)[-1]](**case["kwargs"])
    state = optimizer.initialize(spec_of(weights))
    assert list(state) == case["state_keys"]
    _check_state(state, case["state_after_initialize"])
    assert len(case["steps"]) == len(golden["gradients"]) == 4
    for step, gradients in zip(case["steps"], golden["gradients"]):
        state, weights = optimizer.next(state, weights, [_array(g) for g in gradients])
        for got, want in zip(weights, step["weights"]):
            assert got.dtype == np.float32
            # Measured: bit-identical to TFF. atol 1e-6 is the project's golden tolerance (about 10 float32
            # ulps of these O(1) weights), far below any formula error (a wrong epsilon placement or bias
            # correction moves weights by >= 1e-4 here).
            np.testing.assert_allclose(got, _array(want), rtol=0, atol=1e-6)
        _check_state(state, step["state"])


def test_golden_covers_every_builder():
    assert {c["builder"].rsplit(".", 1)[-1] for c in _golden()["cases"]} == set(BUILDERS)


# ---- Independent float64 oracle, from the documented update rules ----


def oracle(name, hp, weights, gradient_steps):
    """Weights after each step of optimizer `name` (float64 lists), written from TFF's docstrings."""
    w = [np.array(x, np.float64) for x in weights]
    m = [np.zeros_like(x) for x in w]
    init = hp.get("initial_preconditioner_value", 0.0)
    v = [np.full_like(x, init) for x in w]
    history = []
    for t, grads in enumerate(gradient_steps, start=1):
        for i, g in enumerate(grads):
            lr, eps = hp["learning_rate"], hp.get("epsilon", 0.0)
            if name in ("build_adam", "build_adamw", "build_yogi"):
                b1, b2 = hp["beta_1"], hp["beta_2"]
                m[i] = b1 * m[i] + (1 - b1) * g
                if name == "build_yogi":
                    v[i] = v[i] - (1 - b2) * np.sign(v[i] - g * g) * g * g
                else:
                    v[i] = b2 * v[i] + (1 - b2) * g * g
                factor = np.sqrt(1 - b2**t) / (1 - b1**t)
                decay = hp.get("weight_decay", 0.0) * w[i]
                w[i] = w[i] - lr * (factor * m[i] / (np.sqrt(v[i]) + eps) + decay)
            elif name == "build_adagrad":
                v[i] = v[i] + g * g
                w[i] = w[i] - lr * g / np.sqrt(v[i] + eps)
            elif name == "build_rmsprop":
                v[i] = hp["decay"] * v[i] + (1 - hp["decay"]) * g * g
                w[i] = w[i] - lr * g / (np.sqrt(v[i]) + eps)
            elif "momentum" in hp:
                m[i] = hp["momentum"] * m[i] + g
                w[i] = w[i] - lr * m[i]
            else:
                w[i] = w[i] - lr * g
        history.append([x.copy() for x in w])
    return history


unit = st.floats(0.0, 0.99)
HPARAMS = {
    "build_sgdm": st.fixed_dictionaries({"learning_rate": st.floats(0, 1)}, optional={"momentum": st.floats(0.01, 1)}),
    "build_adam": st.fixed_dictionaries(
        {"learning_rate": st.floats(0, 1), "beta_1": unit, "beta_2": unit, "epsilon": st.floats(1e-8, 1)}
    ),
    "build_adamw": st.fixed_dictionaries(
        {
            "learning_rate": st.floats(0, 1),
            "beta_1": unit,
            "beta_2": unit,
            "epsilon": st.floats(1e-8, 1),
            "weight_decay": st.floats(0, 0.5),
        }
    ),
    "build_yogi": st.fixed_dictionaries(
        {
            "learning_rate": st.floats(0, 1),
            "beta_1": unit,
            "beta_2": unit,
            "epsilon": st.floats(1e-8, 1),
            "initial_preconditioner_value": st.floats(0, 1),
        }
    ),
    "build_adagrad": st.fixed_dictionaries(
        {"learning_rate": st.floats(0, 1), "epsilon": st.floats(1e-8, 1), "initial_preconditioner_value": st.floats(0, 1)}
    ),
    "build_rmsprop": st.fixed_dictionaries({"learning_rate": st.floats(0, 1), "decay": st.floats(0, 1), "epsilon": st.floats(1e-8, 1)}),
}
values = st.floats(-10, 10, allow_subnormal=False)


@st.composite
def problems(draw, names=tuple(HPARAMS)):
    """(builder name, hparams, float64 weights, 1-4 steps of gradients) with 1-3 leaves of random shapes."""
    name = draw(st.sampled_from(names))
    shapes = draw(st.lists(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), min_size=1, max_size=3))
    weights = [draw(hnp.arrays(np.float64, s, elements=values)) for s in shapes]
    steps = draw(st.integers(1, 4))
    gradients = [[draw(hnp.arrays(np.float64, s, elements=values)) for s in shapes] for _ in range(steps)]
    return name, draw(HPARAMS[name]), weights, gradients


@given(problems())
def test_float64_matches_oracle(problem):
    name, hp, weights, gradient_steps = problem
    optimizer = BUILDERS[name](**hp)
    state = optimizer.initialize(spec_of(weights))
    w = weights
    for grads, expected in zip(gradient_steps, oracle(name, hp, weights, gradient_steps)):
        state, w = optimizer.next(state, w, grads)
        for got, want in zip(w, expected):
            # float64 both sides, different operation orders: a few ulps of the O(10) weights and updates.
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
            assert np.result_type(got) == np.float64


@given(problems())
def test_float32_weights_and_state_stay_float32(problem):
    # Float32 values are checked against TFF itself (the golden above), not against this float64 oracle:
    # TFF's float32 form p + (g**2 - p) * (1 - beta_2) cancels (beta_2 = 0, p = 81, g**2 = 4e-6 gives
    # p = 0 in float32, 4e-6 in float64), and fl_blocks reproduces that form on purpose.
    name, hp, weights, gradient_steps = problem
    weights32 = [w.astype(np.float32) for w in weights]
    optimizer = BUILDERS[name](**hp)
    state, w = optimizer.initialize(spec_of(weights32)), weights32
    for grads in gradient_steps:
        state, w = optimizer.next(state, w, [g.astype(np.float32) for g in grads])
    trees = [state[k] for k in ("accumulator", "preconditioner") if k in state]
    assert all(np.result_type(leaf) == np.float32 for tree in [w, *trees] for leaf in tree)
