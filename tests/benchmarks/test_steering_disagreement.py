"""The ensemble-disagreement study: its signals, its statistics and its command, on records whose
answer is known (the measuring itself needs the prepared default and trained reward models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.steering.disagreement import (
    SFT,
    SIGNALS,
    PolicyRecord,
    auc_within_strata,
    main,
    partial_rank_correlation,
    rank_correlation,
    signal_stats,
)
from benchmarks.steering.ensemble import Recording, ensemble_signals


def test_ensemble_signals_are_the_per_completion_spread_and_the_proxys_excess() -> None:
    proxy = [1.0, 0.0]
    members = [[0.0, 0.0], [0.0, 0.0]]
    signals = ensemble_signals(proxy, members)
    # completion 1: scores (1, 0, 0): std (ddof 1) = sqrt(1/3); completion 2: all 0
    assert signals["disagreement"] == pytest.approx(np.sqrt(1 / 3) / 2)
    assert signals["members_mean"] == 0.0
    assert signals["proxy_excess"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one member"):
        ensemble_signals(proxy, [])


def test_a_recording_returns_the_scores_and_keeps_what_it_scored() -> None:
    recording = Recording(lambda prompts, completions: [len(c) for c in completions])
    assert recording(["a", "b"], ["xy", "z"]) == [2.0, 1.0]
    assert recording(["c"], ["uvw"]) == [3.0]
    assert recording.prompts == ["a", "b", "c"]
    assert recording.completions == ["xy", "z", "uvw"]
    assert recording.scores == [2.0, 1.0, 3.0]


def _world(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kl, gold, hidden): gold falls with the KL and with a hidden exploit the KL misses."""
    rng = np.random.default_rng(seed)
    kl = rng.uniform(0.0, 3.0, n)
    hidden = rng.normal(size=n)
    gold = -0.5 * kl - hidden + 0.1 * rng.normal(size=n)
    return kl, gold, hidden


def test_the_partial_correlation_removes_what_the_kl_explains() -> None:
    kl, gold, hidden = _world()
    echo_of_kl = 2.0 * kl + 0.01 * np.random.default_rng(1).normal(size=kl.size)
    assert rank_correlation(echo_of_kl, gold) < -0.3  # looks informative ...
    assert abs(partial_rank_correlation(echo_of_kl, gold, kl)) < 0.2  # ... but is the KL
    assert partial_rank_correlation(hidden, gold, kl) < -0.8  # the exploit survives
    # given a second observed covariate that carries the exploit, little is left of it
    carrier = hidden + 0.05 * np.random.default_rng(2).normal(size=kl.size)
    assert abs(partial_rank_correlation(hidden, gold, kl, carrier)) < 0.35


def test_the_auc_within_kl_tertiles_credits_only_what_the_kl_does_not_tell() -> None:
    kl, gold, hidden = _world()
    assert auc_within_strata(hidden, gold, kl) > 0.9  # exploiting policies score higher
    assert auc_within_strata(-hidden, gold, kl) < 0.1
    assert 0.3 < auc_within_strata(kl, gold, kl) < 0.7


def _records(n: int = 30) -> list[PolicyRecord]:
    kl, gold, hidden = _world(n)
    records = []
    for i in range(n):
        values = {key: float(hidden[i] + 0.1 * j) for j, key in enumerate(SIGNALS)}
        values.update(eval_kl=float(kl[i]), eval_gold=float(gold[i]))
        records.append(PolicyRecord(f"r/standard/v/seed{i}", values))
    return records


def test_signal_stats_give_every_signal_with_intervals_and_refuse_too_few_policies() -> None:
    rows = signal_stats(_records(), resamples=50)
    assert [r.name for r in rows] == list(SIGNALS)
    disagreement = rows[0]
    assert disagreement.partial_rho is not None and disagreement.partial_rho < -0.8
    low, high = disagreement.partial_rho_ci or (None, None)
    assert low is not None and high is not None and low <= disagreement.partial_rho <= high
    kl_row = next(r for r in rows if r.name == "eval_kl")
    assert kl_row.partial_rho is None and kl_row.partial_rho_ci is None
    assert kl_row.partial_rho_proxy is None and disagreement.partial_rho_proxy is not None
    with pytest.raises(ValueError, match="at least 6 policies"):
        signal_stats(_records()[:5])


def test_report_only_rebuilds_the_page_from_the_stored_records(tmp_path: Path, capsys) -> None:
    records = _records()
    records[0] = PolicyRecord(SFT, records[0].values)
    payload = {"records": [{"name": r.name, "values": r.values} for r in records]}
    (tmp_path / "steering_disagreement.json").write_text(json.dumps(payload))
    assert main(["--out", str(tmp_path), "--report-only", "--resamples", "20"]) == 0
    page = (tmp_path / "steering_disagreement.md").read_text()
    assert "from 30 policies" in page and "The SFT policy: gold" in page
    stored = json.loads((tmp_path / "steering_disagreement.json").read_text())
    assert len(stored["records"]) == 30 and len(stored["signals"]) == len(SIGNALS)


def test_no_finished_run_is_an_error_naming_the_roots(tmp_path: Path, capsys) -> None:
    assert main(["--runs", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert str(tmp_path / "none") in capsys.readouterr().err
    assert not (tmp_path / "steering_disagreement.json").exists()


def test_only_the_reward_model_task_has_an_ensemble() -> None:
    pytest.importorskip("torch")
    from benchmarks.steering.ensemble import build_ensemble
    from reference_trainer.config import TrainConfig

    with pytest.raises(ValueError, match="needs the 'reward-model' task, got task='topic'"):
        build_ensemble(TrainConfig(task="topic"))


def test_an_ensemble_scores_what_the_evaluation_sampled(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_lm import build_tiny

    from benchmarks.steering.ensemble import build_ensemble, evaluate_policy
    from reference_trainer.config import TrainConfig
    from reference_trainer.run import train
    from reference_trainer.tasks import reward_model

    monkeypatch.setattr(reward_model, "RM_SAMPLES", 160)
    monkeypatch.setattr(reward_model, "RM_HELD_OUT", 40)
    monkeypatch.setattr(reward_model, "RM_EPOCHS", 1)
    config = TrainConfig(
        task="reward-model",
        model=str(build_tiny(tmp_path / "tiny")),
        run_dir=str(tmp_path / "run"),
        data_dir=str(tmp_path / "data"),
        steps=2,
        batch_size=4,
        max_new_tokens=6,
        min_new_tokens=1,
        checkpoint_every=2,
        threads=1,
    )
    train(config, progress=False)
    ensemble = build_ensemble(config, seeds=(3,))
    built = sorted(p.name for p in (tmp_path / "data").glob("tasks-*/reward_model-*"))
    assert [name[-3:] for name in built] == ["-s2", "-s3"]  # the proxy and its member
    trained = evaluate_policy(config, Path(config.run_dir), ensemble, eval_prompts=8)
    sft = evaluate_policy(config, None, ensemble, eval_prompts=8)
    assert sft["eval_kl"] == pytest.approx(0.0, abs=1e-6)
    assert trained["eval_kl"] > 0.0  # the checkpoint's policy, not the SFT one, was evaluated
    for values in (trained, sft):
        assert values["disagreement"] > 0.0  # two reward models never agree exactly
        assert np.isfinite([values[k] for k in ("members_mean", "proxy_excess")]).all()
