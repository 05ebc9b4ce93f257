"""scripts/gpu_check.sh, the prepared GPU check, run tiny on the CPU: it builds its model, trains,
prints the first iteration's decision beside the CPU float32 one and writes finite numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from benchmarks.speed import gpu_check  # noqa: E402

ROOT = Path(gpu_check.__file__).resolve().parents[2]
TINY = ("--device", "cpu", "--size", "tiny", "--iterations", "1")


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
    )


def numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [x for item in value.values() for x in numbers(item)]
    if isinstance(value, list):
        return [x for item in value for x in numbers(item)]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    return [float(value)]


def check_summary(out: Path, dtype: str) -> dict:
    summary = json.loads(out.read_text())
    assert all(math.isfinite(x) for x in numbers(summary))
    assert summary["meta"]["dtype"] == dtype and summary["meta"]["size"] == "tiny"
    assert 5e4 < summary["meta"]["parameters"] < 5e5
    assert len(summary["iterations"]) == 1 and summary["iterations"][0]["tokens_per_second"] > 0
    assert summary["peak_cuda_bytes"] is None and summary["peak_rss_bytes"] > 0
    first = summary["first_iteration"]
    for row in first.values():  # kl-budget's first decision sets a budget and a step limit
        assert set(gpu_check.DECISION_KEYS + gpu_check.COMPARED_STATS) <= set(row)
        assert row["budget"] > 0 and row["max_preview_kl"] > 0
    assert set(summary["difference"]) == set(first["device"])
    return summary


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_tiny_cpu_check_prints_the_decision_comparison_and_writes_finite_numbers(
    tmp_path: Path, dtype: str
) -> None:
    out = tmp_path / "gpu_check.json"
    done = run_script(*TINY, "--dtype", dtype, "--out", str(out))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "first iteration: decision and statistics" in done.stdout
    assert f"cpu {dtype}" in done.stdout and "cpu float32" in done.stdout
    assert "tokens/s" in done.stdout and "peak RSS" in done.stdout
    assert done.stdout.rstrip().endswith("OK")
    summary = check_summary(out, dtype)
    if dtype == "float32":
        # Same device, dtype, seed and threads: the trainer's runs are bit-identical, so the two
        # first iterations must be too (a difference here is lost determinism, not bf16).
        assert all(delta == 0.0 for delta in summary["difference"].values())


def test_the_100m_size_is_about_100_million_parameters() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    shape = gpu_check.SIZES["100m"]
    config = GPT2Config(n_positions=gpu_check.N_POSITIONS, **shape)
    with torch.device("meta"):  # shapes only: no 400 MB of weights
        model = GPT2LMHeadModel(config)
    assert 90e6 < sum(p.numel() for p in model.parameters()) < 110e6


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there: the check would run")
def test_without_a_gpu_the_default_check_fails_before_building_anything() -> None:
    done = run_script("--size", "tiny")
    assert done.returncode != 0
    assert "torch.cuda.is_available() is False" in done.stderr
    assert "model:" not in done.stdout


def test_the_reward_is_the_share_of_letters() -> None:
    assert gpu_check.alphabetic_share(["p"] * 3, ["ab12", "", "xyz"]) == [0.5, 0.0, 1.0]
