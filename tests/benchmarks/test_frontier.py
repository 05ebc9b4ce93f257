"""The frontier study: its picks, goal check and words on hand-made run trees and records, the
records stored in and read back from the results JSON, the plans, and ``--quick`` end to end
(the per-cell statistics: ``test_frontier_cells.py``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from frontier_records import (
    BEST,
    SEED_OFFSET,
    aggregate_runs,
    done_record,
    write_beta_grid,
    write_run,
)

from benchmarks import readme_results
from benchmarks.frontier import plan as frontier
from benchmarks.frontier import words
from benchmarks.frontier.__main__ import strict, write_report
from benchmarks.frontier.aggregate import aggregate
from benchmarks.frontier.cells import (
    FIXED_BETA,
    NO_BETA,
)
from benchmarks.frontier.records import (
    load_records,
    record_from_done,
    records_from_results,
)
from benchmarks.runner import run_fields


def test_pick_prefers_a_controller_that_matches_the_best_beta_everywhere(tmp_path: Path) -> None:
    # Regret per seed: steady −0.01 everywhere (matches the best β within the tolerance);
    # erratic +0.05 in standard, −0.3 in stress; noisy mean 0 in both but a wide CI.
    regrets = {
        "steady": {"standard": (-0.01,) * 3, "stress": (-0.01,) * 3},
        "erratic": {"standard": (0.05,) * 3, "stress": (-0.3,) * 3},
        "noisy": {"standard": (0.2, -0.25, 0.05), "stress": (0.2, -0.25, 0.05)},
    }
    for regime in ("standard", "stress"):
        write_beta_grid(tmp_path, regime=regime)
        for name, by_regime in regrets.items():
            for seed, regret in enumerate(by_regime[regime]):
                gold = 0.5 + SEED_OFFSET[seed] + regret
                write_run(tmp_path, "sentiment", regime, name, seed, gold_final=gold)
    results = aggregate_runs(tmp_path)
    answer = results.answers["sentiment"]
    # Over every task × regime (here one task) the same rule picks the same controller.
    assert results.overall.pick == "steady"
    assert set(results.overall.per_regime) == {"sentiment/standard", "sentiment/stress"}
    assert answer.per_regime["standard"].pick == "erratic"
    assert answer.per_regime["stress"].pick == "noisy"
    assert answer.match_best_beta_everywhere == ("steady",)
    # noisy's worst-regime mean (0) beats steady's (−0.01), but only steady is cleared.
    assert answer.pick == "steady"
    assert answer.pick_worst_regime_regret == pytest.approx(-0.01)
    assert answer.too_few_seeds is False


def test_the_no_beta_goal_needs_every_cell_within_tolerance_half_above_zero_and_the_budget_held(
    tmp_path: Path,
) -> None:
    # kl-budget beats the best β by 0.05 in standard and trails it by 0.01 in stress; in stress
    # it also has one proxy crash the best β does not, so the goal fails there and overall.
    for regime, lead, crashes in (("standard", 0.05, 0), ("stress", -0.01, 1)):
        write_beta_grid(tmp_path, regime=regime)
        for seed in range(3):
            gold = 0.5 + SEED_OFFSET[seed] + lead
            write_run(
                tmp_path,
                "sentiment",
                regime,
                NO_BETA,
                seed,
                gold_final=gold,
                budget_adherence=0.97,
                crashes=crashes if seed == 0 else 0,
            )
    goal = aggregate_runs(tmp_path).goal
    rows = {r.regime: r for r in goal.cells}
    assert rows["standard"].above_zero and rows["standard"].crashes_ok
    assert rows["stress"].ci_low_ok and not rows["stress"].above_zero
    assert not rows["stress"].crashes_ok and rows["stress"].adherence_ok
    assert goal.cells_above_zero == 1 and goal.met is False
    table = "\n".join(words.goal_table(goal))
    assert "(not met)" in table and "| sentiment | stress | 3 |" in table


def test_plain_answer_says_what_to_run_per_learning_rate_and_what_safe_published_does(
    tmp_path: Path,
) -> None:
    # kl-budget: +0.1 gold on every seed at stress; at standard −0.01 on average, with seeds
    # that disagree (its CI spans 0). SAFE-published: 20 nats per token, twice the KL of the
    # loosest β (0.03 / 0.003 = 10), and 0.3 less gold than the best β on every seed.
    for task in ("sentiment", "topic"):
        for regime, leads in (("standard", (-0.05, 0.03, -0.01)), ("stress", (0.1,) * 3)):
            write_beta_grid(tmp_path, task, regime)
            for seed, lead in enumerate(leads):
                best = 0.5 + SEED_OFFSET[seed]
                write_run(tmp_path, task, regime, "kl-budget", seed, gold_final=best + lead)
                write_run(
                    tmp_path,
                    task,
                    regime,
                    "safe-published",
                    seed,
                    gold_final=best - 0.3,
                    kl_final=20.0,
                    budget_adherence=0.01,
                )
    text = words.plain_answer(aggregate_runs(tmp_path))
    standard, stress = (frontier.REGIMES[r]["lr"] for r in ("standard", "stress"))
    # (−0.05, 0.03, −0.01): its CI's lower bound is below the tolerance at the standard lr.
    assert text.startswith("**Plain answer.** No controller's gold regret stays within −0.02")
    assert "the default, `kl-budget`, has the highest worst-cell mean regret (-0.010)." in text
    assert f"at lr {standard:g} (*standard*) -0.010 over 2 tasks (CI spanning 0 on 2 of 2)" in text
    assert f"at lr {stress:g} (*stress*) +0.100 over 2 tasks (CI above 0 on 2 of 2)" in text
    assert "within 1.1 × its budget on 0.90 of post-warm-up steps" in text
    assert "fixed β -0.010 to +0.100 over 4 cells" in text
    assert "sentiment `kl-budget`, topic `kl-budget`" in text
    assert (
        "end at KL 20.000 nats per token, more than every fixed β of the grid spends in 4 of 4"
        in text
    )
    assert "their own threshold on 0.01 of steps" in text
    assert "gold regret is -0.300 (CI below 0 on 4 of 4)" in text


def test_when_no_controller_matches_the_best_beta_everywhere_the_answer_says_so(
    tmp_path: Path,
) -> None:
    # kl-budget trails the best β by 0.1 on every seed of the standard lr; safe trails by 0.05
    # everywhere: neither is within the tolerance, safe has the higher worst cell.
    for regime, lead in (("standard", -0.1), ("stress", 0.2)):
        write_beta_grid(tmp_path, "sentiment", regime)
        for seed in range(3):
            best = 0.5 + SEED_OFFSET[seed]
            write_run(tmp_path, "sentiment", regime, "kl-budget", seed, gold_final=best + lead)
            write_run(tmp_path, "sentiment", regime, "safe", seed, gold_final=best - 0.05)
    text = words.plain_answer(aggregate_runs(tmp_path))
    assert "Run `" not in text
    assert text.startswith(
        "**Plain answer.** No controller's gold regret stays within −0.02 of the best fixed β"
    )
    assert (
        "the highest worst-cell mean regret is `safe`'s (-0.050). The default is `kl-budget`."
        in text
    )
    assert "at lr 0.001 (*standard*) -0.100 over 1 task" in text


def test_partial_sweep_reports_what_finished(tmp_path: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "out"
    write_beta_grid(runs)
    for seed in (0, 2):  # seed 1 of safe never finished
        write_run(runs, "sentiment", "standard", "safe", seed, gold_final=0.45)
    # A cell with controllers only: no frontier, no best β, no regret.
    write_run(runs, "topic", "stress", "safe", 0)
    write_run(runs, "topic", "stress", "safe-published", 0, kl_p95=math.nan)
    text = write_report(runs, out, "full")
    assert "sentiment" in text and "topic" in text

    results = json.loads((out / "frontier.json").read_text())
    assert list(results["cells"]) == ["sentiment", "topic"]
    assert list(results["cells"]["topic"]) == ["stress"]
    sentiment = results["cells"]["sentiment"]["standard"]["variants"]
    assert sentiment["safe"]["seeds"] == [0, 2]
    assert sentiment["safe"]["regrets"][FIXED_BETA]["seeds"] == [0, 2]
    topic = results["cells"]["topic"]["stress"]
    assert topic["families"][FIXED_BETA]["best"] is None
    assert topic["families"][FIXED_BETA]["frontier"] == []
    assert topic["variants"]["safe"]["regrets"][FIXED_BETA] is None
    assert topic["variants"]["safe"]["proxy_gap"]["status"] == "no frontier"
    assert topic["variants"]["safe-published"]["metrics"]["kl_p95"]["mean"] is None
    total = len(frontier.run_specs(frontier.FULL))
    assert results["meta"]["runs_found"] == len(frontier.BETAS) * 3 + 4
    assert results["meta"]["runs_planned"] == total
    assert len(results["records"]) == results["meta"]["runs_found"]

    markdown = (out / "frontier.md").read_text()
    assert "| safe | 2 |" in markdown
    assert "## topic / stress" in markdown and "## sentiment / standard" in markdown
    assert "no fixed-β run has finished" in markdown
    assert results["words"]["tasks"]["sentiment"] in markdown
    for plot in results["plots"]:
        assert (out / plot).stat().st_size > 1000
    assert sorted(results["plots"]) == [
        "frontier_sentiment_standard.png",
        "frontier_topic_stress.png",
    ]


def test_the_aggregate_from_runs_equals_the_aggregate_from_the_stored_records(
    tmp_path: Path,
) -> None:
    runs, out = tmp_path / "runs", tmp_path / "out"
    write_beta_grid(runs)
    for seed in range(3):
        write_run(runs, "sentiment", "standard", NO_BETA, seed, gold_final=0.5 + 0.01 * seed)
    write_run(runs, "sentiment", "standard", "safe", 0, gold_final=math.nan, crashes=2)
    write_report(runs, out, "full")
    stored = records_from_results(json.loads((out / "frontier.json").read_text()))
    from_runs = load_records(runs, None, "full").records
    assert sorted(stored, key=lambda r: r.name) == sorted(from_runs, key=lambda r: r.name)
    assert aggregate(stored) == aggregate(from_runs)
    # Without the runs, the report is regenerated from the stored records alone, unchanged.
    before = (out / "frontier.json").read_text()
    write_report(tmp_path / "absent", out, "full")
    again = json.loads((out / "frontier.json").read_text())
    first = json.loads(before)
    for key in ("cells", "answers", "overall", "goal", "words", "records"):
        assert again[key] == first[key]
    assert again["meta"]["records_from_runs"] == 0


def test_a_run_under_runs_replaces_the_stored_record_of_the_same_name(tmp_path: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "out"
    write_beta_grid(runs)
    write_report(runs, out, "full")
    newer = tmp_path / "newer"
    write_run(newer, "sentiment", "standard", BEST, 0, gold_final=0.0, kl_final=1.0)
    write_run(newer, "sentiment", "standard", "beta-0.17", 0, gold_final=0.2, kl_final=0.2)
    found = load_records(newer, out / "frontier.json", "full")
    assert found.from_runs == 2 and found.from_results == len(frontier.BETAS) * 3 - 1
    by_name = {r.name: r for r in found.records}
    assert by_name[f"sentiment/standard/{BEST}/seed0"].gold_final == 0.0
    assert "sentiment/standard/beta-0.17/seed0" in by_name
    # A results file of the other plan is not mixed in.
    with pytest.raises(FileNotFoundError, match="no quick records"):
        load_records(tmp_path / "absent", out / "frontier.json", "quick")


def _reject(constant: str) -> None:
    raise ValueError(f"non-strict JSON constant {constant}")


def test_results_are_strict_json_with_null_for_missing_values(tmp_path: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "out"
    write_beta_grid(runs)
    write_run(runs, "sentiment", "standard", "safe", 0, gold_final=math.nan, kl_p95=math.inf)
    write_run(runs, "sentiment", "standard", "safe", 1, gold_final=None)
    write_report(runs, out, "full")
    results = json.loads((out / "frontier.json").read_text(), parse_constant=_reject)
    safe = results["cells"]["sentiment"]["standard"]["variants"]["safe"]
    assert safe["metrics"]["gold_final"] == {"n": 0, "mean": None, "low": None, "high": None}
    assert safe["regrets"][FIXED_BETA] is None  # no seed with a finite gold on both sides
    assert strict({"a": [math.nan, 1.0, (math.inf,)]}) == {"a": [None, 1.0, [None]]}
    done = done_record(runs, "sentiment", "standard", "safe", 0, kl_p95=math.inf)
    assert record_from_done(done).kl_p95 is None


def test_no_finished_run_is_an_error_naming_the_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_records(tmp_path, None, "full")


def test_quick_sweep_trains_reports_and_feeds_the_readme(tmp_path: Path) -> None:
    runs, out, data = tmp_path / "runs", tmp_path / "out", tmp_path / "data"
    command = [sys.executable, "-m", "benchmarks.frontier", "--quick"]
    command += ["--runs", str(runs), "--out", str(out), "--data-dir", str(data)]
    # It took 12 min on two cores shared with a training sweep; leave room for slower machines.
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    total = len(frontier.run_specs(frontier.QUICK))
    assert f"{total} of {total} planned runs" in result.stdout
    results = json.loads((out / "frontier.json").read_text(), parse_constant=_reject)
    assert list(results["cells"]) == list(frontier.TASKS)
    for task in frontier.TASKS:
        assert list(results["cells"][task]) == list(frontier.QUICK.regimes)
        for regime, found in results["cells"][task].items():
            assert set(found["variants"]) == set(frontier.QUICK.variants)
            best = found["families"][FIXED_BETA]["best"]
            assert best in {frontier.beta_name(b) for b in frontier.BETAS}
            assert (out / f"frontier_{task}_{regime}.png").stat().st_size > 1000
        assert results["words"]["tasks"][task]
    assert {r["task"] for r in results["goal"]["cells"]} == set(frontier.TASKS)
    markdown = (out / "frontier.md").read_text()
    assert "--quick" in markdown and "## Answers" in markdown
    section = "\n".join(readme_results.frontier_section(results))
    for task in frontier.TASKS:
        assert f"{task} / stress" in section and f"**{task}.**" in section
    assert "Across every task" in section and "against the no-β goal" in section
    # build() picks frontier.json up from a results directory beside the others.
    assert "reward–KL frontier" in readme_results.build(out)


def test_the_lr_sweep_runs_its_variants_at_the_two_further_learning_rates() -> None:
    specs = frontier.run_specs(frontier.FULL)
    for regime in frontier.LR_SWEEP_REGIMES:
        assert {s.variant for s in specs if s.regime == regime} == set(frontier.LR_SWEEP)
    lrs = sorted(frontier.REGIMES[r]["lr"] for r in frontier.FULL.regimes)
    assert lrs == [3e-4, 1e-3, 3e-3, 1e-2]
    # the standard and stress cells keep every variant they had
    assert "safe-published" in {s.variant for s in specs if s.regime == "stress"}


def test_the_larger_plan_is_a_bigger_model_with_longer_answers_in_its_own_files(
    tmp_path: Path,
) -> None:
    larger = frontier.PLANS["larger"]
    specs = frontier.run_specs(larger)
    assert len(specs) == 2 * 2 * len(frontier.LARGER_VARIANTS) * 3
    assert {s.task for s in specs} == {"sentiment", "reward-model"}
    fields = run_fields(specs[0], larger, frontier.REGIMES["standard"], {}, tmp_path, ".data", "m")
    assert fields["max_new_tokens"] == 32 and fields["model"] == "m"
    assert dict(larger.prepare) == {"n_embd": 256, "n_layer": 4}
    runs = tmp_path / "runs"
    write_beta_grid(runs)
    out = tmp_path / "out"
    write_report(runs, out, "larger")
    assert (out / "frontier_larger.json").is_file() and (out / "frontier_larger.md").is_file()
    assert not (out / "frontier.json").exists()
    text = (out / "frontier_larger.md").read_text()
    assert "python -m benchmarks.frontier --plan larger --runs" in text
    assert "](frontier_larger_sentiment_standard.png)" in text
