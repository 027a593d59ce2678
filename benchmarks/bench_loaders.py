"""Load time and examples/s of the EMNIST SQLite and LEAF readers, and per-batch iteration cost.

    python benchmarks/bench_loaders.py [--runs 5]

Uses ../shared/data (TFF-format SQLite subset, LEAF JSON sample, the npz). Medians of
`--runs` runs; the SQLite file is decompressed once into a temporary cache first.
Iteration: ``create_dataset_for_client(id).batch(20).map(fmt)`` over all 105 npz writers.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import shutil
import sys
import tempfile
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import median_seconds  # noqa: E402
from fl_blocks.simulation.datasets import ClientData, download, emnist, leaf, pixels_to_float32  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def examples(pair: tuple[ClientData, ClientData]) -> int:
    return sum(cd.create_dataset_for_client(c).cardinality or 0 for cd in pair for c in cd.client_ids)


def fmt(element: Any) -> tuple[np.ndarray, np.ndarray]:
    return element["pixels"].reshape(-1, 784), element["label"].reshape(-1, 1)


def npz_client_data() -> ClientData:
    with np.load(DATA / "femnist_leaf_subset.npz", allow_pickle=False) as data:
        ids, offsets = list(data["train_client_ids"]), data["train_offsets"]
        pixels, labels = data["train_pixels"], data["train_labels"].astype(np.int32)
    columns = {c: collections.OrderedDict(label=labels[offsets[i]:offsets[i + 1]], pixels=pixels[offsets[i]:offsets[i + 1]])
               for i, c in enumerate(ids)}
    return ClientData.from_arrays(columns, element_fn=pixels_to_float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        shutil.copy(DATA / "emnist_tff_format_subset.sqlite.lzma", pathlib.Path(cache) / "emnist_all.sqlite.lzma")
        decompress = median_seconds(lambda: download.get_compressed_file(emnist.EMNIST_URL, cache), 1, warm_up=False)
        path = download.get_compressed_file(emnist.EMNIST_URL, cache)
        for only_digits in (True, False):
            seconds = median_seconds(lambda: emnist.load_data_from_sqlite(path, only_digits), args.runs, warm_up=False)
            n = examples(emnist.load_data_from_sqlite(path, only_digits))
            print(f"sqlite only_digits={only_digits}: {n} examples, load {seconds * 1e3:.1f} ms, {n / seconds:,.0f} examples/s")
    print(f"sqlite .lzma decompression (once per cache): {decompress * 1e3:.1f} ms")
    seconds = median_seconds(lambda: leaf.load_femnist(DATA / "leaf_femnist_sample"), args.runs, warm_up=False)
    n = examples(leaf.load_femnist(DATA / "leaf_femnist_sample"))
    print(f"LEAF JSON: {n} examples, load {seconds * 1e3:.1f} ms, {n / seconds:,.0f} examples/s")

    train = npz_client_data()
    batches = sum(1 for c in train.client_ids for _ in train.create_dataset_for_client(c).batch(20).map(fmt))
    seconds = median_seconds(
        lambda: [b for c in train.client_ids for b in train.create_dataset_for_client(c).batch(20).map(fmt)], args.runs, warm_up=False)
    print(f"iterate batch(20).map(fmt), {len(train.client_ids)} writers: {batches} batches in {seconds * 1e3:.1f} ms, "
          f"{seconds / batches * 1e6:.1f} us/batch")


if __name__ == "__main__":
    main()
