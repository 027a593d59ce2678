"""The tf.data-like `Dataset`, `ClientData` and the embedded synthetic data."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from fl_blocks.cli import preprocess
from fl_blocks.simulation.datasets import ClientData, Dataset, synthetic


def elements(n):
    return collections.OrderedDict(label=np.arange(n, dtype=np.int32), pixels=np.arange(n * 784, dtype=np.float32).reshape(n, 28, 28))


def test_batch_then_map_is_the_tutorial_preprocess():
    ds = preprocess(Dataset.from_tensor_slices(elements(45)), 20)
    batches = list(ds)
    assert [x.shape for x, _ in batches] == [(20, 784), (20, 784), (5, 784)]
    assert [y.shape for _, y in batches] == [(20, 1), (20, 1), (5, 1)]
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]).ravel(), np.arange(45))
    assert list(ds)[0][0].tobytes() == batches[0][0].tobytes()  # re-iterable


def test_drop_remainder_and_cardinality():
    ds = Dataset.from_tensor_slices(elements(45))
    assert ds.cardinality == 45
    assert ds.batch(20).cardinality == 3 and ds.batch(20, drop_remainder=True).cardinality == 2
    assert len(list(ds.batch(20, drop_remainder=True))) == 2


def test_map_then_batch_stacks_elements_and_unpacks_tuples():
    ds = Dataset.from_tensor_slices((np.arange(5), np.arange(5) * 10)).map(lambda a, b: a + b).batch(2)
    assert [b.tolist() for b in ds] == [[0, 11], [22, 33], [44]]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same leading dimension"):
        Dataset.from_tensor_slices((np.zeros(3), np.zeros(4)))
    with pytest.raises(ValueError, match="batch_size"):
        Dataset.from_tensor_slices(np.zeros(3)).batch(0)


def test_client_data_ids_preprocess_and_unknown_id():
    arrays = {"a": elements(3), "b": elements(5)}
    data = ClientData.from_clients_and_fn(["a", "b"], lambda cid: Dataset.from_tensor_slices(arrays[cid]))
    assert data.client_ids == ["a", "b"]
    batched = data.preprocess(lambda ds: ds.batch(2))
    assert [len(b["label"]) for b in batched.create_dataset_for_client("b")] == [2, 2, 1]
    with pytest.raises(KeyError, match="unknown client id 'c'"):
        data.create_dataset_for_client("c")
    with pytest.raises(ValueError, match="duplicates"):
        ClientData(["a", "a"], lambda cid: None)


def test_synthetic_data_is_deterministic_and_emnist_like():
    train, test = synthetic.load_data(num_clients=5, seed=7)
    again, _ = synthetic.load_data(num_clients=5, seed=7)
    other, _ = synthetic.load_data(num_clients=5, seed=8)
    assert train.client_ids == test.client_ids == again.client_ids
    first = list(train.create_dataset_for_client(train.client_ids[0]).batch(1000))[0]
    np.testing.assert_array_equal(first["pixels"], list(again.create_dataset_for_client(train.client_ids[0]).batch(1000))[0]["pixels"])
    assert not np.array_equal(first["pixels"][:5], list(other.create_dataset_for_client(other.client_ids[0]).batch(1000))[0]["pixels"][:5])
    pixels, labels = first["pixels"], first["label"]
    assert pixels.dtype == np.float32 and pixels.shape[1:] == (28, 28) and labels.dtype == np.int32
    assert pixels.min() >= 0 and pixels.max() <= 1
    assert np.median(pixels) == 1.0  # background is 1.0, ink is dark
    np.testing.assert_array_equal(np.round(pixels * 255) / np.float32(255), pixels)  # byte / 255 like LEAF
    assert set(np.unique(labels)) <= set(range(10))
    assert sum(1 for _ in test.create_dataset_for_client(test.client_ids[0])) > 0


def test_synthetic_writers_differ_in_style():
    train, _ = synthetic.load_data(num_clients=6, seed=0)
    ink = [1 - list(train.create_dataset_for_client(c).batch(10_000))[0]["pixels"].mean() for c in train.client_ids]
    assert np.std(ink) > 0.1 * np.mean(ink)  # stroke width and darkness vary by writer


# --- array-backed pipeline: semantics against a plain-list oracle -------------------------------------------

from hypothesis import given, strategies as st  # noqa: E402

from fl_blocks.simulation.datasets import INFINITE_CARDINALITY  # noqa: E402


def oracle(values, ops):
    """Independent reference: tf.data's semantics on Python lists (finite pipelines, no shuffle)."""
    items = list(values)
    for op, arg in ops:
        if op == "take":
            items = items if arg < 0 else items[:arg]
        elif op == "skip":
            items = [] if arg < 0 else items[arg:]
        elif op == "repeat":
            items = items * arg
        elif op == "map":
            items = [x * 3 + 1 if not isinstance(x, list) else [v * 3 + 1 for v in x] for x in items]
        elif op == "batch":
            size, drop = arg
            items = [items[i:i + size] for i in range(0, len(items), size)]
            items = [b for b in items if len(b) == size or not drop]
    return items


