"""``python -m benchmarks.plant``: the quick sweep's json, its regeneration from the stored runs,
the statistics on hand-made inputs (``benchmarks.plant.aggregate``), and the
steered-budget comparison (``benchmarks.plant.steering``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmarks import stats as intervals
from benchmarks.plant import plan, steering
from benchmarks.plant.aggregate import paired_event
from benchmarks.plant.records import kl_runaway
from benchmarks.plant.words import NO_DISCORDANT, verdict
from safecontrol.testing import PATHOLOGIES
from safecontrol.testing.demo import DEMO_SETTINGS, KL_BUDGET, controllers

ROOT = Path(plan.__file__).resolve().parents[2]


def _plant(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "benchmarks.plant", *args], check=True, capture_output=True, cwd=ROOT
    )


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plant")
    _plant("--quick", "--out", str(out))
    assert (out / "plant.md").read_text().startswith("# ")
    assert (out / "plant_rates.png").stat().st_size > 0
    return out


@pytest.fixture(scope="module")
def quick_report(quick_out: Path) -> dict:
    return json.loads((quick_out / "plant.json").read_text())


def _check_rate(rate: dict) -> None:
    assert 0 <= rate["count"] <= rate["n"]
    assert rate["rate"] == pytest.approx(rate["count"] / rate["n"], abs=1e-6)
    assert 0.0 <= rate["low"] <= rate["rate"] <= rate["high"] <= 1.0


def _check_group(group: dict, n: int) -> None:
    assert group["n"] == n
    assert list(group["events"]) == list(plan.EVENTS)
    assert list(group["measures"]) == list(plan.MEASURES)
    for rate in group["events"].values():
        assert rate["n"] == n
        _check_rate(rate)
    for estimate in group["measures"].values():
        assert estimate["n"] == n and math.isfinite(estimate["mean"])
        assert estimate["low"] <= estimate["mean"] <= estimate["high"]


def test_quick_json_has_every_controller_and_setting_with_ordered_intervals(quick_report):
    config, results = quick_report["config"], quick_report["results"]
    seeds = config["seeds_per_setting"]
    names = list(controllers())
    settings = quick_report["settings"]
    assert config["quick"] is True and config["controllers"] == names
    assert config["controller_settings"] == {c: DEMO_SETTINGS.get(c, {}) for c in names}
    assert config["bootstrap"]["n_resamples"] == intervals.RESAMPLES
    assert len(settings) == len(PATHOLOGIES) * len(plan.LR_FACTORS) * len(plan.PULL_FACTORS)
    assert {s["preset"] for s in settings.values()} == set(PATHOLOGIES)
    assert quick_report["meta"]["runs"] == len(settings) * seeds * len(names)

    assert results["controllers"] == names
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
        for rate in by_factor.values():
            _check_rate(rate)

    others = [c for c in names if c != plan.SAFE]
    assert list(results["paired_overall"]) == others
    for other, events in results["paired_overall"].items():
        for event, item in events.items():
            assert (
                item["both"] + item["safe_only"] + item["other_only"] + item["neither"]
                == (item["n"])
            )
            assert -1.0 <= item["low"] <= item["difference"] <= item["high"] <= 1.0
            assert 0.0 <= item["p_value"] <= item["p_holm"] <= 1.0
            assert quick_report["words"]["overall"][other][event]

    for setting, group in quick_report["runs"].items():
        for columns in group.values():
            assert all(len(values) == seeds for values in columns.values()), setting
            assert set(columns["kl_runaway"]) <= {0, 1}


def test_the_stored_runs_regenerate_the_json_and_markdown_exactly(quick_out, tmp_path):
    _plant("--from-json", str(quick_out / "plant.json"), "--out", str(tmp_path))
    for name in ("plant.json", "plant.md"):
        assert (tmp_path / name).read_text() == (quick_out / name).read_text(), name


def test_the_page_shows_the_stored_verdicts(quick_report, quick_out):
    page = (quick_out / "plant.md").read_text()
    for other, events in quick_report["words"]["overall"].items():
        for event, words in events.items():
            assert f"| {other} | {plan.EVENTS[event]} |" in page
            assert f"| {words} |" in page


def test_kl_runaway_is_p95_above_three_budgets():
    calm = np.full(100, 0.1)
    assert not kl_runaway(calm)
    # Five steps in a hundred far above the budget leave the p95 (linear interpolation) low...
    spiky = calm.copy()
    spiky[:5] = 10.0
    assert np.percentile(spiky, 95) < 3 * KL_BUDGET and not kl_runaway(spiky)
    # ...six put it above: the run spent more than 5% of its steps beyond 3× the budget.
    spiky[5] = 10.0
    assert kl_runaway(spiky)
    # The bound is strict and scales with the factor.
    assert not kl_runaway(np.full(20, 3 * KL_BUDGET))
    assert kl_runaway(np.full(20, 3 * KL_BUDGET + 1e-9))
    assert kl_runaway(np.full(20, 0.5), factor=1.5)
    assert not kl_runaway(np.full(20, 0.5), factor=2.0)


def test_paired_event_counts_discordant_pairs_and_tests_them_exactly():
    safe = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0])
    other = np.array([1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0])
    item = paired_event(safe, other)
    assert (item.both, item.safe_only, item.other_only, item.neither) == (2, 1, 7, 2)
    assert item.difference == pytest.approx(-6 / 12)
    assert item.p_value == pytest.approx(stats.binomtest(1, 8).pvalue)
    assert item.p_holm is None
    assert verdict(item, 0.01, "p holm") == "fewer under SAFE"
    assert verdict(item, item.p_value, "p value").startswith("cannot conclude (p value = ")
    same = paired_event(safe, safe)
    assert same.p_value == 1.0 and same.difference == 0.0
    assert verdict(same, 0.0, "p holm") == NO_DISCORDANT


def test_the_steering_comparison_pairs_both_modes_on_every_preset():
    result = steering.compare(seeds=1, steps=40)
    assert list(result.presets) == list(PATHOLOGIES)
    for preset in result.presets.values():
        assert preset.runs == 9  # one seed on each of the 9 settings
        assert set(preset.kl_p95) == {steering.FIXED, steering.STEER, steering.HOLD}
        assert min(preset.kl_p95.values()) >= 0.0
        assert set(preset.true_final_difference) == {steering.STEER, steering.HOLD}
        for mode, difference in preset.true_final_difference.items():
            expected = preset.true_reward_final[mode] - preset.true_reward_final[steering.FIXED]
            assert difference.n == 9 and difference.mean == pytest.approx(expected)
            assert difference.low is not None
            assert difference.low <= difference.mean <= difference.high
    assert "| late_crash | 9 |" in steering.render(result)
