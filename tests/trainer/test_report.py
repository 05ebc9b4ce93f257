"""``report`` on a metrics.jsonl whose step record lacks a number the report reads, or
holds a NaN token, is exit 2 with an error naming the file, the line and the key or token."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import build_tiny

from reference_trainer.__main__ import main
from reference_trainer.config import TrainConfig
from reference_trainer.run import train


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A three-step run of the SAFE controller (which logs a threshold at every step)."""
    tiny = build_tiny(tmp_path_factory.mktemp("tiny"))
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    config = TrainConfig(
        algo="safe",
        model=str(tiny),
        run_dir=str(run_dir),
        steps=3,
        batch_size=4,
        max_new_tokens=6,
        min_new_tokens=1,
        threads=1,
    )
    train(config, reward_fn=lambda prompts, completions: [0.5] * len(completions), progress=False)
    return run_dir


def edited(finished: Path, tmp_path: Path, edit) -> Path:
    """A copy of the run whose second metrics line is ``edit(line)``, after a blank line (so
    that the line number is not the step's)."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines()
    assert json.loads(lines[1])["step"] == 2
    path.write_text("\n".join([lines[0], "", edit(lines[1]), *lines[2:]]) + "\n")
    return run_dir


def without(key: str):
    def edit(line: str) -> str:
        row = json.loads(line)
        del row[key]
        return json.dumps(row)

    return edit


def test_the_unedited_run_reports(finished, capsys):
    assert main(["report", str(finished)]) == 0


@pytest.mark.parametrize("key", ["reward_mean", "threshold"])  # always logged; logged by SAFE
def test_a_step_record_without_a_reported_key_is_named(finished, tmp_path, capsys, key):
    run_dir = edited(finished, tmp_path, without(key))
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{run_dir / 'metrics.jsonl'} line 3 (step 2) lacks {key}," in err


def test_a_step_record_holding_a_string_is_named(finished, tmp_path, capsys):
    run_dir = edited(
        finished, tmp_path, lambda line: line.replace('"kl_k3": ', '"kl_k3": "x", "_": ')
    )
    assert main(["report", str(run_dir)]) == 2
    assert (
        f"{run_dir / 'metrics.jsonl'} line 3: kl_k3 is 'x', not a number" in capsys.readouterr().err
    )


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_nan_token_in_the_metrics_is_named_with_file_and_line(finished, tmp_path, capsys, token):
    run_dir = edited(
        finished, tmp_path, lambda line: line.replace('"kl_k3": ', f'"kl_k3": {token}, "_": ')
    )
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{run_dir / 'metrics.jsonl'} line 3 is corrupt" in err and token in err