def apply_ops(ds, ops):
    for op, arg in ops:
        ds = ds.batch(*arg) if op == "batch" else ds.map(lambda x: x * 3 + 1) if op == "map" else getattr(ds, op)(arg)
    return ds


row_op = st.one_of(st.tuples(st.sampled_from(["take", "skip"]), st.integers(-1, 12)),
                   st.tuples(st.just("repeat"), st.integers(0, 3)), st.tuples(st.just("map"), st.none()))
pipelines = st.tuples(st.lists(row_op, max_size=4), st.tuples(st.integers(1, 5), st.booleans()),
                      st.lists(st.one_of(st.tuples(st.sampled_from(["take", "skip"]), st.integers(-1, 4)),
                                         st.tuples(st.just("map"), st.none())), max_size=2))


@given(st.integers(0, 9), pipelines)
def test_pipelines_match_the_list_oracle(n, pipeline):
    before, batch, after = pipeline
    ops = before + [("batch", batch)] + after
    ds = apply_ops(Dataset.from_tensor_slices(np.arange(n, dtype=np.int64)), ops)
    expected = oracle(range(n), ops)
    got = [b.tolist() for b in ds]
    assert got == expected
    assert ds.cardinality == len(expected)
    plan = ds.array_plan()
    if n == 0 and any(op == "map" for op, _ in ops):
        assert plan is None  # nothing to verify maps on
    else:
        flat = [v for b in expected for v in b]
        rows = plan.materialize().tolist() if plan.num_rows else []
        assert rows[:len(flat)] == flat and (len(rows) == len(flat) or batch[1])  # drop_remainder: caller drops
    unbatched = apply_ops(Dataset.from_tensor_slices(np.arange(n, dtype=np.int64)), before)
    assert [int(v) for v in unbatched] == oracle(range(n), before)


def test_repeat_then_batch_spans_epochs_and_take_minus_one_is_all():
    ds = Dataset.from_tensor_slices(np.arange(5)).repeat(2).batch(4)
    assert [b.tolist() for b in ds] == [[0, 1, 2, 3], [4, 0, 1, 2], [3, 4]]
    assert [int(x) for x in Dataset.from_tensor_slices(np.arange(3)).take(-1)] == [0, 1, 2]


def test_infinite_repeat_cardinality_and_take():
    ds = Dataset.from_tensor_slices(np.arange(3)).repeat()
    assert ds.cardinality == INFINITE_CARDINALITY and ds.array_plan() is None
    assert ds.take(7).cardinality == 7
    assert [b.tolist() for b in ds.batch(2).take(4)] == [[0, 1], [2, 0], [1, 2], [0, 1]]
    assert list(Dataset.from_tensor_slices(np.zeros(0)).repeat()) == []


