"""The stability study: its statistics on hand-made records, regeneration of the committed results
from their stored records, the re-run comparison, and ``--quick`` end to end."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.codec import decode
from benchmarks.runner import RunSpec
from benchmarks.stability import __main__ as command
from benchmarks.stability import plan, render, rerun
from benchmarks.stability.aggregate import aggregate, paired
from benchmarks.stability.records import MEASURES, RunRecord
from benchmarks.stability.results import StabilityResults, read_results
from benchmarks.stability.words import OVERHEAD_CLAIM, speed_results, stability_words

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def test_unanimous_improvement_over_eight_seeds_is_significant() -> None:
    base = np.linspace(0.5, 0.6, 8)
    result = paired(base + 0.1 + np.arange(8) * 0.01, base, better=+1)
    assert result.p_value == pytest.approx(2 / 2**8)
    assert result.difference.low is not None and result.difference.low > 0
    assert result.verdict == "better"
    # Lower is better for e.g. KL p95: the same data reads as worse.
    assert paired(base + 0.1 + np.arange(8) * 0.01, base, better=-1).verdict == "worse"


def test_five_seeds_can_never_conclude() -> None:
    base = np.zeros(5)
    result = paired(base + np.arange(1, 6), base, better=+1)
    assert result.min_attainable_p == pytest.approx(2 / 2**5)
    assert result.p_value is not None and result.p_value > 0.05
    assert result.verdict == "too few seeds to conclude"


def test_mixed_signs_are_no_significant_difference() -> None:
    diff = np.array([0.3, -0.2, 0.1, -0.4, 0.2, -0.1, 0.05, -0.05])
    result = paired(diff, np.zeros(8), better=+1)
    assert result.verdict == "no significant difference"
    low, high = result.difference.ci or (0.0, 0.0)
    assert low < 0 < high


def test_identical_runs_have_no_difference() -> None:
    result = paired(np.ones(8), np.ones(8), better=+1)
    assert result.p_value is None
    assert result.verdict == "no difference on any seed"


def _records(shift: dict[str, float], seeds: int = 8) -> list[RunRecord]:
    """PPO and SAFE (and one ablation) in one regime; SAFE's measures are PPO's + ``shift``."""
    rng = np.random.default_rng(1)
    out = []
    for seed in range(seeds):
        ppo = {name: float(rng.uniform(1.0, 2.0)) for name in MEASURES}
        safe = {name: v + shift.get(name, 0.0) + 0.01 * seed for name, v in ppo.items()}
        for variant, measures in (("ppo", ppo), ("safe", safe), ("safe-no-gate", safe)):
            out.append(RunRecord("stress", variant, seed, 0.01, 150, measures))
    return out


def test_aggregate_compares_every_variant_with_ppo_and_ablations_with_full_safe() -> None:
    summary = aggregate(_records({"kl_p95": -0.5}))
    assert [(c.variant, c.baseline) for c in summary.comparisons] == [
        ("safe", "ppo"),
        ("safe-no-gate", "ppo"),
        ("safe-no-gate", "safe"),
    ]
    group = summary.group("stress", "safe")
    assert group is not None and group.seeds == tuple(range(8))
    kl = summary.comparison("stress", "safe", "ppo")
    assert kl is not None and kl.measures["kl_p95"] is not None
    assert kl.measures["kl_p95"].verdict == "better"
    same = summary.comparison("stress", "safe-no-gate", "safe")
    assert same is not None and same.measures["kl_p95"] is not None
    assert same.measures["kl_p95"].verdict == "no difference on any seed"


def test_a_missing_measure_leaves_the_seed_out_of_that_measure_only() -> None:
    records = _records({})
    first = records[0]
    records[0] = dataclasses.replace(first, measures={**first.measures, "kl_max": None})
    group = aggregate(records).group("stress", "ppo")
    assert group is not None
    assert group.measures["kl_max"].n == 7 and group.measures["kl_p95"].n == 8


def test_two_records_of_one_run_are_an_error() -> None:
    records = _records({})
    with pytest.raises(ValueError, match="stress/ppo/seed0"):
        aggregate([*records, records[0]])


def test_claims_read_safe_against_ppo_and_say_so_in_one_sentence() -> None:
    words = stability_words(aggregate(_records({"kl_p95": -0.5, "reward_mean": -0.3})), None)
    verdicts = {c.claim.split(" (")[0]: c.verdict for c in words.claims}
    assert verdicts["superior KL control"] == "confirmed"
    assert verdicts["higher training-average reward than PPO"] == "refuted"
    assert verdicts[OVERHEAD_CLAIM].startswith("not measured")
    kl = words.claims[2].per_regime["stress"]
    assert kl.sentence.startswith("confirmed — SAFE − PPO Δ -0.465")  # -0.5 + 0.01 × mean seed
    (ablation,) = words.ablations
    assert ablation.sentence.startswith("safe-no-gate: training-average reward no clear change")


def test_band_of_identical_curves_is_the_curve() -> None:
    curves = np.tile(np.arange(5.0), (4, 1))
    mean, low, high = render.band(curves)
    assert np.array_equal(mean, curves[0])
    assert np.array_equal(low, curves[0]) and np.array_equal(high, curves[0])


def test_every_variant_has_seeds_in_every_regime_and_ablations_in_stress() -> None:
    specs = plan.run_specs(plan.FULL)
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) == 2 * 4 * 8 + 5 * 5
    for regime in plan.REGIMES:
        for variant in plan.ALGORITHMS:
            seeds = {s.seed for s in specs if (s.regime, s.variant) == (regime, variant)}
            assert seeds == set(range(8))
    ablated = {s.variant for s in specs if s.variant in plan.ABLATIONS}
    assert ablated == set(plan.ABLATIONS)
    assert {s.regime for s in specs if s.variant in plan.ABLATIONS} == {"stress"}


def test_each_ablation_changes_the_trainer_config(tmp_path: Path) -> None:
    from reference_trainer.config import TrainConfig

    def config(variant: str, regime: str = "stress") -> TrainConfig:
        spec = RunSpec(regime, variant, 0)
        return TrainConfig(**plan.train_fields(spec, plan.FULL, tmp_path, ".data", ""))

    full = config("safe")
    for variant in plan.ABLATIONS:
        assert config(variant) != full, variant
    assert config("safe").lr != config("safe", "standard").lr
    assert config("safe").run_dir == str(tmp_path / "stress" / "safe" / "seed0")


def test_the_committed_results_regenerate_from_their_stored_records(tmp_path: Path) -> None:
    for name in ("stability.json", "overhead.json", "trainer_speed.json"):
        shutil.copy(RESULTS / name, tmp_path / name)
    committed = json.loads((RESULTS / "stability.json").read_text())
    assert (
        command.main(["--report-only", "--runs", str(tmp_path / "none"), "--out", str(tmp_path)])
        == 0
    )
    regenerated = json.loads((tmp_path / "stability.json").read_text())
    for key in ("runs", "aggregate"):
        assert regenerated[key] == committed[key]
    assert regenerated["words"]["ablations"] == committed["words"]["ablations"]
    # The overhead claim also reads the speed results: its own test below.
    assert regenerated["words"]["claims"][:-1] == committed["words"]["claims"][:-1]
    committed_page = (RESULTS / "stability.md").read_text().split("## The paper's claims")[0]
    page = (tmp_path / "stability.md").read_text().split("## The paper's claims")[0]
    # All but the line naming where the records came from.
    assert page.splitlines()[3:] == committed_page.splitlines()[3:]


def test_results_read_back_as_the_typed_record_they_were_written_from() -> None:
    results = read_results(RESULTS / "stability.json")
    assert isinstance(results, StabilityResults)
    assert decode(StabilityResults, json.loads(json.dumps(dataclasses.asdict(results)))) == results
    group = results.aggregate.group("stress", "safe")
    assert group is not None and group.measures["kl_p95"].ci is not None


def test_the_overhead_claim_reads_safes_row_of_the_committed_overhead_results() -> None:
    overhead = json.loads((RESULTS / "overhead.json").read_text())
    speed = speed_results(overhead, json.loads((RESULTS / "trainer_speed.json").read_text()))
    words = stability_words(aggregate(_records({})), speed)
    claim = words.claims[-1]
    assert claim.claim == OVERHEAD_CLAIM and claim.overhead is not None
    assert claim.overhead.controller_us_per_update == overhead["controllers"]["safe"]["median_us"]
    assert claim.verdict in ("confirmed", "mixed", "refuted")


def test_the_committed_overhead_claim_is_that_of_the_committed_speed_results() -> None:
    """After a new overhead.json or trainer_speed.json: python -m benchmarks.stability
    --refresh-overhead."""
    overhead = json.loads((RESULTS / "overhead.json").read_text())["controllers"]["safe"]
    speed = json.loads((RESULTS / "trainer_speed.json").read_text())
    (claim,) = [c for c in read_results(RESULTS / "stability.json").words.claims if c.overhead]
    iteration = {algo: speed["results"][algo]["total"] for algo in ("ppo", "safe")}
    assert claim.overhead is not None and claim.overhead.iteration_seconds == iteration
    assert claim.overhead.controller_us_per_update == overhead["median_us"]
    assert claim.overhead.controller_share_of_step == overhead["share_of_step"]


def test_refresh_overhead_rewrites_only_the_overhead_claim(tmp_path: Path) -> None:
    for name in ("stability.json", "overhead.json", "trainer_speed.json"):
        shutil.copy(RESULTS / name, tmp_path / name)
    speed = json.loads((tmp_path / "trainer_speed.json").read_text())
    speed["results"]["safe"]["total"] = 2.0 * speed["results"]["ppo"]["total"]
    (tmp_path / "trainer_speed.json").write_text(json.dumps(speed))
    before = json.loads((tmp_path / "stability.json").read_text())
    assert command.main(["--refresh-overhead", "--out", str(tmp_path)]) == 0
    after = json.loads((tmp_path / "stability.json").read_text())
    claims = zip(before["words"]["claims"], after["words"]["claims"], strict=True)
    changed = [i for i, (a, b) in enumerate(claims) if a != b]
    assert [after["words"]["claims"][i]["claim"] for i in changed] == [OVERHEAD_CLAIM]
    claim = after["words"]["claims"][changed[0]]
    assert claim["overhead"]["method_overhead"] == pytest.approx(1.0)
    assert claim["verdict"] == "mixed"  # the update is negligible, the iteration is not
    for key in ("runs", "aggregate"):
        assert after[key] == before[key]
    assert "costs +100% against PPO's" in (tmp_path / "stability.md").read_text()
    assert command.main(["--refresh-overhead", "--out", str(tmp_path / "none")]) == 2


def _rerun_records(shift: float) -> list[RunRecord]:
    stored = read_results(RESULTS / "stability.json").runs
    return [
        dataclasses.replace(
            r, measures={k: None if v is None else v + shift for k, v in r.measures.items()}
        )
        for r in stored
        if (r.regime, r.variant) == ("stress", "safe")
    ]


def test_a_rerun_is_compared_seed_by_seed_with_the_stored_group_and_ppo() -> None:
    stored = read_results(RESULTS / "stability.json").runs
    early = [rerun.EarlySteps(s, 0.9, 0.5, 1.0) for s in range(8)]
    result = rerun.compare(_rerun_records(0.25), early, "stress/safe", stored)
    reward = result.measures["reward_mean"]
    assert reward.rerun_mean == pytest.approx(reward.committed_mean + 0.25)
    assert reward.rerun_vs_committed.difference.mean == pytest.approx(0.25)
    assert reward.rerun_vs_committed.verdict == "better"  # +0.25 on all 8 seeds
    with pytest.raises(ValueError, match="differ"):
        rerun.compare(_rerun_records(0.0)[:5], early, "stress/safe", stored)


def test_a_rerun_regenerates_from_the_records_its_json_stores(tmp_path: Path) -> None:
    stored = read_results(RESULTS / "stability.json").runs
    early = [rerun.EarlySteps(s, 0.9, 0.5, 1.0) for s in range(8)]
    result = rerun.compare(_rerun_records(0.1), early, "stress/safe", stored)
    out = tmp_path / "rerun"
    out.with_suffix(".json").write_text(json.dumps(dataclasses.asdict(result)))
    assert rerun.main(["--out", str(out)]) == 0
    assert rerun.read_rerun(out.with_suffix(".json")) == result


def test_the_committed_rerun_page_is_rendered_from_its_json() -> None:
    result = rerun.read_rerun(RESULTS / "rerun_stress_safe.json")
    assert rerun.render(result) == (RESULTS / "rerun_stress_safe.md").read_text()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.stability", "--quick", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


def test_quick_sweep_runs_resumes_and_reports(tmp_path: Path) -> None:
    runs, out, data = tmp_path / "runs", tmp_path / "out", tmp_path / "data"
    common = ("--runs", str(runs), "--out", str(out), "--data-dir", str(data))
    first = _run(*common)
    assert first.returncode == 0, first.stderr[-3000:]
    total = len(plan.run_specs(plan.QUICK))
    assert f"0 of {total} runs already finished" in first.stdout
    results = read_results(out / "stability.json")
    assert results.aggregate.regimes == ["standard", "stress"]
    stress = {g.variant for g in results.aggregate.in_regime("stress")}
    assert stress == set(plan.ALGORITHMS) | set(plan.ABLATIONS)
    assert results.aggregate.comparison("stress", "safe-no-gate", "safe") is not None
    # Two seeds can never conclude: the report must say so rather than claim a result.
    comparison = results.aggregate.comparison("standard", "safe", "ppo")
    assert comparison is not None and comparison.measures["reward_mean"] is not None
    verdict = comparison.measures["reward_mean"].verdict
    assert verdict in ("too few seeds to conclude", "no difference on any seed")
    assert results.words.claims[0].claim.startswith("higher training-average")
    for name in results.meta.plots:
        assert (out / name).stat().st_size > 1000
    markdown = (out / "stability.md").read_text()
    assert "## The paper's claims" in markdown and "safe-published" in markdown

    # Finished runs are skipped; the report is rebuilt from the same runs, unchanged.
    again = _run(*common)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{total} of {total} runs already finished" in again.stdout
    assert read_results(out / "stability.json") == results

    # Without the runs, the report rebuilds from the records it stored, to the same numbers.
    shutil.move(runs, tmp_path / "moved")
    from_records = _run("--report-only", *common)
    assert from_records.returncode == 0, from_records.stderr[-3000:]
    rebuilt = read_results(out / "stability.json")
    assert (rebuilt.runs, rebuilt.aggregate, rebuilt.words) == (
        results.runs,
        results.aggregate,
        results.words,
    )
    assert rebuilt.meta.plots == results.meta.plots
    shutil.move(tmp_path / "moved", runs)

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
