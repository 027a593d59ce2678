"""`build_sgdm`: TFF's formula, state keys and hyperparameter access, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fl_blocks.optimizers import build_sgdm
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