@given(st.integers(0, 40), st.integers(1, 50), st.integers(0, 2**31))
def test_shuffle_has_buffer_semantics_and_is_seed_deterministic(n, buffer_size, seed):
    ds = Dataset.from_tensor_slices(np.arange(n)).shuffle(buffer_size, seed=seed)
    first, second = [int(x) for x in ds], [int(x) for x in ds]
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(n))
    # an element can only be emitted once it entered the buffer: position k holds an input index < k + buffer_size
    assert all(value < k + buffer_size for k, value in enumerate(first))
    again = Dataset.from_tensor_slices(np.arange(n)).shuffle(buffer_size, seed=seed)
    assert [int(x) for x in again] == first and [int(x) for x in again] == second  # same seed: same sequence of orders
    if buffer_size == 1:
        assert first == list(range(n))
    fixed = Dataset.from_tensor_slices(np.arange(n)).shuffle(buffer_size, seed=seed, reshuffle_each_iteration=False)
    assert [int(x) for x in fixed] == [int(x) for x in fixed]


def test_shuffle_reshuffles_each_iteration_and_full_buffer_permutes_uniformly():
    ds = Dataset.from_tensor_slices(np.arange(10)).shuffle(10, seed=1)
    assert [int(x) for x in ds] != [int(x) for x in ds]
    counts = np.zeros((3, 3))
    small = Dataset.from_tensor_slices(np.arange(3)).shuffle(3, seed=2)
    for _ in range(3000):
        counts[np.arange(3), [int(x) for x in small]] += 1
    assert np.all(np.abs(counts - 1000) < 120)  # each value equally likely at each position
    generic = Dataset.from_generator(lambda: iter(range(20))).shuffle(4, seed=3)
    assert sorted(generic) == list(range(20)) and list(generic) != list(range(20))


def fmt(e):
    return e["pixels"].reshape(-1, 784), e["label"].reshape(-1, 1)


def test_array_plan_fields_and_materialize_match_iteration():
    ds = Dataset.from_tensor_slices(elements(45)).shuffle(45, seed=0).take(41).batch(20, drop_remainder=True).map(fmt)
    plan = ds.array_plan()
    assert plan is not None and plan.batch_size == 20 and plan.drop_remainder and plan.element_fns == ()
    assert plan.batch_fns == (fmt,) and plan.columns["pixels"].dtype == np.float32 and len(plan.rows) == 41
    x, y = plan.materialize(0, 40)
    assert x.shape == (40, 784) and y.shape == (40, 1) and sorted(y.ravel()) == sorted(plan.rows[:40])
    assert Dataset.from_tensor_slices(elements(4)).array_plan().rows is None


def test_non_rowwise_maps_fall_back_to_exact_per_element_calls():
    centred = Dataset.from_tensor_slices(np.arange(6.0)).map(lambda x: x - x.mean())  # per element: always 0
    assert [float(v) for v in centred] == [0.0] * 6 and centred.array_plan() is None
    per_batch = Dataset.from_tensor_slices(np.arange(6.0)).batch(3).map(lambda b: b - b.mean())
    assert [b.tolist() for b in per_batch] == [[-1.0, 0.0, 1.0]] * 2 and per_batch.array_plan() is None
    fixed = Dataset.from_tensor_slices(elements(5)).batch(2).map(lambda e: e["pixels"].reshape(2, 784))
    with pytest.raises(ValueError):
        list(fixed)  # the last batch has one row, exactly as tf.data would fail


def test_rowwise_verdict_is_cached_per_function_and_input_signature():
    calls = []

    def double(x):
        calls.append(np.shape(x))
        return x * 2

    for _ in range(3):
        assert [int(v) for v in Dataset.from_tensor_slices(np.arange(5)).map(double)] == [0, 2, 4, 6, 8]
    assert calls.count((5,)) == 3 and len(calls) == 3 + 1 + 3  # one verification (block + 3 rows), then one call per pass
    calls.clear()
    list(Dataset.from_tensor_slices(np.arange(5.0)).map(double))  # new dtype: verified again
    assert len(calls) == 1 + 1 + 3


def test_elements_are_read_only_views_and_inputs_stay_writable():
    source = np.arange(4.0)
    ds = Dataset.from_tensor_slices(source)
    with pytest.raises(ValueError):
        next(iter(ds.batch(2)))[0] = 9.0
    source[0] = 1.0  # the caller's array is untouched by the dataset
    assert float(next(iter(ds))) == 1.0
