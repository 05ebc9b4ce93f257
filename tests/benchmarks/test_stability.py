"""The stability sweep: its statistics on hand-made data, and ``--quick`` end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import stability
from benchmarks import stability_render as render
from benchmarks import stability_report as report

SCRIPT = Path(stability.__file__)


def test_unanimous_improvement_over_eight_seeds_is_significant() -> None:
    base = np.linspace(0.5, 0.6, 8)
    result = report.paired(base + 0.1 + np.arange(8) * 0.01, base, direction=+1)
    assert result["p_value"] == pytest.approx(2 / 2**8)
    assert result["ci"][0] > 0
    assert result["verdict"] == "better"
    # Lower is better for e.g. KL p95: the same data reads as worse.
    assert report.paired(base + 0.1 + np.arange(8) * 0.01, base, direction=-1)["verdict"] == "worse"


def test_five_seeds_can_never_conclude() -> None:
    base = np.zeros(5)
    result = report.paired(base + np.arange(1, 6), base, direction=+1)
    assert result["min_attainable_p"] == pytest.approx(2 / 2**5)
    assert result["p_value"] > 0.05
    assert result["verdict"] == "too few seeds to conclude"


def test_mixed_signs_are_no_significant_difference() -> None:
    diff = np.array([0.3, -0.2, 0.1, -0.4, 0.2, -0.1, 0.05, -0.05])
    result = report.paired(diff, np.zeros(8), direction=+1)
    assert result["verdict"] == "no significant difference"
    assert result["ci"][0] < 0 < result["ci"][1]


def test_identical_runs_have_no_difference() -> None:
    result = report.paired(np.ones(8), np.ones(8), direction=+1)
    assert result["p_value"] is None
    assert result["verdict"] == "no difference on any seed"


def test_bootstrap_ci_brackets_the_mean_and_is_exact_for_constants() -> None:
    x = np.random.default_rng(0).normal(size=8)
    low, high = report.bootstrap_ci(x)
    assert low < x.mean() < high
    assert report.bootstrap_ci(np.full(8, 2.5)) == (2.5, 2.5)
    assert report.bootstrap_ci(np.array([1.0])) is None


def test_band_of_identical_curves_is_the_curve() -> None:
    curves = np.tile(np.arange(5.0), (4, 1))
    mean, low, high = render.band(curves)
    assert np.array_equal(mean, curves[0])
    assert np.array_equal(low, curves[0]) and np.array_equal(high, curves[0])


def test_every_variant_has_seeds_in_every_regime_and_ablations_in_stress() -> None:
    specs = stability.run_specs(stability.FULL)
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) == 2 * 4 * 8 + 5 * 5
    for regime in stability.REGIMES:
        for variant in stability.ALGORITHMS:
            seeds = {s.seed for s in specs if (s.regime, s.variant) == (regime, variant)}
            assert seeds == set(range(8))
    ablated = {s.variant for s in specs if s.variant in stability.ABLATIONS}
    assert ablated == set(stability.ABLATIONS)
    assert {s.regime for s in specs if s.variant in stability.ABLATIONS} == {"stress"}


def test_each_ablation_changes_the_trainer_config(tmp_path: Path) -> None:
    from reference_trainer.config import TrainConfig

    def config(variant: str) -> TrainConfig:
        spec = stability.RunSpec("stress", variant, 0)
        return TrainConfig(**stability.train_fields(spec, stability.FULL, tmp_path, ".data", ""))

    full = config("safe")
    for variant in stability.ABLATIONS:
        assert config(variant) != full, variant
    assert (
        config("safe").lr
        != TrainConfig(
            **stability.train_fields(
                stability.RunSpec("standard", "safe", 0), stability.FULL, tmp_path, ".data", ""
            )
        ).lr
    )


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_quick_sweep_runs_resumes_and_reports(tmp_path: Path) -> None:
    runs, out, data = tmp_path / "runs", tmp_path / "out", tmp_path / "data"
    common = ("--runs", str(runs), "--out", str(out), "--data-dir", str(data))
    first = _run(*common)
    assert first.returncode == 0, first.stderr[-3000:]
    total = len(stability.run_specs(stability.QUICK))
    assert f"0 of {total} runs already finished" in first.stdout
    results = json.loads((out / "stability.json").read_text())
    assert set(results["groups"]) == {"standard", "stress"}
    assert set(results["groups"]["stress"]) == set(stability.ALGORITHMS) | set(stability.ABLATIONS)
    assert results["comparisons"]["stress"]["safe-no-gate"].keys() == {"ppo", "safe"}
    # Two seeds can never conclude: the report must say so rather than claim a result.
    verdict = results["comparisons"]["standard"]["safe"]["ppo"]["reward_mean"]["verdict"]
    assert verdict in ("too few seeds to conclude", "no difference on any seed")
    assert results["claims"][0]["claim"].startswith("higher training-average")
    for plot in results["plots"]:
        assert (out / plot).stat().st_size > 1000
    markdown = (out / "stability.md").read_text()
    assert "## The paper's claims" in markdown and "safe-published" in markdown

    # Finished runs are skipped; the report is rebuilt from the same runs, unchanged.
    again = _run(*common)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{total} of {total} runs already finished" in again.stdout
    assert json.loads((out / "stability.json").read_text())["groups"] == results["groups"]

    # A finished run whose config no longer matches the plan is an error naming it.
    done = runs / "stress" / "safe" / "seed0" / "done.json"
    record = json.loads(done.read_text())
    record["config"]["lr"] = 0.5
    done.write_text(json.dumps(record))
    changed = _run(*common)
    assert changed.returncode != 0
    assert "stress/safe/seed0" in changed.stderr and "'lr'" in changed.stderr


def test_only_pattern_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    result = _run(
        "--runs", str(tmp_path), "--data-dir", str(tmp_path / "data"), "--only", "nowhere/*"
    )
    assert result.returncode != 0
    assert "nowhere/*" in result.stderr


def test_the_overhead_claim_reads_safes_row_of_the_committed_overhead_results() -> None:
    results = Path(report.__file__).parent / "results"
    overhead = json.loads((results / "overhead.json").read_text())
    speed = json.loads((results / "trainer_speed.json").read_text())
    claim = report.overhead_claim({}, overhead, speed)
    assert claim["controller_us_per_update"] == overhead["controllers"]["safe"]["median_us"]
    assert claim["verdict"] in ("confirmed", "mixed", "refuted")


def test_the_committed_overhead_claim_is_that_of_the_committed_speed_results() -> None:
    results = Path(report.__file__).parent / "results"
    speed = json.loads((results / "trainer_speed.json").read_text())
    (claim,) = [
        c
        for c in json.loads((results / "stability.json").read_text())["claims"]
        if c["claim"] == report.OVERHEAD_CLAIM
    ]
    iteration = {algo: speed["results"][algo]["total"] for algo in ("ppo", "safe")}
    assert claim["iteration_seconds"] == iteration


def test_refresh_overhead_rewrites_only_the_overhead_claim(tmp_path: Path) -> None:
    results = Path(report.__file__).parent / "results"
    for name in ("stability.json", "overhead.json", "trainer_speed.json"):
        shutil.copy(results / name, tmp_path / name)
    speed = json.loads((tmp_path / "trainer_speed.json").read_text())
    speed["results"]["safe"]["total"] = 2.0 * speed["results"]["ppo"]["total"]
    (tmp_path / "trainer_speed.json").write_text(json.dumps(speed))
    before = json.loads((tmp_path / "stability.json").read_text())
    assert stability.main(["--refresh-overhead", "--out", str(tmp_path)]) == 0
    after = json.loads((tmp_path / "stability.json").read_text())
    pairs = zip(before["claims"], after["claims"], strict=True)
    changed = [i for i, (a, b) in enumerate(pairs) if a != b]
    assert [after["claims"][i]["claim"] for i in changed] == [report.OVERHEAD_CLAIM]
    claim = after["claims"][changed[0]]
    assert claim["method_overhead"] == pytest.approx(1.0)
    assert claim["verdict"] == "mixed"  # the update is negligible, the iteration is not
    assert {k: v for k, v in after.items() if k != "claims"} == {
        k: v for k, v in before.items() if k != "claims"
    }
    assert "costs +100% against PPO's" in (tmp_path / "stability.md").read_text()
    assert stability.main(["--refresh-overhead", "--out", str(tmp_path / "none")]) == 2
