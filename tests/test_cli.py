"""The ``fl-blocks train`` main job on the embedded data."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from fl_blocks.cli import build_parser, main, train


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
