"""Constant columns (e.g. EMNIST's blank border pixels) in the dual form: found over real rows only, and
training with them split off gives what training on every column gives, and TFF's numbers on real writers."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import DATA_NPZ, require
from test_executors import assert_tff_seed_rounds, seed_reference
from fl_blocks.execution import cache, dual
from fl_blocks.execution.columns import client_span, constant_columns, group_span
from fl_blocks.execution.layout import client_source, make_chunk
from fl_blocks.models import ModelWeights, SoftmaxRegression
from fl_blocks.optimizers import build_sgdm
from fl_blocks.simulation.datasets import ClientData, pixels_to_float32


def test_padding_rows_do_not_count_and_nan_is_never_constant():
    x = np.zeros((2, 3, 4), np.float32)  # two clients, slots of 3 rows; client 1's last row is padding
    x[:, :, 0] = 7.0
    x[1, 2, 0] = 0.0  # padding (denominator inf): column 0 is still constant 7
    x[:, :, 1] = np.arange(6, dtype=np.float32).reshape(2, 3)  # varying
    x[:, :, 2] = np.nan
    x[:, :, 3] = -2.0
    x[1, 2] = 0.0
    denominators = np.array([3, 3, 3, 2, 2, np.inf], np.float32)
    found = constant_columns(x, denominators, least=1)
    assert found is not None
    assert found.values.tolist() == [7.0, 0.0, 0.0, -2.0] and found.varying.tolist() == [1, 2] and found.runs == ((1, 3),)
    np.testing.assert_array_equal(found.x, x[:, :, 1:3])
    assert constant_columns(x, denominators, least=3) is None  # only two constant columns


def test_every_column_constant_leaves_no_varying_rows():
    x = np.ones((1, 2, 3), np.float32)
    found = constant_columns(x, np.ones(2, np.float32), least=1)
    assert found is not None and found.varying.size == 0 and found.x.shape == (1, 2, 0)


def chunk_with_constant_columns(rng, sizes, batch, dim, constant, value):
    """A by-client chunk of clients with `sizes` rows, whose columns `constant` hold `value` in every real row."""
    model = SoftmaxRegression(dim, 3)
    clients = []
    for n in sizes:
        x = rng.normal(size=(n, dim)).astype(np.float32)
        x[:, constant] = value
        y = rng.integers(0, 3, size=(n, 1)).astype(np.int32)
        clients.append([(x[s:s + batch], y[s:s + batch]) for s in range(0, n, batch)])
    group = [client_source(model, batches, i) for i, batches in enumerate(clients)]
    return make_chunk(model, group, by_client=True)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 13), min_size=1, max_size=5),
    batch=st.sampled_from([1, 3, 4]),
    constant=st.sets(st.integers(0, 7), min_size=1, max_size=8),
    value=st.sampled_from([0.0, 1.0, -0.5, 3.0]),
    clip=st.sampled_from([1e-2, 1.0, 1e6]),
)
def test_split_columns_train_as_all_columns_do(seed, sizes, batch, constant, value, clip):
    rng = np.random.default_rng(seed)
    constant = sorted(constant)
    chunk = chunk_with_constant_columns(rng, sizes, batch, 8, constant, np.float32(value))
    x = dual.by_client_rows(chunk)
    grams = dual.grams_of(x, dual.slot_width(chunk))
    columns = constant_columns(x, chunk.denominators, least=1)
    assert columns is not None and not set(constant) & set(columns.varying.tolist()) and (columns.values[constant] == value).all()
    count = len(chunk.clients)
    kernel = rng.normal(size=(8, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    args = (np.broadcast_to(kernel, (count, 8, 3)), np.broadcast_to(bias, (count, 3)), np.float32(0.3), np.float32(clip))
    want = dual.train_dual(chunk, grams, *args)
    got = dual.train_dual(chunk, grams, *args, columns=columns)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6 + 64 * np.finfo(np.float32).eps * float(np.abs(w).max(initial=1)))


def test_per_client_kernels_split_as_well():
    rng = np.random.default_rng(3)
    chunk = chunk_with_constant_columns(rng, [9, 4, 6], 3, 8, [0, 5, 7], np.float32(1.0))
    x = dual.by_client_rows(chunk)
    columns = constant_columns(x, chunk.denominators, least=1)
    kernels = rng.normal(size=(3, 8, 3)).astype(np.float32)
    biases = rng.normal(size=(3, 3)).astype(np.float32)
    for g, w in zip(dual.train_dual(chunk, dual.grams_of(x, 3), kernels, biases, np.float32(0.3), np.float32(1), columns),
                    dual.train_dual(chunk, dual.grams_of(x, 3), kernels, biases, np.float32(0.3), np.float32(1))):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6)


def test_tff_golden_through_kept_rows_with_their_constant_columns():
    """The seed setting's 3 TFF rounds from uint8 `ClientData` datasets: from round 2 the rows and their
    constant columns (EMNIST's blank borders) are kept, and every weight stays within 1e-6 of TFF."""
    ref, config = seed_reference()
    with np.load(require(DATA_NPZ), allow_pickle=False) as data:
        ids, offsets = [str(c) for c in data["train_client_ids"]], data["train_offsets"]
        pixels, labels = data["train_pixels"], data["train_labels"]
    columns = collections.OrderedDict()
    for client_id in ref["client_ids"]:
        i = ids.index(str(client_id))
        digits = labels[offsets[i]:offsets[i + 1]] < 10
        columns[str(client_id)] = collections.OrderedDict(label=labels[offsets[i]:offsets[i + 1]][digits].astype(np.int32),
                                                          pixels=pixels[offsets[i]:offsets[i + 1]][digits])
        for leaf in columns[str(client_id)].values():
            leaf.flags.writeable = False  # read-only: its rows may be kept
    train = ClientData.from_arrays(columns, element_fn=pixels_to_float32)
    assert_tff_seed_rounds([train.create_dataset_for_client(c).batch(config["batch"]).map(
        lambda e: (e["pixels"].reshape(-1, 784), e["label"].reshape(-1, 1))) for c in columns], "vectorized")
    kept = list(cache._GROUPS.values())
    assert kept and all(g.columns is not None and len(g.columns.varying) < 784 - 784 // 8 for g in kept)


def test_norms_that_cancel_are_taken_from_rows_made_again_from_the_columns(monkeypatch):
    """Near-duplicate rows ~255 (labels 0, 1, 2) whose border columns are exactly 255: ``<G K G>`` cancels, so
    the clip norm comes from the rows, which a chunk kept as columns makes again; clip 1e-3 is active."""
    rng = np.random.default_rng(0)
    x = np.float32(255) + rng.normal(scale=0.02, size=(3, 784)).astype(np.float32)
    x[:, :200] = 255
    model = SoftmaxRegression(784, 3)
    group = [client_source(model, [(x, np.array([[0], [1], [2]], np.int32))], 0)]
    chunk = make_chunk(model, group, by_client=True)
    rows = dual.by_client_rows(chunk)
    columns = constant_columns(rows, chunk.denominators)
    assert columns is not None and columns.varying.tolist() == list(range(200, 784))
    made = []
    original = type(columns).rows
    monkeypatch.setattr(type(columns), "rows", lambda self, a, h: made.append(a) or original(self, a, h))
    args = (np.zeros((1, 784, 3), np.float32), np.zeros((1, 3), np.float32), np.float32(0.01), np.float32(1e-3))
    want = dual.train_dual(chunk, dual.grams_of(rows, 3), *args)
    got = dual.train_dual(chunk._replace(x=np.empty((0, 784), np.float32)), dual.grams_of(rows, 3), *args, columns=columns)
    assert made == [1]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-9)


def test_client_spans_join_where_their_outside_values_agree():
    rows = np.ones((3, 10), np.float32)
    rows[:, 3:7] = np.arange(12, dtype=np.float32).reshape(3, 4)
    a = client_span(rows)
    assert (a.first, a.end, a.before.tolist(), a.after.tolist()) == (3, 7, [1.0] * 3, [1.0] * 3)
    blank = client_span(np.ones((2, 10), np.float32))  # no varying column: joins any span
    assert (blank.first, blank.end) == (10, 0)
    wider = rows.copy()
    wider[0, 2] = 5.0
    joined = group_span([a, blank, client_span(wider)], 10)
    assert joined is not None and (joined.first, joined.end) == (2, 7) and joined.values.tolist() == [1, 1, 0, 0, 0, 0, 0, 1, 1, 1]
    other = rows.copy()
    other[:, 0] = 0.0  # constant too, but 0 where the others hold 1
    assert group_span([a, client_span(other)], 10) is None
    zeros, negative = np.zeros((2, 10), np.float32), np.zeros((2, 10), np.float32)
    zeros[1, 4] = negative[1, 4] = 1
    negative[:, 0] = -0.0  # equal to 0.0 as a value but not as bytes: conservatively, no span
    assert group_span([client_span(zeros)] * 2, 10) is not None and group_span([client_span(zeros), client_span(negative)], 10) is None
    assert group_span([client_span(np.arange(20, dtype=np.float32).reshape(2, 10))], 10) is None  # every column varies
    narrow = np.zeros((2, 16), np.float32)
    narrow[1, 1:15] = 1  # leaves out 2 of 16 columns, an eighth: worth it; 1 of 16 is not
    assert group_span([client_span(narrow)], 16) is not None
    narrow[1, 15] = 1
    assert group_span([client_span(narrow)], 16) is None


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 13), min_size=1, max_size=5),
    batch=st.sampled_from([1, 3, 4]),
    edges=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    value=st.sampled_from([0.0, 1.0, -0.5]),
    clip=st.sampled_from([1e-2, 1.0, 1e6]),
)
def test_a_span_trains_as_all_columns_do(seed, sizes, batch, edges, value, clip):
    rng = np.random.default_rng(seed)
    constant = list(range(edges[0])) + list(range(8 - edges[1], 8))
    chunk = chunk_with_constant_columns(rng, sizes, batch, 8, constant, np.float32(value))
    x = dual.by_client_rows(chunk)
    width = dual.slot_width(chunk)
    real = np.isfinite(chunk.denominators).reshape(len(x), -1)
    span = group_span([client_span(rows[keep]) for rows, keep in zip(x, real)], 8) if constant else None
    if 0 < len(set(constant)) < 8 and max(sizes) > 1:  # (one-row clients vary nowhere: alone they give no span)
        assert span is not None and span.first >= edges[0] and span.end <= 8 - edges[1]
    count = len(chunk.clients)
    kernel = rng.normal(size=(8, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    args = (np.broadcast_to(kernel, (count, 8, 3)), np.broadcast_to(bias, (count, 3)), np.float32(0.3), np.float32(clip))
    grams = dual.grams_of(x, width)
    want = dual.train_dual(chunk, grams, *args)
    got = dual.train_dual(chunk, grams, *args, span=span)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6 + 64 * np.finfo(np.float32).eps * float(np.abs(w).max(initial=1)))


@pytest.mark.parametrize("borders", ["same", "different"])
def test_rows_not_kept_train_over_their_clients_spans_as_the_loop_does(monkeypatch, borders):
    """Rows too many to keep (`ROWS_BYTES` 0): from round 2 each group reads only the span of columns its
    clients vary in, when their blank borders agree (and every column when they do not)."""
    from fl_blocks.algorithms import build_gradient_clipping_client_work
    from fl_blocks.placements import AllEqual

    monkeypatch.setattr(cache, "ROWS_BYTES", 0)
    rng = np.random.default_rng(7)
    data = collections.OrderedDict()
    for i, n in enumerate([9, 14, 5, 20]):
        pixels = np.full((n, 16), 255 if borders == "same" or i % 2 else 0, np.uint8)
        pixels[:, 3:13] = rng.integers(0, 256, (n, 10), dtype=np.uint8)
        data[f"c{i}"] = collections.OrderedDict(label=rng.integers(0, 3, n).astype(np.int32), pixels=pixels)
        for leaf in data[f"c{i}"].values():
            leaf.flags.writeable = False
    train = ClientData.from_arrays(data, element_fn=pixels_to_float32)
    datasets = [train.create_dataset_for_client(c).batch(4).map(lambda e: (e["pixels"], e["label"].reshape(-1, 1))) for c in data]
    lists = [[(np.array(x), np.array(y)) for x, y in d] for d in datasets]
    used = []
    original = dual.train_dual
    monkeypatch.setattr("fl_blocks.execution.vectorized.train_dual",
                        lambda *a, **k: used.append(a[7] if len(a) > 7 else None) or original(*a, **k))
    weights = AllEqual(ModelWeights([rng.normal(size=(16, 3)).astype(np.float32), np.zeros(3, np.float32)], []))
    works = {e: build_gradient_clipping_client_work(lambda: SoftmaxRegression(16, 3), build_sgdm(0.1), 1.0, executor=e)
             for e in ("vectorized", "loop")}
    want = works["loop"].next((), weights, lists).result
    for _ in range(3):
        got = works["vectorized"].next((), weights, datasets).result
        for i in range(len(lists)):
            for g, w in zip(got[i].update, want[i].update):
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-6)
    spans = [s for s in used if s is not None]
    assert used and (spans if borders == "same" else not spans)
    assert all((s.first, s.end) == (3, 13) and s.values.tolist() == [1.0] * 3 + [0.0] * 10 + [1.0] * 3 for s in spans)
