"""The README's ported tutorial runs, and its hand-written client work equals the packaged one."""

from __future__ import annotations

import pathlib
import re

import numpy as np

from conftest import SHARED, require
from fl_blocks.algorithms import build_fed_avg_with_clipping
from fl_blocks.optimizers import build_sgdm

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def section_blocks(heading: str) -> list[str]:
    """The ```python blocks of one ``## heading`` section of the README."""
    text = README.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def tutorial_blocks() -> list[str]:
    return section_blocks("The tutorial, ported step by step")


def test_readme_tutorial_runs_and_matches_packaged_algorithm(capsys):
    blocks = tutorial_blocks()
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert capsys.readouterr().out.count("update_non_finite") == 5

    packaged = build_fed_avg_with_clipping(namespace["model_fn"], build_sgdm(0.01), build_sgdm(1.0), clip_norm=1.0)
    state = packaged.initialize()
    for _ in range(5):
        state, _ = packaged.next(state, namespace["federated_train_data"])
    for mine, theirs in zip(namespace["weights"].trainable, packaged.get_model_weights(state).trainable):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-7)
    initial = namespace["initial_model_weights_fn"]().trainable
    assert not np.allclose(initial[0], namespace["weights"].trainable[0])


def test_readme_kmeans_walkthrough_runs_and_matches_build_fed_kmeans(capsys):
    blocks = section_blocks("Writing a new algorithm")
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:  # the blocks assert convergence and equality with the packaged build_fed_kmeans
        exec(compile(block, str(README), "exec"), namespace)
    assert "{'num_examples': np.float32(600.0)}" in capsys.readouterr().out
    process = namespace["fed_kmeans"]
    assert [type(block).__name__ for block in (namespace["distributor"], namespace["client_work"], namespace["aggregator"], namespace["finalizer"])] == [
        "DistributionProcess", "ClientWorkProcess", "AggregationProcess", "FinalizerProcess"
    ]
    assert not namespace["aggregator"].is_weighted
    # The blocks' own state: cluster weights 1 + 10 rounds * points per blob, in the finalizer.
    labels, order = namespace["labels"], namespace["order"]
    np.testing.assert_array_equal(namespace["state"].finalizer[order], 1 + 10 * np.bincount(labels, minlength=3))
    assert process.get_model_weights(namespace["state"]).shape == (3, 2)


def test_readme_names_both_setup_commands():
    text = README.read_text()
    assert 'python -m pip install . && fl-blocks train' in text
    assert 'python -m pip install -e ".[data,test]" && python -m pytest' in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install --quiet -e ".[data,test]"' in ci and "python -m pytest" in ci


def test_readme_federated_data_section_runs():
    require(SHARED / "data" / "femnist_leaf_subset.npz")
    require(SHARED / "data" / "emnist_tff_format_subset.sqlite.lzma")
    blocks = section_blocks("Federated data")
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:  # each block asserts what it shows
        exec(compile(block, str(README), "exec"), namespace)
    assert len(namespace["emnist_train"].client_ids) > 0 and len(namespace["cohort"]) == 2
