"""The vectorized executor's cache of Gram matrices and chunks (`fl_blocks.execution.cache`).

Checks, against the per-client loop (the reference), that every round gives
what the loop gives while the cache works as documented: read-only data is
stepped when first seen, kept in its second round and hit from then on
(bit-identical rounds); clients regrouped (another sample of the same
population) reuse their own Gram matrices; writeable or shuffled data is never
kept (in-place changes are seen); maps with other closure values get other
entries; the byte budgets hold; helper processes give one process's results;
fl_blocks' own loaders give data the cache keeps.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from fl_blocks.algorithms import build_gradient_clipping_client_work
from fl_blocks.execution import cache, client_grams, layout, processes as processes_module, vectorized
from fl_blocks.models import SoftmaxRegression
from fl_blocks.optimizers import build_sgdm
from fl_blocks.placements import AllEqual
from fl_blocks.simulation.datasets import ClientData, pixels_to_float32, synthetic
from test_executors import CLASSES, DIM, assert_results_close, run_client_work, weights_with_scale
from test_shared_maps import scaled_preprocess


pytestmark = pytest.mark.usefixtures("empty_cache")


def batch_format_fn(element):
    return element["pixels"].reshape(-1, DIM), element["label"].reshape(-1, 1)


def preprocess(dataset, batch_size=4):
    return dataset.batch(batch_size).map(batch_format_fn)


def client_data(rng, sizes, read_only=True):
    columns = collections.OrderedDict(
        (f"c{i}", collections.OrderedDict(label=rng.integers(0, CLASSES, n).astype(np.int32),
                                          pixels=rng.integers(0, 256, (n, 2, 3), dtype=np.uint8)))
        for i, n in enumerate(sizes))
    for tree in columns.values():
        for array in tree.values():
            array.flags.writeable = not read_only
    return columns, ClientData.from_arrays(columns, element_fn=pixels_to_float32)


def datasets_of(train, fn=preprocess):
    """New Dataset objects each call, on the same storage (as a tutorial's round does)."""
    return [fn(train.create_dataset_for_client(c)) for c in train.client_ids]


def as_lists(datasets):
    return [[(np.array(x), np.array(y)) for x, y in d] for d in datasets]


def assert_identical(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.update_weight == w.update_weight
        for a, b in zip(g.update, w.update):
            np.testing.assert_array_equal(a, b)


def kept():
    return len(client_grams._GRAMS), len(cache._GROUPS)


def no_more_grams(monkeypatch):
    monkeypatch.setattr(client_grams, "grams_of", lambda *a: pytest.fail("a Gram matrix was recomputed: cache miss"))


def small_groups(monkeypatch, max_rows=16):
    monkeypatch.setattr(vectorized, "group_clients", lambda sources, _rows: layout.group_clients(sources, max_rows))


SIZES = [3, 17, 9, 30, 6, 13]  # distinct batch counts (ties would reorder a group)


def test_read_only_data_is_stepped_then_kept_then_hit(monkeypatch):
    rng = np.random.default_rng(0)
    _, train = client_data(rng, SIZES)
    weights = AllEqual(weights_with_scale(rng, 1.0))
    want = run_client_work("loop", as_lists(datasets_of(train)), weights)
    first = run_client_work("vectorized", datasets_of(train), weights)  # first sight: stepped, nothing kept
    assert kept() == (0, 0) and len(client_grams._SEEN) == len(SIZES)
    second = run_client_work("vectorized", datasets_of(train), weights)  # new Dataset objects, same storage
    assert kept() == (len(SIZES), 1)
    no_more_grams(monkeypatch)
    third = run_client_work("vectorized", datasets_of(train), weights)
    assert_identical(third, second)
    for got in (first, second):
        assert_results_close(got, want)
    other = [weights_with_scale(rng, 2.0) for _ in SIZES]  # a hit trains from this round's weights
    assert_results_close(run_client_work("vectorized", datasets_of(train), other),
                         run_client_work("loop", as_lists(datasets_of(train)), other))


def test_regrouped_clients_reuse_their_own_gram_matrices(monkeypatch):
    rng = np.random.default_rng(2)
    _, train = client_data(rng, [5, 9, 13, 2, 7, 11, 4, 8])
    weights = AllEqual(weights_with_scale(rng, 1.0))
    small_groups(monkeypatch)
    datasets = datasets_of(train)
    for _ in range(2):
        run_client_work("vectorized", datasets, weights)
    assert kept()[0] == len(datasets)
    no_more_grams(monkeypatch)
    for sample in ([6, 1, 3], [0, 2, 4, 5, 7], [7, 6, 5, 4, 3, 2, 1, 0]):  # other rounds' samples: other groups
        chosen = [datasets[i] for i in sample]
        assert_results_close(run_client_work("vectorized", chosen, weights), run_client_work("loop", as_lists(chosen), weights))


def test_writeable_arrays_are_never_kept_and_in_place_changes_are_seen():
    rng = np.random.default_rng(1)
    columns, train = client_data(rng, SIZES, read_only=False)
    weights = AllEqual(weights_with_scale(rng, 1.0))
    datasets = datasets_of(train)
    first = [run_client_work("vectorized", datasets, weights) for _ in range(2)][-1]
    assert kept() == (0, 0) and not client_grams._SEEN
    for tree in columns.values():  # the caller's own arrays, changed under the same Dataset objects
        tree["pixels"][...] = 255 - tree["pixels"]
        tree["label"][...] = (tree["label"] + 1) % CLASSES
    second = run_client_work("vectorized", datasets, weights)
    assert kept() == (0, 0)
    assert not np.array_equal(first[1].update[0], second[1].update[0])
    assert_results_close(second, run_client_work("loop", as_lists(datasets), weights))


def test_maps_with_other_closure_values_get_other_entries():
    rng = np.random.default_rng(3)
    _, train = client_data(rng, SIZES)
    weights = AllEqual(weights_with_scale(rng, 1.0))
    results = []
    for scale in (1, 2, 1, 2):
        datasets = datasets_of(train, lambda d: scaled_preprocess(d, scale))
        got = run_client_work("vectorized", datasets, weights)
        assert_results_close(got, run_client_work("loop", as_lists(datasets), weights))
        results.append(got)
    assert kept() == (2 * len(SIZES), 2)
    assert not np.array_equal(results[0][1].update[0], results[1][1].update[0])


def test_tiny_gram_budget_is_kept_and_results_stay_right(monkeypatch):
    rng = np.random.default_rng(4)
    _, train = client_data(rng, [5, 9, 13, 2, 7, 11, 4, 8])
    weights = AllEqual(weights_with_scale(rng, 1.0))
    small_groups(monkeypatch)
    budget = 1500
    monkeypatch.setattr(client_grams, "GRAM_BYTES", budget)
    monkeypatch.setattr(cache, "ROWS_BYTES", 0)
    want = run_client_work("loop", as_lists(datasets_of(train)), weights)
    for _ in range(4):
        assert_results_close(run_client_work("vectorized", datasets_of(train), weights), want)
        assert sum(c.nbytes for c in client_grams._GRAMS.values()) <= budget
    assert 0 < kept()[0] < 8  # some kept, some evicted


def test_no_rows_budget_assembles_kept_gram_matrices_with_identical_results(monkeypatch):
    rng = np.random.default_rng(5)
    _, train = client_data(rng, SIZES)
    weights = AllEqual(weights_with_scale(rng, 1.0))
    monkeypatch.setattr(cache, "ROWS_BYTES", 0)
    second = [run_client_work("vectorized", datasets_of(train), weights) for _ in range(2)][-1]
    assert kept() == (len(SIZES), 0)
    no_more_grams(monkeypatch)
    assert_identical(run_client_work("vectorized", datasets_of(train), weights), second)


def test_reshuffled_dataset_is_not_kept_and_matches_the_loop_each_round():
    rng = np.random.default_rng(6)
    _, train = client_data(rng, SIZES)
    weights = AllEqual(weights_with_scale(rng, 1.0))
    shuffled = lambda d: preprocess(d.shuffle(64, seed=7))  # noqa: E731  reshuffles each iteration
    mine, twins = datasets_of(train, shuffled), datasets_of(train, shuffled)
    rounds = []
    for _ in range(3):
        got = run_client_work("vectorized", mine, weights)
        assert kept() == (0, 0) and not client_grams._SEEN
        assert_results_close(got, run_client_work("loop", as_lists(twins), weights))
        rounds.append(got)
    assert not np.array_equal(rounds[0][4].update[0], rounds[1][4].update[0])  # the order really changed


@pytest.mark.skipif(not processes_module.can_fork(), reason="helper processes need fork (POSIX)")
def test_helper_processes_give_one_process_results_and_fill_the_parents_cache(monkeypatch):
    rng = np.random.default_rng(7)
    _, train = client_data(rng, [5, 9, 13, 2, 7, 11, 4, 8])
    weights = AllEqual(weights_with_scale(rng, 1.0))
    monkeypatch.setattr(vectorized, "MIN_ROWS_PER_PROCESS", 1)
    small_groups(monkeypatch)
    one = [run_client_work("vectorized", datasets_of(train), weights) for _ in range(3)]
    cache.clear()
    work = build_gradient_clipping_client_work(lambda: SoftmaxRegression(DIM, CLASSES), build_sgdm(0.3), 1.0,
                                               executor="vectorized", processes=2)
    for r in range(3):  # stepped, then kept by the parent (`warm`), then hit
        many = work.next(work.initialize(), weights, datasets_of(train)).result
        assert_identical([many[i] for i in range(len(one[r]))], one[r])
        assert kept()[0] == (0 if r == 0 else 8)


def test_synthetic_loader_data_is_kept():
    train, _ = synthetic.load_data(num_clients=3, seed=1)
    datasets = [train.create_dataset_for_client(c).batch(20).map(lambda e: (e["pixels"].reshape(-1, 784), e["label"]))
                for c in train.client_ids]
    work = build_gradient_clipping_client_work(lambda: SoftmaxRegression(784, 10), build_sgdm(0.1), 1.0,
                                               executor="vectorized")
    weights = AllEqual(SoftmaxRegression(784, 10).initial_weights())
    for _ in range(2):
        work.next(work.initialize(), weights, datasets)
    assert kept() == (3, 1)


def test_a_group_with_an_empty_client_is_kept():
    _, train = client_data(np.random.default_rng(8), [5, 9, 0])
    for _ in range(2):
        run_client_work("vectorized", datasets_of(train), AllEqual(weights_with_scale(np.random.default_rng(0), 1.0)))
    assert kept() == (2, 1)


def test_a_client_without_a_finite_gram_matrix_is_stepped_without_computing_it_again(monkeypatch):
    rng = np.random.default_rng(10)
    columns = collections.OrderedDict(
        (f"c{i}", collections.OrderedDict(label=rng.integers(0, CLASSES, n).astype(np.int32),
                                          pixels=rng.integers(0, 256, (n, 2, 3)).astype(np.float32)))
        for i, n in enumerate([7, 9]))
    columns["c1"]["pixels"][4, 0, 0] = np.nan
    for tree in columns.values():
        for array in tree.values():
            array.flags.writeable = False
    train = ClientData.from_arrays(columns, element_fn=pixels_to_float32)
    weights = AllEqual(weights_with_scale(rng, 1.0))
    want = run_client_work("loop", as_lists(datasets_of(train)), weights)
    assert np.isnan(want[1].update[0]).any() and np.isfinite(want[0].update[0]).all()
    for _ in range(2):  # seen, then its Gram matrix computed: not finite, so nothing kept
        assert_results_close(run_client_work("vectorized", datasets_of(train), weights), want)
    assert len(client_grams._NOT_FINITE) == 1 and kept() == (0, 0)
    no_more_grams(monkeypatch)
    assert_results_close(run_client_work("vectorized", datasets_of(train), weights), want)


def test_a_hit_still_checks_labels_against_the_model():
    _, train = client_data(np.random.default_rng(9), SIZES)  # labels in [0, 3)
    for classes in (3, 3, 2):
        work = build_gradient_clipping_client_work(lambda: SoftmaxRegression(DIM, classes), build_sgdm(0.3), 1.0,
                                                   executor="vectorized")
        weights = AllEqual(SoftmaxRegression(DIM, classes).initial_weights())
        if classes == 2:
            with pytest.raises(ValueError, match="outside \\[0, 2\\)"):  # as the loop and an empty cache raise
                work.next(work.initialize(), weights, datasets_of(train))
        else:
            work.next(work.initialize(), weights, datasets_of(train))
    assert kept()[0] == len(SIZES)


@pytest.mark.parametrize("batch_sizes", [(4, 4, 4, 4), (3, 5, 3, 5)])
def test_narrow_single_batches_and_mixed_batch_sizes_match_the_loop(monkeypatch, batch_sizes):
    """Clients of one short batch (2 or 3 rows) beside wider ones, and batch sizes 3 and 5 in one group, over rounds."""
    monkeypatch.setattr(cache, "ROWS_BYTES", 0)  # each round assembles the group from the clients' own
    rng = np.random.default_rng(21)
    _, train = client_data(rng, [2, 9, 13, 3])
    weights = AllEqual(weights_with_scale(rng, 1.0))
    for _ in range(3):  # stepped, then Gram matrices computed and kept, then reused
        datasets = [preprocess(train.create_dataset_for_client(c), b) for c, b in zip(train.client_ids, batch_sizes)]
        lists = [[(np.asarray(x), np.asarray(y)) for x, y in d] for d in datasets]
        assert_results_close(run_client_work("vectorized", datasets, weights), run_client_work("loop", lists, weights))


def test_a_plan_key_hashes_once_and_pickles_as_its_parts():
    import pickle

    from fl_blocks.execution.plans import _Key

    key = _Key((("a", 1), 2, b"sizes"))
    assert hash(key) == hash(tuple(key)) and key == tuple(key)
    key._hash = 0  # as another process (another string hash seed) would have worked it out
    back = pickle.loads(pickle.dumps(key))
    assert back == key and type(back) is _Key and hash(back) == hash(tuple(key)) != 0
