"""fl_blocks' algorithms against real TFF 0.87 (tests/golden/algo_*.npz, see benchmarks/tff_reference/README.md).

Every round's global weights (every weight within atol 1e-6), every metric
(relative 1e-5, counts exact), the metrics' whole nested structure with key
order, and the initial ``get_hparams``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import DATA_NPZ, GOLDEN, emnist_client_batches, require

from fl_blocks import algorithms
from fl_blocks.models import ModelWeights, SoftmaxRegression
from fl_blocks.optimizers import build_adam, build_sgdm, build_yogi

FILES = sorted(p.stem for p in GOLDEN.glob("algo_*.npz") if p.stem != "algo_fed_eval")
ATOL = 1e-6
# Issue #4: golden configurations that must exist, and how many rounds each must cover at least.
REQUIRED = {
    "algo_fed_avg_weighted": 1,
    "algo_fed_avg_unweighted": 1,
    "algo_fed_prox_weighted": 1,
    "algo_fed_prox_unweighted": 1,
    "algo_fed_sgd": 1,
    "algo_mime_lite_weighted": 1,
    "algo_fed_avg_server_momentum": 3,
    "algo_fed_avg_server_adam": 3,
    "algo_fed_avg_server_yogi": 1,
}


def _build(name: str, model_fn):
    """The fl_blocks call that mirrors each golden file's TFF call (its config's `call`)."""
    sgd = build_sgdm(learning_rate=0.02)
    if name == "fed_avg_weighted":
        return algorithms.build_weighted_fed_avg(model_fn, client_optimizer_fn=sgd)
    if name == "fed_avg_unweighted":
        return algorithms.build_unweighted_fed_avg(model_fn, client_optimizer_fn=sgd)
    if name == "fed_prox_weighted":
        return algorithms.build_weighted_fed_prox(model_fn, proximal_strength=0.1, client_optimizer_fn=sgd)
    if name == "fed_prox_unweighted":
        return algorithms.build_unweighted_fed_prox(model_fn, proximal_strength=0.5, client_optimizer_fn=sgd)
    if name == "fed_sgd":
        return algorithms.build_fed_sgd(model_fn, server_optimizer_fn=build_sgdm(learning_rate=0.1))
    if name == "mime_lite_weighted":
        return algorithms.build_weighted_mime_lite(model_fn, base_optimizer=build_sgdm(0.02, momentum=0.9))
    if name == "mime_lite_unweighted":
        return algorithms.build_unweighted_mime_lite(model_fn, base_optimizer=build_sgdm(0.02, momentum=0.9))
    if name == "fed_avg_server_momentum":
        return algorithms.build_weighted_fed_avg(model_fn, sgd, server_optimizer_fn=build_sgdm(1.0, momentum=0.9))
    if name == "fed_avg_server_adam":
        return algorithms.build_weighted_fed_avg(
            model_fn, sgd, server_optimizer_fn=build_adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-3)
        )
    if name == "fed_avg_server_yogi":
        return algorithms.build_weighted_fed_avg(model_fn, sgd, server_optimizer_fn=build_yogi(learning_rate=0.01))
    if name == "fed_avg_client_momentum":
        return algorithms.build_weighted_fed_avg(
            model_fn, build_sgdm(0.02, momentum=0.9), server_optimizer_fn=build_sgdm(learning_rate=0.5)
        )
    if name == "fed_avg_client_schedule":
        return algorithms.build_weighted_fed_avg_with_optimizer_schedule(
            model_fn, client_learning_rate_fn=lambda r: 0.02 * 0.5**r, client_optimizer_fn=lambda lr: build_sgdm(lr)
        )
    raise AssertionError(f"no fl_blocks call for golden algorithm {name}")


class GoldenStartModel(SoftmaxRegression):
    """The golden's model: 784 -> 10 softmax regression starting from the file's w0."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray) -> None:
        super().__init__(784, 10)
        self._w0 = (kernel, bias)

    def initial_weights(self) -> ModelWeights:
        return ModelWeights([self._w0[0].copy(), self._w0[1].copy()], [])


def load_golden(stem: str) -> dict:
    with np.load(require(GOLDEN / f"{stem}.npz"), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def to_plain(value):
    """Our metrics as the goldens' JSON has them: dicts keep order, empty structures are []."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_plain(item) for item in value]
    return np.asarray(value).item()


def assert_same_tree(got, want, path="metrics"):
    """Same keys in the same order, same structure, numbers within rel 1e-5, integers exact."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{path}: expected a dict, got {got!r}"
        assert list(got) == list(want), f"{path}: keys {list(got)} != TFF's {list(want)}"
        for key in want:
            assert_same_tree(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got!r} != TFF's {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_tree(g, w, f"{path}[{i}]")
    elif isinstance(want, int):
        assert isinstance(got, int) and got == want, f"{path}: {got!r} != TFF's {want}"
    else:
        assert isinstance(got, float) and math.isclose(got, want, rel_tol=1e-5, abs_tol=0), f"{path}: {got!r} != TFF's {want!r}"


def assert_weights_match(got_weights, golden, stem, round_num):
    """Each leaf float32, TFF's shape, every weight within ATOL of TFF's."""
    for got, key in zip(got_weights, ("kernel", "bias"), strict=True):
        want = golden[f"w{round_num}_{key}"]
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"{stem} round {round_num} {key}")


