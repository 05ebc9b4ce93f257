"""Gold against the learning rate (``benchmarks/frontier/lr_curve.py``) and how the learning-rate
sweep's cells enter the frontier's answers."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from frontier_records import run_record

from benchmarks.frontier import plan as frontier
from benchmarks.frontier.__main__ import strict
from benchmarks.frontier.aggregate import aggregate
from benchmarks.frontier.cells import NO_BETA
from benchmarks.frontier.lr_curve import BEST_FIXED_BETA
from benchmarks.frontier.lr_report import lr_section
from benchmarks.frontier.render import plot
from benchmarks.frontier.words import frontier_words
from benchmarks.readme_results import frontier_section

SHIFT = (0.0, 0.02, -0.02)


def sweep_records(golds: dict[str, dict[str, float]], seeds: int = 3) -> list:
    return [
        run_record(variant, s, gold + SHIFT[s], regime=regime)
        for regime, by_variant in golds.items()
        for variant, gold in by_variant.items()
        for s in range(seeds)
    ]


GOLDS = {
    "lr-3e-4": {"beta-0.17": 0.30, "tr-beta-0.3": 0.28, NO_BETA: 0.32},
    "standard": {
        "beta-0.1": 0.40,
        "beta-0.17": 0.46,
        "tr-beta-0.3": 0.44,
        NO_BETA: 0.43,
        "safe": 0.44,
    },
    "lr-3e-3": {"beta-0.17": 0.19, "tr-beta-0.3": 0.27, NO_BETA: 0.45},
    "stress": {
        "beta-0.1": 0.03,
        "beta-0.3": 0.05,
        "tr-beta-0.3": 0.30,
        NO_BETA: 0.35,
        "safe": 0.40,
    },
}
"""kl-budget peaks at lr 3e-3, the fixed β at the standard lr; safe runs at two lrs only."""


def test_each_curve_has_its_points_by_learning_rate_and_the_best_beta_names_its_beta() -> None:
    curves = {c.name: c for c in aggregate(sweep_records(GOLDS)).lr_curves["topic"]}
    assert set(curves) == {*frontier.LR_SWEEP, BEST_FIXED_BETA}
    ours = curves[NO_BETA]
    assert [p.lr for p in ours.points] == [3e-4, 1e-3, 3e-3, 1e-2]
    assert [p.gold_final.mean for p in ours.points] == pytest.approx([0.32, 0.43, 0.45, 0.35])
    assert ours.best is not None and ours.best.lr == 3e-3
    # The fixed β 0.17 is not run at the stress lr: three points, and the best-β curve takes
    # each lr's own best there.
    assert [p.lr for p in curves["beta-0.17"].points] == [3e-4, 1e-3, 3e-3]
    best = curves[BEST_FIXED_BETA]
    assert [p.variant for p in best.points] == ["beta-0.17", "beta-0.17", "beta-0.17", "beta-0.3"]
    assert best.best is not None and best.best.lr == 1e-3


def test_a_variant_run_at_one_learning_rate_has_no_curve() -> None:
    golds = {"standard": GOLDS["standard"], "lr-3e-3": {NO_BETA: 0.45}}
    curves = aggregate(sweep_records(golds)).lr_curves["topic"]
    # No fixed β ran at lr 3e-3: the best-β curve has one point, so no curve either.
    assert [c.name for c in curves] == [NO_BETA]
    # Only the standard lr: no curve at all, and no section in the report.
    agg = aggregate(sweep_records({"standard": GOLDS["standard"]}))
    assert agg.lr_curves == {}
    assert lr_section(agg, frontier_words(agg).lr_curves, "frontier") == []


def test_picks_are_made_over_the_full_grid_regimes_only() -> None:
    # safe beats kl-budget at the standard and stress lrs but is not part of the lr sweep: it
    # stays the pick, and the per-task answer speaks of those two regimes alone.
    agg = aggregate(sweep_records(GOLDS))
    assert agg.answers["topic"].pick == "safe"
    assert set(agg.answers["topic"].per_regime) == {"standard", "stress"}
    assert agg.overall.pick == "safe"
    # The goal check still judges kl-budget in every cell it ran, the sweep's included.
    assert {row.regime for row in agg.goal.cells} == set(GOLDS)
    text = frontier_words(agg)
    assert "*lr-3e-3*" not in text.tasks["topic"]
    # The sweep's lrs ran one β: the regret there is against it, and the answer says so.
    assert (
        "at lr 0.003 (*lr-3e-3*) against its one fixed β, `beta-0.17`, +0.260" in text.plain_answer
    )
    assert "at lr 0.001 (*standard*) -0.030" in text.plain_answer
    assert "`kl-budget` peaks at lr 0.003 with gold 0.450" in text.lr_curves["topic"]
    assert text.lr_curves["topic"].startswith("`kl-budget`")


def test_the_report_tables_each_lr_and_draws_one_plot(tmp_path: Path) -> None:
    agg = aggregate(sweep_records(GOLDS))
    lines = lr_section(agg, frontier_words(agg).lr_curves, "frontier")
    table = "\n".join(lines)
    assert "| final gold at lr → | 0.0003 | 0.001 | 0.003 | 0.01 |" in table
    assert "| beta-0.17 | 0.300 " in table and "| not run |" in table
    assert "`beta-0.3` 0.050" in table
    assert lines[-2] == "![gold against learning rate](frontier_gold_vs_lr.png)"
    written = plot(agg, tmp_path)
    assert tmp_path / "frontier_gold_vs_lr.png" in written
    assert (tmp_path / "frontier_gold_vs_lr.png").stat().st_size > 10_000


def test_the_readme_tables_the_full_grid_lrs_and_tells_the_gold_against_lr() -> None:
    agg = aggregate(sweep_records(GOLDS))
    meta = {"commands": ["python -m benchmarks.frontier"], "runs_found": 1, "runs_planned": 2}
    results = {
        **asdict(agg),
        "words": asdict(frontier_words(agg)),
        "meta": {**meta, "plan": "full"},
    }
    text = "\n".join(frontier_section(json.loads(json.dumps(strict(results)))))
    assert "| controller | topic / standard | topic / stress |" in text
    row = next(line for line in text.splitlines() if line.startswith("| kl-budget |"))
    assert row.count("|") == 4  # one cell per full-grid lr, not one per lr of the sweep
    assert "- **topic.** `kl-budget` peaks at lr 0.003 with gold 0.450" in text


def test_where_the_kl_goes_names_each_full_grid_regime_s_best_beta_and_its_kl() -> None:
    records = [
        run_record(variant, s, gold + SHIFT[s], kl=kl, regime=regime)
        for regime, by_variant in {
            "standard": {"beta-0.1": (0.40, 2.0), "beta-0.17": (0.46, 1.5), NO_BETA: (0.43, 1.2)},
            "lr-3e-3": {"beta-0.17": (0.19, 3.0), NO_BETA: (0.45, 1.3)},
        }.items()
        for variant, (gold, kl) in by_variant.items()
        for s in range(3)
    ]
    spent = frontier_words(aggregate(records)).kl_spent
    # One sentence, for the standard lr: the sweep's regimes run no grid to take a best from.
    assert spent == (
        "*Where the KL goes* at lr 0.001 (*standard*): the best fixed β and its final KL per "
        "token, per task: topic β 0.17 at KL 1.50 (`kl-budget` 1.20).",
    )
