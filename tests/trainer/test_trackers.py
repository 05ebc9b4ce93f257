"""report_to: TensorBoard events and an offline W&B run hold every metric, namespaced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import build_tiny  # noqa: E402

from reference_trainer.config import TrainConfig, parse_report_to  # noqa: E402
from reference_trainer.config_cli import build  # noqa: E402
from reference_trainer.run import train  # noqa: E402
from reference_trainer.run_dir.trackers import NAMESPACES, namespaced  # noqa: E402

SMALL = {"steps": "2", "batch_size": "4", "max_new_tokens": "6", "min_new_tokens": "1"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def run(tiny: Path, run_dir: Path, report_to: str, **extra: Any) -> list[dict]:
    values = build(TrainConfig, {**SMALL, "threads": "1"}, strings=True)
    config = TrainConfig(
        **{
            **values.__dict__,
            "model": str(tiny),
            "run_dir": str(run_dir),
            "report_to": report_to,
            **extra,
        }
    )
    train(config, reward_fn=lambda p, c: [float(len(x) % 3) for x in c], progress=False)
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]


def test_tensorboard_events_hold_every_metric_under_its_namespace(tiny, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = run(tiny, tmp_path / "run", "tensorboard")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == set(namespaced(rows[-1]))
    # the default controller (kl-budget) logs its budget
    assert {"reward/mean", "kl/k3", "controller/budget", "value/explained_variance"} <= tags
    for key, tag in (("reward_mean", "reward/mean"), ("coef", "controller/coef")):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in rows]


def test_an_offline_wandb_run_holds_the_namespaced_metrics(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb = pytest.importorskip("wandb")
    rows = run(tiny, tmp_path / "run", "wandb")
    # run.finish() can return before wandb's service process has written its record log to
    # disk (CI saw only the 7-byte header); teardown waits for that process to exit.
    wandb.teardown()
    (log,) = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    records = log.read_bytes()  # wandb's record log: keys and JSON values as written
    for key in namespaced(rows[-1]):
        assert key.encode() in records, key
    for row in rows:
        assert json.dumps(row["reward_mean"]).encode() in records


@pytest.mark.parametrize(
    "extra",
    [{}, {"gold_reward": "vader", "entropy_target": 2.0, "eval_every": 1, "eval_prompts": 8}],
)
def test_every_metric_the_trainer_logs_has_a_namespace(tiny, tmp_path, extra):
    """Also a gold reward's, the entropy controller's and the evaluations' metrics (a run with
    a gold reward and a tracker raised at its first step before they had one)."""
    rows = run(tiny, tmp_path / "run", "none", **extra)
    flat = {k for row in rows for k in row if k != "step" and not k.startswith("seconds_")}
    assert flat <= set(NAMESPACES), flat - set(NAMESPACES)
    ev = rows[-1]["explained_variance"]
    assert ev is None or ev <= 1.0


def test_report_to_is_validated_naming_the_bad_value():
    assert parse_report_to("none") == ()
    assert parse_report_to("tensorboard, wandb") == ("tensorboard", "wandb")
    with pytest.raises(ValueError, match="'mlflow'"):
        TrainConfig(report_to="mlflow")
    with pytest.raises(ValueError, match="cannot be combined"):
        TrainConfig(report_to="none,wandb")
    with pytest.raises(KeyError, match="'mystery'"):
        namespaced({"step": 1, "mystery": 1.0})
