"""`build_uniform_sampling_fn` against TFF 0.87's own outputs, plus properties and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TFF_REFERENCE, require
from hypothesis import given
from hypothesis import strategies as st

from fl_blocks.simulation import build_uniform_sampling_fn


def _reference_cases():
    path = TFF_REFERENCE / "tff_sampling.json"
    if not path.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared data not found at {path}"))]
    data = json.loads(path.read_text())
    ranges = {"ids": data["client_ids"], "range3383": range(3383)}
    return [
        pytest.param((ranges[case["sample_range"]], case), id=f"{case['sample_range']}-seed{case['seed']}-size{case['size']}")
        for case in data["cases"]
    ]


@pytest.mark.parametrize("reference", _reference_cases())
def test_every_round_matches_tff_exactly(reference):
    sample_range, case = reference
    sample = build_uniform_sampling_fn(sample_range, replace=case["replace"], random_seed=case["seed"])
    for round_num, expected in case["rounds"].items():
        got = sample(int(round_num), case["size"])
        assert type(got) is list
        assert got == expected, f"round {round_num}"
        assert [type(x) for x in got] == [type(x) for x in expected]  # str ids, Python ints
    # rounds in reverse order, twice: nothing is carried between calls
    for round_num in reversed(list(case["rounds"])):
        assert sample(int(round_num), case["size"]) == case["rounds"][round_num]


def test_reference_file_is_present_or_skipped():
    data = json.loads(require(TFF_REFERENCE / "tff_sampling.json").read_text())
    assert len(data["client_ids"]) == 105 and data["cases"]


def test_numpy_inputs_give_the_same_as_lists():
    ids = [f"c{i}" for i in range(30)]
    a = build_uniform_sampling_fn(ids, random_seed=7)
    b = build_uniform_sampling_fn(np.array(ids), random_seed=np.int64(7))
    c = build_uniform_sampling_fn(tuple(ids), random_seed=7)
    assert a(4, 6) == b(4, 6) == c(4, 6)
    assert all(type(x) is str for x in b(4, 6))


def test_seed_none_is_nondeterministic_but_valid():
    sample = build_uniform_sampling_fn(range(10_000))
    draws = [tuple(sample(1, 5)) for _ in range(4)]
    assert len(set(draws)) > 1
    assert all(len(set(d)) == 5 and all(0 <= x < 10_000 for x in d) for d in draws)


def test_with_replacement_can_repeat_and_exceed_the_population():
    sample = build_uniform_sampling_fn(["a", "b"], replace=True, random_seed=0)
    drawn = sample(0, 20)
    assert len(drawn) == 20 and set(drawn) == {"a", "b"}


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(sample_range=5), TypeError, "sequence"),
        (dict(sample_range="abc"), TypeError, "sequence"),
        (dict(sample_range=[[1, 2], [3, 4]]), ValueError, "one-dimensional"),
        (dict(sample_range=[1, 2], replace="no"), TypeError, "replace"),
        (dict(sample_range=[1, 2], random_seed=1.5), TypeError, "random_seed"),
        (dict(sample_range=[1, 2], random_seed=True), TypeError, "random_seed"),
        (dict(sample_range=[1, 2], random_seed=-1), ValueError, "random_seed"),
        (dict(sample_range=[1, 2], random_seed=2**32), ValueError, "2\\*\\*32"),
    ],
)
def test_bad_build_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        build_uniform_sampling_fn(**kwargs)


@pytest.mark.parametrize(
    "round_num, size, error, message",
    [
        (-1, 2, ValueError, "round_num must be >= 0"),
        (1.0, 2, TypeError, "round_num must be an integer"),
        ("1", 2, TypeError, "round_num"),
        (1, -1, ValueError, "size must be >= 0"),
        (1, 2.0, TypeError, "size must be an integer"),
        (1, 4, ValueError, "cannot sample 4 clients without replacement from a population of 3"),
    ],
)
def test_bad_call_arguments(round_num, size, error, message):
    sample = build_uniform_sampling_fn([1, 2, 3], random_seed=0)
    with pytest.raises(error, match=message):
        sample(round_num, size)


def test_empty_range():
    assert build_uniform_sampling_fn([], random_seed=0)(0, 0) == []
    with pytest.raises(ValueError, match="empty"):
        build_uniform_sampling_fn([], replace=True, random_seed=0)(0, 1)


populations = st.lists(st.integers(-1000, 1000), min_size=1, max_size=60, unique=True)
seeds = st.integers(0, 2**32 - 1)
rounds = st.integers(0, 10**12)


@given(populations, seeds, rounds, st.data())
def test_stateless_and_reproducible(population, seed, round_num, data):
    size = data.draw(st.integers(0, len(population)))
    sample = build_uniform_sampling_fn(population, random_seed=seed)
    first = sample(round_num, size)
    sample(round_num + 1, size)  # an unrelated call in between changes nothing
    assert sample(round_num, size) == first
    assert build_uniform_sampling_fn(list(population), random_seed=seed)(round_num, size) == first


@given(populations, seeds, rounds, st.data())
def test_without_replacement_no_duplicates_and_from_the_range(population, seed, round_num, data):
    size = data.draw(st.integers(0, len(population)))
    drawn = build_uniform_sampling_fn(population, random_seed=seed)(round_num, size)
    assert len(drawn) == size and len(set(drawn)) == size
    assert set(drawn) <= set(population)
    assert all(type(x) is int for x in drawn)


@given(populations, seeds, rounds, st.integers(0, 100))
def test_with_replacement_elements_from_the_range(population, seed, round_num, size):
    drawn = build_uniform_sampling_fn(population, replace=True, random_seed=seed)(round_num, size)
    assert len(drawn) == size and set(drawn) <= set(population)


@given(seeds)
def test_rounds_differ_on_a_large_population(seed):
    sample = build_uniform_sampling_fn(range(3383), random_seed=seed)
    assert len({tuple(sample(r, 10)) for r in range(5)}) == 5
