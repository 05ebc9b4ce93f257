"""The frontier study's per-cell statistics on hand-made run trees and records: the best β of
each family, paired regrets, the best (β, lr) pair, frontier gaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from frontier_records import (
    BEST,
    SEED_OFFSET,
    aggregate_runs,
    cell,
    run_record,
    write_beta_grid,
    write_run,
)

from benchmarks.frontier import plan as frontier
from benchmarks.frontier import words
from benchmarks.frontier.aggregate import aggregate
from benchmarks.frontier.cells import (
    BEST_PAIR,
    FIXED_BETA,
    NO_BETA,
    TRUST_REGION,
    FrontierPoint,
    Gap,
    cells_of,
    frontier_gap,
)
from benchmarks.frontier.render import family_regret_table
from benchmarks.stats import RESAMPLES, bootstrap_mean_ci


def test_best_beta_is_the_one_with_the_highest_mean_gold(tmp_path: Path) -> None:
    write_beta_grid(tmp_path)
    result = cell(tmp_path)
    assert result.best_beta == BEST
    kls = [p.kl_final for p in result.frontier]
    assert kls == sorted(kls) and len(kls) == len(frontier.BETAS)
    assert result.frontier[0].beta == 1.0  # the largest β spends the least KL
    assert result.variants[BEST].metrics["gold_final"].mean == pytest.approx(0.5)


def test_best_beta_is_chosen_among_the_betas_with_every_headline_seed(tmp_path: Path) -> None:
    write_beta_grid(tmp_path)
    # A refined β on one seed with a far higher gold: reported, but neither best nor on the line.
    write_run(tmp_path, "sentiment", "standard", "beta-0.055", 0, gold_final=0.9, kl_final=0.5)
    result = cell(tmp_path)
    assert result.best_beta == BEST
    assert result.families[FIXED_BETA].headline_seeds == (0, 1, 2)
    assert "beta-0.055" not in {p.variant for p in result.frontier}
    assert result.variants["beta-0.055"].n == 1
    assert list(result.variants)[:4] == ["beta-0.003", "beta-0.01", "beta-0.03", "beta-0.055"]


def test_regret_is_paired_by_seed_on_the_seeds_both_have(tmp_path: Path) -> None:
    write_beta_grid(tmp_path)
    # The controller beats the best β by 0.01, 0.03, 0.05 on seeds 0-2; seed 3 has no β partner.
    # Unpaired, the best β's seed spread (±0.1) would swamp a 0.03 difference.
    for seed, lead in enumerate((0.01, 0.03, 0.05, -5.0)):
        offset = SEED_OFFSET[seed] if seed < 3 else 0.0
        write_run(tmp_path, "sentiment", "standard", "safe", seed, gold_final=0.5 + offset + lead)
    for seed, lag in enumerate((-0.10, -0.20, -0.15)):
        gold = 0.5 + SEED_OFFSET[seed] + lag
        write_run(tmp_path, "sentiment", "standard", "adaptive-kl", seed, gold_final=gold)

    variants = cell(tmp_path).variants
    regret = variants["safe"].gold_regret
    assert regret.seeds == (0, 1, 2) and regret.estimate.n == 3
    assert regret.estimate.mean == pytest.approx(0.03)
    expected = bootstrap_mean_ci(np.array([0.01, 0.03, 0.05]), RESAMPLES, 0)
    assert regret.estimate.ci == pytest.approx(expected)
    assert 0.0 < regret.estimate.low < 0.03 < regret.estimate.high <= 0.05 + 1e-12
    assert regret.above_zero is True and regret.within_tolerance is True
    lagging = variants["adaptive-kl"].gold_regret
    assert lagging.estimate.mean == pytest.approx(-0.15)
    assert lagging.within_tolerance is False and lagging.above_zero is False
    assert variants[BEST].gold_regret.estimate.mean == 0.0  # the best β against itself
    # Reproducible: the same runs give the same interval.
    assert cell(tmp_path).variants["safe"].gold_regret == regret


def test_regret_is_against_the_best_of_each_family_paired_by_seed() -> None:
    # Fixed β: 0.1 is best (gold 0.4 + s); trust region: 0.3 is best (0.6 + s), 0.1 (0.5 + s).
    # kl-budget: 0.55 + s on seeds 0-2, so +0.15 against fixed β and −0.05 against trust region.
    shift = (0.0, 0.02, -0.02)
    golds = {"beta-0.1": 0.4, "beta-1": 0.2, "tr-beta-0.1": 0.5, "tr-beta-0.3": 0.6}
    records = [
        run_record(v, s, g + shift[s], kl=1.0 / (i + 1))
        for i, (v, g) in enumerate(golds.items())
        for s in range(3)
    ]
    records += [run_record(NO_BETA, s, 0.55 + shift[s]) for s in range(3)]
    found = cells_of(records)["topic"]["stress"]
    assert found.families[FIXED_BETA].best == "beta-0.1"
    assert found.families[TRUST_REGION].best == "tr-beta-0.3"
    assert found.families[TRUST_REGION].members == ("tr-beta-0.1", "tr-beta-0.3")
    regrets = found.variants[NO_BETA].regrets
    assert regrets[FIXED_BETA].against == "beta-0.1"
    assert regrets[FIXED_BETA].estimate.mean == pytest.approx(0.15)
    assert regrets[TRUST_REGION].against == "tr-beta-0.3"
    assert regrets[TRUST_REGION].estimate.mean == pytest.approx(-0.05)
    assert regrets[TRUST_REGION].within_tolerance is False
    # Family members are baselines, not controllers: tr-beta-0.3 beats the fixed β by 0.2 but
    # is never the pick.
    assert found.variants["tr-beta-0.3"].regrets[FIXED_BETA].estimate.mean == pytest.approx(0.2)
    agg = aggregate(records)
    assert agg.overall.pick == NO_BETA
    table = "\n".join(family_regret_table(found))
    assert "best `tr-beta-0.3`" in table and "-0.050" in table


def test_the_best_beta_lr_pair_is_the_best_fixed_beta_over_every_learning_rate() -> None:
    # Standard lr: beta-0.3 best (0.5 + s); stress lr: beta-1 best (0.2 + s); kl-budget at the
    # stress lr has 0.35 + s: +0.15 against its cell's best β, −0.15 against the task's best pair.
    shift = (0.0, 0.03, -0.03)
    golds = {
        "standard": {"beta-0.1": 0.45, "beta-0.3": 0.5, NO_BETA: 0.52},
        "stress": {"beta-0.1": 0.1, "beta-1": 0.2, NO_BETA: 0.35},
    }
    records = [
        run_record(v, s, g + shift[s], regime=regime)
        for regime, by_variant in golds.items()
        for v, g in by_variant.items()
        for s in range(3)
    ]
    cells = cells_of(records)["topic"]
    assert {c.best_pair for c in cells.values()} == {"beta-0.3 at lr 0.001"}
    stress = cells["stress"].variants[NO_BETA].regrets
    assert stress[FIXED_BETA].estimate.mean == pytest.approx(0.15)
    assert stress[BEST_PAIR].against == "beta-0.3 at lr 0.001"
    assert stress[BEST_PAIR].estimate.mean == pytest.approx(-0.15)
    assert stress[BEST_PAIR].seeds == (0, 1, 2)
    standard = cells["standard"].variants[NO_BETA].regrets
    assert standard[BEST_PAIR].estimate.mean == pytest.approx(0.02)
    table = family_regret_table(cells["standard"])
    assert "(β, lr) pair (`beta-0.3 at lr 0.001`)" in table[0]
    assert "| beta-0.3 | " in "\n".join(table) and "0 (itself)" in "\n".join(table)
    text = words.plain_answer(aggregate(records))
    # Within the tolerance of the best fixed β in both cells: the answer says to run it.
    assert text.startswith("**Plain answer.** Run `kl-budget`: one configuration")
    assert "the task's best (β, lr) pair (across the learning rates run) -0.150 to +0.020" in text


def test_a_family_without_runs_is_said_not_run(tmp_path: Path) -> None:
    write_beta_grid(tmp_path)
    for seed in range(3):
        write_run(tmp_path, "sentiment", "standard", NO_BETA, seed, gold_final=0.55)
    agg = aggregate_runs(tmp_path)
    found = agg.cells["sentiment"]["standard"]
    assert found.families[TRUST_REGION].members == () and found.families[TRUST_REGION].best is None
    assert found.variants[NO_BETA].regrets[TRUST_REGION] is None
    assert "regret against trust-region β (not run)" in family_regret_table(found)[0]
    text = words.plain_answer(agg)
    assert "trust-region β (fixed β with a per-step KL limit of 0.005" in text
    assert "not run" in text


def test_frontier_gap_is_linear_in_log_kl_and_none_outside_the_grid() -> None:
    points = [
        FrontierPoint("beta-1", 1.0, 3, kl_final=0.01, reward_final=0.2, gold_final=0.1),
        FrontierPoint("beta-0.1", 0.1, 3, kl_final=1.0, reward_final=0.6, gold_final=None),
    ]
    # KL 0.1 is halfway in log KL (0.4 on the frontier); linear in KL would put it at 0.236.
    inside = frontier_gap(points, "reward_final", 0.1, 0.5)
    assert inside.status == "inside"
    assert inside.gap == pytest.approx(0.1)
    assert frontier_gap(points, "reward_final", 0.01, 0.1).gap == pytest.approx(-0.1)
    for kl in (0.005, 2.0, 0.0):
        assert frontier_gap(points, "reward_final", kl, 0.5) == Gap(None, "outside")
    assert frontier_gap(points, "gold_final", 0.1, 0.5).status == "no frontier"
    assert frontier_gap(points[:1], "reward_final", 0.01, 0.5).status == "no frontier"


def test_gaps_of_a_controller_above_the_frontier_are_positive(tmp_path: Path) -> None:
    write_beta_grid(tmp_path)
    # β grid: proxy = 0.5 + 0.1 log10(KL); at KL 0.1 the frontier gives 0.4.
    write_run(tmp_path, "sentiment", "standard", "safe", 0, kl_final=0.1, reward_final=0.45)
    write_run(tmp_path, "sentiment", "standard", "schulman-kl", 0, kl_final=50.0)
    variants = cell(tmp_path).variants
    assert variants["safe"].proxy_gap.gap == pytest.approx(0.05)
    assert variants["schulman-kl"].proxy_gap == Gap(None, "outside")
    assert variants["schulman-kl"].gold_gap.status == "outside"


def test_fixed_beta_has_no_budget_adherence(tmp_path: Path) -> None:
    write_beta_grid(tmp_path)
    write_run(tmp_path, "sentiment", "standard", "beta0-entropy", 0, budget_adherence=0.7)
    write_run(tmp_path, "sentiment", "standard", "pid-lagrangian-kl", 0, budget_adherence=0.7)
    variants = cell(tmp_path).variants
    assert variants[BEST].metrics["budget_adherence"].mean is None
    assert variants["beta0-entropy"].metrics["budget_adherence"].mean is None
    assert variants["pid-lagrangian-kl"].metrics["budget_adherence"].mean == 0.7
