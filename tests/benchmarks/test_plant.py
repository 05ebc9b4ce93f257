"""``python -m benchmarks.plant``: the quick sweep's json, and the statistics on hand-made inputs
(``benchmarks.plant_report``, ``benchmarks.stats``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmarks import stats as intervals, plant, plant_report
from safecontrol.testing import PATHOLOGIES
from safecontrol.testing.demo import DEMO_SETTINGS, controllers

ROOT = Path(plant.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("plant")
    subprocess.run(
        [sys.executable, "-m", "benchmarks.plant", "--quick", "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    assert (out / "plant.md").read_text().startswith("# ")
    assert (out / "plant_rates.png").stat().st_size > 0
    return json.loads((out / "plant.json").read_text())


def _check_rate(summary: dict) -> None:
    assert 0 <= summary["count"] <= summary["n"]
    assert summary["rate"] == pytest.approx(summary["count"] / summary["n"], abs=1e-6)
    lo, hi = summary["ci"]
    assert 0.0 <= lo <= summary["rate"] <= hi <= 1.0


def _check_group(group: dict, n: int) -> None:
    assert group["n"] == n
    assert set(group["events"]) == set(plant_report.EVENTS)
    assert set(group["measures"]) == set(plant_report.MEASURES)
    for summary in group["events"].values():
        assert summary["n"] == n
        _check_rate(summary)
    for summary in group["measures"].values():
        lo, hi = summary["ci"]
        assert math.isfinite(summary["mean"]) and lo <= hi


def test_quick_json_has_every_controller_and_setting_with_ordered_intervals(quick_report):
    config, results = quick_report["config"], quick_report["results"]
    seeds = config["seeds_per_setting"]
    names = list(controllers())
    settings = quick_report["settings"]
    assert config["quick"] is True and config["controllers"] == names
    assert config["controller_settings"] == {c: DEMO_SETTINGS.get(c, {}) for c in names}
    assert len(settings) == len(PATHOLOGIES) * len(plant.LR_FACTORS) * len(plant.PULL_FACTORS)
    assert {s["preset"] for s in settings.values()} == set(PATHOLOGIES)
    assert quick_report["meta"]["runs"] == len(settings) * seeds * len(names)

    assert list(results["by_setting"]) == list(settings)
    for group in results["by_setting"].values():
        assert list(group) == names
        for summary in group.values():
            _check_group(summary, seeds)
    per_preset = seeds * len(settings) // len(PATHOLOGIES)
    assert list(results["by_preset"]) == list(PATHOLOGIES)
    for group in results["by_preset"].values():
        assert list(group) == names
        for summary in group.values():
            _check_group(summary, per_preset)
    assert list(results["overall"]) == names
    for summary in results["overall"].values():
        _check_group(summary, seeds * len(settings))
    for by_factor in results["runaway_sensitivity"].values():
        for summary in by_factor.values():
            _check_rate(summary)

    others = [c for c in names if c != plant_report.SAFE]
    assert list(results["paired_vs_safe"]["overall"]) == others
    for events in results["paired_vs_safe"]["overall"].values():
        for item in events.values():
            assert (
                item["both"] + item["safe_only"] + item["other_only"] + item["neither"]
                == (item["n"])
            )
            lo, hi = item["ci"]
            assert -1.0 <= lo <= item["difference"] <= hi <= 1.0
            assert 0.0 <= item["p_value"] <= item["p_holm"] <= 1.0
            assert item["conclusion"]

    for setting, group in quick_report["runs"].items():
        for columns in group.values():
            assert all(len(values) == seeds for values in columns.values()), setting
            assert set(columns["kl_runaway"]) <= {0, 1}


def test_kl_runaway_is_p95_above_three_budgets():
    budget = plant_report.KL_BUDGET
    calm = np.full(100, 0.1)
    assert not plant_report.kl_runaway(calm)
    # Five steps in a hundred far above the budget leave the p95 (linear interpolation) low...
    spiky = calm.copy()
    spiky[:5] = 10.0
    assert np.percentile(spiky, 95) < 3 * budget and not plant_report.kl_runaway(spiky)
    # ...six put it above: the run spent more than 5% of its steps beyond 3× the budget.
    spiky[5] = 10.0
    assert plant_report.kl_runaway(spiky)
    # The bound is strict and scales with the factor.
    assert not plant_report.kl_runaway(np.full(20, 3 * budget))
    assert plant_report.kl_runaway(np.full(20, 3 * budget + 1e-9))
    assert plant_report.kl_runaway(np.full(20, 0.5), factor=1.5)
    assert not plant_report.kl_runaway(np.full(20, 0.5), factor=2.0)


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (0, 10, (0.0, 3.841459 / 13.841459)),  # z²/(n + z²) at zero successes
        (10, 10, (10 / 13.841459, 1.0)),
        (5, 10, (0.236593, 0.763407)),
        (81, 263, (0.255289, 0.366210)),
    ],
)
def test_wilson_interval_matches_known_values(successes, n, expected):
    lo, hi = intervals.wilson_interval(successes, n)
    assert lo == pytest.approx(expected[0], abs=1e-5)
    assert hi == pytest.approx(expected[1], abs=1e-5)
    reference = stats.binomtest(successes, n).proportion_ci(method="wilson")
    assert (lo, hi) == pytest.approx((reference.low, reference.high), abs=1e-9)


def test_wilson_interval_edges():
    assert intervals.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        intervals.wilson_interval(3, 2)
    for n in (1, 7, 100):
        for k in range(n + 1):
            lo, hi = intervals.wilson_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_newcombe_paired_interval_matches_fagerland_example():
    # Cavo et al. 2012 in Fagerland, Lydersen & Laake, ch. 8: estimate −0.0621 (−0.1186, −0.0046).
    lo, hi = intervals.newcombe_paired_interval(both=59, first_only=6, second_only=16, neither=80)
    assert lo == pytest.approx(-0.1186, abs=5e-5)
    assert hi == pytest.approx(-0.0046, abs=5e-5)


def test_paired_comparison_counts_discordant_pairs_and_tests_them_exactly():
    safe = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0])
    other = np.array([1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0])
    item = plant_report.paired_comparison(safe, other)
    assert (item["both"], item["safe_only"], item["other_only"], item["neither"]) == (2, 1, 7, 2)
    assert item["difference"] == pytest.approx(-6 / 12)
    assert item["p_value"] == pytest.approx(stats.binomtest(1, 8).pvalue)
    same = plant_report.paired_comparison(safe, safe)
    assert same["p_value"] == 1.0 and same["difference"] == 0.0
    same["p_holm"] = 1.0
    assert "no discordant pairs" in plant_report.conclusion(same)


def test_holm_adjustment():
    assert intervals.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
