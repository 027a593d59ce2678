"""The ``fl-blocks train`` main job: embedded data, ``--data`` sources, per-round client sampling."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
from conftest import SHARED, require

from fl_blocks import cli_data
from fl_blocks.cli import build_parser, cohorts, main, train
from fl_blocks.simulation import build_uniform_sampling_fn
from fl_blocks.simulation.datasets import download, emnist


def test_accuracy_rises_over_a_few_dozen_rounds():
    out = io.StringIO()
    accuracies = train(build_parser().parse_args(["train", "--rounds", "30"]), out=out)
    lines = out.getvalue().splitlines()
    assert "synthetic" in lines[0]
    initial = float(re.search(r"test accuracy (\S+)", lines[1]).group(1))
    assert len(accuracies) == 30
    assert max(accuracies[-5:]) > initial + 0.15
    assert re.match(r"round  30  time +\d+\.\d+ ms  test loss \d+\.\d+  test accuracy \d\.\d+$", lines[-1])


def _final_line(*flags):
    out = io.StringIO()
    train(build_parser().parse_args(["train", "--rounds", "2", "--clients", "3", *flags]), out=out)
    return [re.sub(r"time +\S+ ms", "", line) for line in out.getvalue().splitlines()]  # timings vary


BASELINE = ["--batch-size", "20", "--client-lr", "0.01", "--server-lr", "1.0", "--clip-norm", "1.0", "--seed", "0"]


@pytest.mark.parametrize(
    "flag, value", [("--batch-size", "7"), ("--client-lr", "0.05"), ("--server-lr", "0.5"), ("--clip-norm", "0.2"), ("--seed", "4")]
)
def test_each_flag_changes_the_run(flag, value):
    baseline = _final_line(*BASELINE)
    assert baseline == _final_line()  # the defaults are the tutorial's
    changed = list(BASELINE)
    changed[changed.index(flag) + 1] = value
    lines = _final_line(*changed)
    assert "3 training clients" in lines[0]
    assert lines[-1] != baseline[-1]


@pytest.mark.parametrize(
    "flag", ["--rounds=0", "--clients=-1", "--clip-norm=0", "--client-lr=-0.1", "--batch-size=x", "--seed=-1", "--server-lr=inf"]
)
def test_bad_flags_exit_with_usage_error(flag, capsys):
    with pytest.raises(SystemExit) as error:
        main(["train", flag])
    assert error.value.code == 2
    assert flag.split("=")[0] in capsys.readouterr().err


def test_python_dash_m_runs():
    result = subprocess.run([sys.executable, "-m", "fl_blocks", "train", "--rounds", "1"], capture_output=True, text=True, check=True)
    assert "round   1" in result.stdout


# --- --data, --cache-dir, --sample-clients / --sampling-seed (issue #3) ---

SQLITE_LZMA = SHARED / "data" / "emnist_tff_format_subset.sqlite.lzma"
LEAF_DIR = SHARED / "data" / "leaf_femnist_sample"


def _run(*flags):
    out = io.StringIO()
    accuracies = train(build_parser().parse_args(["train", *flags]), out=out)
    return [re.sub(r"time +\S+ ms", "", line) for line in out.getvalue().splitlines()], accuracies


def test_sqlite_lzma_into_cache_dir_and_reused(tmp_path):
    spec = f"sqlite:{require(SQLITE_LZMA)}"
    lines, accuracies = _run("--data", spec, "--rounds", "2", "--clients", "5", "--cache-dir", str(tmp_path / "cache"))
    assert lines[0].startswith(f"TFF EMNIST file {SQLITE_LZMA} (digits only): 5 training clients (the first of 12)")
    assert re.search(r"\d+ test examples from \d+ test clients$", lines[0])
    assert len(accuracies) == 2 and lines[-1].startswith("round   2")
    decompressed = tmp_path / "cache" / "emnist_tff_format_subset.sqlite"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [decompressed.name]
    stamp = decompressed.stat().st_mtime_ns
    again, _ = _run("--data", spec, "--rounds", "2", "--clients", "5", "--cache-dir", str(tmp_path / "cache"))
    assert again == lines and decompressed.stat().st_mtime_ns == stamp  # reused, not rewritten
    # the decompressed file directly, and the .lzma without --cache-dir (a temporary folder), give the same run
    assert _run("--data", f"sqlite:{decompressed}", "--rounds", "2", "--clients", "5")[0][1:] == lines[1:]
    assert _run("--data", spec, "--rounds", "2", "--clients", "5")[0] == lines


def test_sqlite_matches_emnist_loader_clients(tmp_path):
    shutil.copy(require(SQLITE_LZMA), tmp_path / "emnist_all.sqlite.lzma")
    train_data, test_data = emnist.load_data(only_digits=True, cache_dir=tmp_path)
    loaded_train, loaded_test, _ = cli_data.load_train_test(("sqlite", str(SQLITE_LZMA)), None, 10)
    assert loaded_train.client_ids == train_data.client_ids and loaded_test.client_ids == test_data.client_ids


def test_leaf_folder_runs_digits_only():
    lines, accuracies = _run("--data", f"leaf:{require(LEAF_DIR)}", "--rounds", "2", "--clients", "4")
    assert lines[0].startswith(f"LEAF FEMNIST {LEAF_DIR} (digits only): 4 training clients (the first of 10)")
    assert len(accuracies) == 2
    train_data, _, _ = cli_data.load_train_test(("leaf", str(LEAF_DIR)), None, 10)
    for client_id in train_data.client_ids:
        (batch,) = train_data.create_dataset_for_client(client_id).batch(10**6)
        assert batch["label"].max() < 10 and batch["pixels"].dtype == np.float32


def test_leaf_and_sqlite_agree_on_shared_writers():
    """Both files hold the first writers of the same npz: their digits must be identical."""
    leaf_train, _, _ = cli_data.load_train_test(("leaf", str(require(LEAF_DIR))), None, 10)
    sqlite_train, _, _ = cli_data.load_train_test(("sqlite", str(require(SQLITE_LZMA))), None, 10)
    for client_id in leaf_train.client_ids:
        (a,) = leaf_train.create_dataset_for_client(client_id).batch(10**6)
        (b,) = sqlite_train.create_dataset_for_client(client_id).batch(10**6)
        np.testing.assert_array_equal(a["label"], b["label"])
        np.testing.assert_array_equal(a["pixels"], b["pixels"])


def _args(*flags):
    return build_parser().parse_args(["train", *flags])


def test_sampled_cohorts_differ_per_round_and_are_reproducible():
    population = [f"c{i:03d}" for i in range(100)]
    cohort = cohorts(_args("--sample-clients", "10", "--sampling-seed", "3"), population)
    first = [cohort(r) for r in range(1, 6)]
    assert len({tuple(c) for c in first}) == 5
    assert all(len(set(c)) == 10 and set(c) <= set(population) for c in first)
    assert [cohorts(_args("--sample-clients", "10", "--sampling-seed", "3"), population)(r) for r in range(5, 0, -1)] == first[::-1]
    assert first == [build_uniform_sampling_fn(population, random_seed=3)(r, 10) for r in range(1, 6)]
    assert cohorts(_args("--sample-clients", "10", "--sampling-seed", "4"), population)(1) != first[0]
    fixed = cohorts(_args("--clients", "4"), population)
    assert fixed(1) == fixed(7) == population[:4]


def test_sampling_seed_makes_the_whole_run_reproducible():
    flags = ("--rounds", "3", "--clients", "8", "--sample-clients", "3")
    run = _run(*flags, "--sampling-seed", "11")
    assert "3 of 8 training clients sampled per round (seed 11)" in run[0][0]
    assert _run(*flags, "--sampling-seed", "11") == run
    assert _run(*flags, "--sampling-seed", "12")[0][2:] != run[0][2:]
    assert _run(*flags, "--sampling-seed", "11")[0][-1] != _run("--rounds", "3", "--clients", "3")[0][-1]


def test_real_data_sampling_runs():
    lines, _ = _run("--data", f"leaf:{require(LEAF_DIR)}", "--rounds", "2", "--sample-clients", "3", "--sampling-seed", "0")
    assert "3 of 10 training clients sampled per round (seed 0)" in lines[0]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("foo", "unknown data 'foo': expected synthetic, emnist, leaf:DIR or sqlite:PATH"),
        ("leaf:", "unknown data"),
        ("sqlite:", "unknown data"),
        ("emnist:x", "unknown data"),
        ("leaf:/nonexistent/dir", "/nonexistent/dir is not a LEAF FEMNIST folder with train/ and test/"),
        ("sqlite:/nonexistent/file.sqlite", "no file at /nonexistent/file.sqlite"),
    ],
)
def test_bad_data_spec_is_a_usage_error(spec, message, capsys):
    with pytest.raises(SystemExit) as error:
        main(["train", "--data", spec])
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert "argument --data" in err and message in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sampling-seed", "1"], "--sampling-seed needs --sample-clients"),
        (["--sample-clients", "11"], "--sample-clients 11 but the data has only 10 training clients (synthetic data"),
        (["--sample-clients", "0"], "--sample-clients"),
        (["--sample-clients", "2", "--sampling-seed", str(2**32)], "--sampling-seed"),
    ],
)
def test_bad_sampling_flags(flags, message, capsys):
    with pytest.raises(SystemExit) as error:
        main(["train", "--rounds", "1", *flags])
    assert error.value.code == 2 and message in capsys.readouterr().err


def test_too_many_clients_for_real_data(capsys):
    with pytest.raises(SystemExit) as error:
        main(["train", "--data", f"leaf:{require(LEAF_DIR)}", "--clients", "11"])
    assert error.value.code == 2 and "--clients 11 but the data has only 10 training clients" in capsys.readouterr().err


def test_corrupt_lzma_and_not_a_database_are_usage_errors(tmp_path, capsys):
    (tmp_path / "bad.sqlite.lzma").write_bytes(b"not lzma at all")
    (tmp_path / "bad.sqlite").write_bytes(b"not sqlite at all" * 100)
    for name, message in [("bad.sqlite.lzma", "not a valid LZMA file"), ("bad.sqlite", "not a readable TFF EMNIST SQLite")]:
        with pytest.raises(SystemExit) as error:
            main(["train", "--data", f"sqlite:{tmp_path / name}", "--cache-dir", str(tmp_path / "cache")])
        assert error.value.code == 2 and message in capsys.readouterr().err
    assert not any((tmp_path / "cache").iterdir())  # no half-written file left behind


def test_emnist_offline_is_a_clear_usage_error(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)  # no network, whatever proxy CI has
    with pytest.raises(SystemExit) as error:
        main(["train", "--data", "emnist", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert error.value.code == 2 and "--data emnist: could not download" in err and str(tmp_path) in err


def test_emnist_uses_the_cache_dir(tmp_path):
    shutil.copy(require(SQLITE_LZMA), tmp_path / "emnist_all.sqlite.lzma")
    lines, _ = _run("--data", "emnist", "--cache-dir", str(tmp_path), "--rounds", "1", "--clients", "3")
    assert lines[0].startswith("EMNIST (TFF, digits only): 3 training clients (the first of 12)")
    assert (tmp_path / "emnist_all.sqlite").exists()
