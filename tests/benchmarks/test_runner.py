"""The sweep runner's bookkeeping: which runs are finished, and when a finished run conflicts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from frontier_records import run_record

pytest.importorskip("torch")

from benchmarks.frontier import plan as frontier
from benchmarks.frontier.__main__ import main as frontier_main
from benchmarks.frontier.cells import NO_BETA
from benchmarks.runner import pending, run_fields
from reference_trainer.config import TrainConfig, as_dict


@dataclass(frozen=True)
class Spec:
    name: str


def finished(run_dir: Path, config: dict) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "done.json").write_text(json.dumps({"config": config, "summary": {}}))


def test_a_finished_run_is_skipped_and_an_unfinished_one_is_pending(tmp_path: Path) -> None:
    done = {"run_dir": str(tmp_path / "a"), "lr": 0.01}
    todo = {"run_dir": str(tmp_path / "b"), "lr": 0.01}
    finished(tmp_path / "a", as_dict(TrainConfig(**done)))
    assert pending([(Spec("a"), done), (Spec("b"), todo)]) == [(Spec("b"), todo)]


def test_a_finished_run_with_another_config_is_an_error_naming_the_field(tmp_path: Path) -> None:
    fields = {"run_dir": str(tmp_path / "a"), "lr": 0.01}
    finished(tmp_path / "a", as_dict(TrainConfig(**{**fields, "lr": 0.001})))
    with pytest.raises(ValueError, match=r"different config \(\['lr'\]\)"):
        pending([(Spec("a"), fields)])


def test_a_field_added_after_the_run_finished_is_no_conflict_at_its_default(tmp_path: Path) -> None:
    fields = {"run_dir": str(tmp_path / "a")}
    saved = as_dict(TrainConfig(**fields))
    del saved["entropy_target"]  # as written before the field existed
    finished(tmp_path / "a", saved)
    assert pending([(Spec("a"), fields)]) == []
    with pytest.raises(ValueError, match="entropy_target"):  # but not at another value
        pending([(Spec("a"), {**fields, "entropy_target": 2.0})])


def test_frontier_only_pattern_that_matches_nothing_is_an_error(tmp_path: Path, capsys) -> None:
    code = frontier_main(["--runs", str(tmp_path), "--only", "chess/*", "--out", str(tmp_path)])
    assert code == 2
    assert "matches no run" in capsys.readouterr().err


def test_every_frontier_variant_is_a_valid_trainer_config_in_every_cell(tmp_path: Path) -> None:
    specs = frontier.run_specs(frontier.FULL)
    assert {s.variant for s in specs} == set(frontier.VARIANTS)
    assert {(s.task, s.regime) for s in specs} == {
        (t, r) for t in frontier.TASKS for r in frontier.REGIMES
    }
    configs = {
        s.variant: TrainConfig(
            **run_fields(
                s,
                frontier.FULL,
                frontier.REGIMES[s.regime],
                frontier.VARIANTS[s.variant],
                tmp_path,
                ".data",
                "",
            )
        )
        for s in specs
        if s.task == "topic" and s.regime == "stress" and s.seed == 0
    }
    # Each variant changes what the trainer does: no two of them train the same config.
    distinct = {
        json.dumps(as_dict(c), sort_keys=True).replace(c.run_dir, "") for c in configs.values()
    }
    # (the refined β grid runs at the standard lr only)
    in_stress = [v for v in frontier.VARIANTS if frontier.runs_in_regime(v, "stress")]
    assert len(in_stress) == len(frontier.VARIANTS) - len(frontier.STANDARD_ONLY)
    assert len(distinct) == len(in_stress)
    headline_seeds = {s.seed for s in specs if s.variant == "safe"}
    assert headline_seeds == set(range(frontier.FULL.headline_seeds))


def test_the_controllers_critic_heads_saved_as_zero_or_as_its_count_are_the_same_run(
    tmp_path: Path,
) -> None:
    # safe-published's frontier variant spells out its two heads; its first runs saved 0 ("the
    # controller's"), which trains the same two heads.
    fields = {"run_dir": str(tmp_path / "a"), "algo": "safe", "critic_heads": 2}
    finished(tmp_path / "a", as_dict(TrainConfig(**{**fields, "critic_heads": 0})))
    assert pending([(Spec("a"), fields)]) == []
    with pytest.raises(ValueError, match="critic_heads"):  # but one head is another run
        pending([(Spec("a"), {**fields, "critic_heads": 1})])


def test_a_key_that_cannot_change_the_outcome_is_no_conflict(tmp_path: Path) -> None:
    # The frontier's runs finished with reward_timeout 0 (the old default); the sweep must still
    # skip them under the new default, but not a run with another learning rate.
    fields = {"run_dir": str(tmp_path / "a"), "algo": "kl-budget"}
    finished(tmp_path / "a", as_dict(TrainConfig(**fields, reward_timeout=0.0, report_to="none")))
    assert pending([(Spec("a"), {**fields, "checkpoint_every": 7})]) == []
    with pytest.raises(ValueError, match="'lr'"):
        pending([(Spec("a"), {**fields, "lr": 0.5})])


def test_a_run_whose_record_is_committed_is_not_trained_again(tmp_path: Path, capsys) -> None:
    # The committed results hold this run's record and its directory is not on this machine:
    # a pattern that matches it trains nothing (no model is even prepared) and reports it.
    record = run_record(NO_BETA, 0, 0.4, regime="standard")
    out = tmp_path / "results"
    out.mkdir()
    saved = {"meta": {"plan": "quick"}, "records": [asdict(record)]}
    (out / "frontier.json").write_text(json.dumps(saved))
    runs = tmp_path / "runs"
    argv = ["--quick", "--runs", str(runs), "--out", str(out), "--only", record.name]
    argv += ["--data-dir", str(tmp_path / "no-data")]
    assert frontier_main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 of 1 runs are in the committed results" in printed
    assert not runs.exists() and not (tmp_path / "no-data").exists()
    assert "frontier: 1 of" in printed