def run_against_golden(stem, build=None, check_hparams=True):
    """Runs the golden's algorithm (or `build(model_fn)`) on its clients and checks every round."""
    require(DATA_NPZ)
    golden = load_golden(stem)
    config = json.loads(str(golden["config"]))
    model_fn = lambda: GoldenStartModel(golden["w0_kernel"], golden["w0_bias"])
    process = _build(config["algorithm"], model_fn) if build is None else build(model_fn)
    clients = emnist_client_batches(list(golden["client_ids"]), config["batch"])
    state = process.initialize()
    if check_hparams:
        assert_same_tree(to_plain(process.get_hparams(state)), config["initial_hparams"], "initial_hparams")
    for round_num in range(1, config["rounds"] + 1):
        output = process.next(state, clients)
        state = output.state
        assert_weights_match(process.get_model_weights(state).trainable, golden, stem, round_num)
        assert_same_tree(to_plain(output.metrics), json.loads(str(golden["metrics"][round_num - 1])), f"round {round_num}")
    return config["rounds"]


@pytest.mark.parametrize("stem", FILES)
def test_algorithm_matches_tff(stem):
    run_against_golden(stem)


def test_golden_files_cover_issue_4():
    """The required configurations exist (a missing file must fail, not shrink the parametrization)."""
    assert set(REQUIRED) <= set(FILES), f"missing golden files: {sorted(set(REQUIRED) - set(FILES))}"
    for stem, min_rounds in REQUIRED.items():
        golden = load_golden(stem)
        rounds = json.loads(str(golden["config"]))["rounds"]
        assert rounds >= min_rounds and len(golden["metrics"]) == rounds, stem
        assert all(f"w{r}_{key}" in golden for r in range(rounds + 1) for key in ("kernel", "bias")), stem


@pytest.mark.parametrize(
    "stem, build, match",
    [
        # client learning rate 0.0202 instead of 0.02: weights drift by ~1e-4 in round 1
        ("algo_fed_avg_weighted", lambda m: algorithms.build_weighted_fed_avg(m, build_sgdm(0.0202)), "round 1 kernel"),
        # server momentum 0.8 instead of 0.9: round 1 is the same step (zero accumulator), round 2 is not
        ("algo_fed_avg_server_momentum", lambda m: algorithms.build_weighted_fed_avg(m, build_sgdm(0.02), build_sgdm(1.0, momentum=0.8)), "round 2 kernel"),
        # server Adam's epsilon 1.1e-3 instead of 1e-3 (other hparams as the golden's): weights off by ~2e-4 in round 1
        (
            "algo_fed_avg_server_adam",
            lambda m: algorithms.build_weighted_fed_avg(m, build_sgdm(0.02), build_adam(0.01, 0.8, 0.99, epsilon=1.1e-3)),
            "round 1 kernel",
        ),
        # TFF's default betas (0.9, 0.999) instead of the golden's (0.8, 0.99)
        (
            "algo_fed_avg_server_adam",
            lambda m: algorithms.build_weighted_fed_avg(m, build_sgdm(0.02), build_adam(0.01, epsilon=1e-3)),
            "round 1 kernel",
        ),
    ],
)
def test_golden_comparison_catches_a_wrong_configuration(stem, build, match):
    # hparams unchecked, so that the weights comparison itself has to catch the change
    with pytest.raises(AssertionError, match=match):
        run_against_golden(stem, build, check_hparams=False)


def test_one_weight_off_by_2e_6_fails_in_every_file():
    """No per-file or per-coordinate allowance: a single weight 2e-6 away from TFF's fails."""
    want = {"w1_kernel": np.zeros((3, 2), np.float32), "w1_bias": np.zeros(2, np.float32)}
    one_off = [np.array([[2e-6, 0], [0, 0], [0, 0]], np.float32), np.zeros(2, np.float32)]
    for stem in FILES:
        with pytest.raises(AssertionError, match="atol=1e-06"):
            assert_weights_match(one_off, want, stem, 1)


def emnist_test_client_batches(client_ids, batch_size):
    """The digits-only test split of the shared npz, batched in the writer's order."""
    with np.load(require(DATA_NPZ), allow_pickle=False) as data:
        ids = list(data["test_client_ids"])
        offsets, pixels, labels = data["test_offsets"], data["test_pixels"], data["test_labels"]
    clients = []
    for client_id in client_ids:
        i = ids.index(str(client_id))
        px, lb = pixels[offsets[i]:offsets[i + 1]], labels[offsets[i]:offsets[i + 1]]
        x = (px[lb < 10].astype(np.float32) / np.float32(255)).reshape(-1, 784)
        y = lb[lb < 10].astype(np.int32).reshape(-1, 1)
        clients.append([(x[s:s + batch_size], y[s:s + batch_size]) for s in range(0, len(x), batch_size)])
    return clients


def test_fed_eval_matches_tff():
    golden = load_golden("algo_fed_eval")
    config = json.loads(str(golden["config"]))
    process = algorithms.build_fed_eval(lambda: GoldenStartModel(golden["w0_kernel"], golden["w0_bias"]))
    clients = emnist_test_client_batches(list(golden["client_ids"]), config["batch"])
    state = process.initialize()
    for i in range(config["rounds"]):
        weights = ModelWeights([golden[f"w{i}_kernel"], golden[f"w{i}_bias"]], [])
        output = process.next(process.set_model_weights(state, weights), clients)
        state = output.state
        assert_same_tree(to_plain(output.metrics), json.loads(str(golden["metrics"][i])), f"evaluation {i}")
        np.testing.assert_array_equal(process.get_model_weights(state).trainable[0], golden[f"w{i}_kernel"])
