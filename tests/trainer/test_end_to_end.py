"""prepare → train → report through the command line, on a tiny config (the CI end-to-end run)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

TINY_PREPARE = {
    "corpus": "python",
    "vocab_size": "400",
    "n_layer": "1",
    "n_embd": "32",
    "n_head": "2",
    "n_positions": "48",
    "sft_steps": "20",
    "sft_batch_size": "8",
    "sft_seq_len": "32",
    "n_prompts": "64",
    "prompt_words": "3",
}
TINY_TRAIN = {
    "steps": "4",
    "batch_size": "8",
    "max_new_tokens": "8",
    "min_new_tokens": "2",
    "checkpoint_every": "2",
    "sample_every": "2",
    "threads": "1",
}
METRIC_KEYS = {
    "reward_mean",
    "reward_std",
    "kl_k1",
    "kl_k3",
    "entropy",
    "coef",
    "threshold",
    "gate",
    "phase",
    "policy_loss",
    "value_loss",
    "clip_fraction",
    "approx_kl",
    "response_length",
    "distinct_1",
    "seconds_generate",
    "seconds_score",
    "seconds_forward",
    "seconds_update",
    "seconds_controller",
    "tokens_per_second",
    "step_scale",
}


def run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "reference_trainer", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def sets(values: dict[str, str]) -> list[str]:
    return [arg for k, v in values.items() for arg in ("--set", f"{k}={v}")]


def test_prepare_train_report_end_to_end(tmp_path):
    data = tmp_path / "data"
    prepared = run("prepare", "--no-progress", "--set", f"data_dir={data}", *sets(TINY_PREPARE))
    model_dir = prepared.strip().splitlines()[-1]
    assert (data / model_dir.split("/")[-1] / "prepare.json").is_file()

    run_dir = tmp_path / "run"
    out = run(
        "train",
        "--algo",
        "safe",
        "--model",
        model_dir,
        "--run-dir",
        str(run_dir),
        "--report",
        "--no-progress",
        *sets(TINY_TRAIN),
    )
    assert f"report: {run_dir / 'report'}" in out

    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) >= METRIC_KEYS
    assert json.loads((run_dir / "config.json").read_text())["algo"] == "safe"
    assert (run_dir / "checkpoint.pt").is_file()
    assert len((run_dir / "samples.jsonl").read_text().splitlines()) == 2
    for name in ("reward", "kl", "entropy", "coef", "value_loss"):
        assert (run_dir / "report" / f"{name}.png").stat().st_size > 1000
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    for key in ("reward_mean", "crashes", "volatility", "kl_p95", "entropy_min", "wall_seconds"):
        assert key in summary
