"""Periodic evaluation on held-out prompts: never trained on, the same noise every time, no effect
on training, and the report's gold drawdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from tiny_lm import build_tiny, tiny_config  # noqa: E402

from reference_trainer.config import TrainConfig  # noqa: E402
from reference_trainer.evaluation import split_prompts  # noqa: E402
from reference_trainer.run import train  # noqa: E402
from reference_trainer.run_dir.files import read_step_records  # noqa: E402
from reference_trainer.run_dir.report import evaluation_summary, summary  # noqa: E402
from reference_trainer.run_dir.trackers import namespaced  # noqa: E402
from reference_trainer.train import Trainer  # noqa: E402

EVAL_KEYS = (
    "eval_reward",
    "eval_gold",
    "eval_kl",
    "eval_entropy",
    "eval_distinct_1",
    "eval_response_length",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def config(tiny: Path, run_dir: Path, **overrides: Any) -> TrainConfig:
    evaluated = {"batch_size": 4, "steps": 4, "eval_every": 2, "eval_prompts": 10}
    return tiny_config(tiny, run_dir, gold_reward="vader", **{**evaluated, **overrides})


def training_rows(run_dir: Path) -> list[dict]:
    rows = read_step_records(run_dir / "metrics.jsonl")
    skip = ("seconds_", "tokens_per_second", "eval_")
    return [{k: v for k, v in row.items() if not k.startswith(skip)} for row in rows]


def test_the_held_out_prompts_are_never_drawn_for_training(tiny, tmp_path):
    trainer = Trainer(config(tiny, tmp_path / "run"))
    assert trainer.evaluation is not None
    held_out = set(trainer.evaluation.prompts)
    assert len(trainer.evaluation.prompts) == 10 and not held_out & set(trainer.prompts)
    drawn: set[str] = set()
    original = trainer._sample
    trainer._sample = lambda shard: drawn.update(shard) or original(shard)  # type: ignore[method-assign]
    for _ in range(6):
        trainer.iteration()
    assert drawn and not drawn & held_out


def test_evaluations_run_at_their_steps_and_the_last_and_change_no_training_number(tiny, tmp_path):
    every_two, every_three = tmp_path / "two", tmp_path / "three"
    train(config(tiny, every_two, steps=5), progress=False)
    train(config(tiny, every_three, steps=5, eval_every=3), progress=False)
    rows = read_step_records(every_two / "metrics.jsonl")
    assert [r["step"] for r in rows if "eval_reward" in r] == [2, 4, 5]
    assert all(set(EVAL_KEYS) <= set(r) for r in rows if "eval_reward" in r)
    assert [
        r["step"] for r in read_step_records(every_three / "metrics.jsonl") if "eval_kl" in r
    ] == [
        3,
        5,
    ]
    # the evaluation forks the RNG: training is the same whenever it evaluates
    assert training_rows(every_two) == training_rows(every_three)
    eval_row = next(r for r in rows if "eval_reward" in r)
    assert {f"eval/{k[5:]}" for k in EVAL_KEYS} <= set(namespaced(eval_row))


def test_an_evaluation_repeats_exactly_on_the_same_policy(tiny, tmp_path):
    """Common random numbers: the same prompts and the same sampling noise every time, so two
    evaluations differ only by what the policy learned between them."""
    trainer = Trainer(config(tiny, tmp_path / "run"))
    trainer.iteration()
    first, second = trainer.evaluate(), trainer.evaluate()
    for key in EVAL_KEYS:
        assert first[key] == second[key], key
    trainer.iteration()
    assert trainer.evaluate()["eval_kl"] != first["eval_kl"]


def test_a_run_without_evaluation_trains_on_every_prompt_and_cannot_evaluate(tiny, tmp_path):
    trainer = Trainer(config(tiny, tmp_path / "run", eval_every=0))
    everything = Trainer(config(tiny, tmp_path / "other"))
    assert len(trainer.prompts) == len(everything.prompts) + 10
    with pytest.raises(RuntimeError, match="eval_every=0"):
        trainer.evaluate()


def test_a_held_out_set_that_leaves_nothing_to_train_on_is_refused():
    with pytest.raises(ValueError, match="eval_prompts=3 leaves none of the 3 prompts"):
        split_prompts(["a", "b", "c"], 3)
    with pytest.raises(ValueError, match="eval_prompts must be > 0, got 0"):
        TrainConfig(eval_every=5, eval_prompts=0)
    with pytest.raises(ValueError, match="eval_every must be >= 0, got -1"):
        TrainConfig(eval_every=-1)


def rows_with_gold(golds: list[float | None]) -> list[dict[str, Any]]:
    rows = []
    for step, gold in enumerate(golds, start=1):
        row: dict[str, Any] = {"step": step}
        if gold is not None:
            row.update(
                eval_reward=0.1, eval_gold=gold, eval_kl=0.2, eval_entropy=3.0, eval_distinct_1=0.5
            )
        rows.append(row)
    return rows


def test_the_gold_drawdown_is_the_best_evaluation_minus_the_last():
    got = evaluation_summary(rows_with_gold([None, 0.3, None, 0.5, None, 0.42]))
    assert got["evaluations"] == 3
    assert got["eval_gold_best"] == 0.5 and got["eval_gold_best_step"] == 4
    assert got["eval_gold_final"] == 0.42
    assert got["gold_drawdown"] == pytest.approx(0.08)
    rising = evaluation_summary(rows_with_gold([0.1, 0.2, 0.3]))
    assert rising["gold_drawdown"] == 0.0
    assert evaluation_summary(rows_with_gold([None, None])) == {}


def test_the_report_summarises_the_evaluations(tiny, tmp_path):
    run_dir = tmp_path / "run"
    train(config(tiny, run_dir, steps=3), progress=False)
    got = summary(run_dir)
    assert got["evaluations"] == 2 and got["eval_gold_best_step"] in (2, 3)
    assert got["gold_drawdown"] >= 0.0
