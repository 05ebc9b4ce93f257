"""Offline tasks (proxy + gold), reward=module:function, gold logging, the entropy controller."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import build_tiny  # noqa: E402

from reference_trainer.config import TrainConfig  # noqa: E402
from reference_trainer.config_cli import build  # noqa: E402
from reference_trainer.run import train  # noqa: E402
from reference_trainer.run_dir.report import summary  # noqa: E402
from reference_trainer.tasks import offline as tasks  # noqa: E402
from reference_trainer.tasks import reward_model  # noqa: E402
from reference_trainer.tasks.rewards import vader_reward  # noqa: E402

SMALL = {
    "steps": "4",
    "batch_size": "4",
    "max_new_tokens": "6",
    "min_new_tokens": "1",
    "checkpoint_every": "2",
    "sample_every": "3",
    "threads": "1",
}
HAS_WORDNET = (tasks.WORDNET_DIR / "index.noun").is_file()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def config(tiny: Path, tmp_path: Path, name: str = "run", **changes) -> TrainConfig:
    values = build(TrainConfig, SMALL, strings=True).__dict__
    fields = {**values, "model": str(tiny), "run_dir": str(tmp_path / name)}
    return TrainConfig(**{**fields, "data_dir": str(tmp_path / "data"), **changes})


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def fully_fluent(prompts, completions):
    return [1.0] * len(completions)


# ------------------------------------------------------------------ the gold and proxy scorers
def test_sentiment_gold_ignores_repetition_emphasis_and_single_letters():
    gold = tasks.sentiment_gold(fully_fluent)  # type: ignore[arg-type]
    proxy = vader_reward()
    texts = ["a good day", "good good good good!!!", "l l l l l"]
    proxy_scores = proxy([""] * 3, texts)
    gold_scores = gold([""] * 3, texts)
    assert proxy_scores[1] > proxy_scores[0] and proxy_scores[2] > 0.5  # the proxy is gamed
    assert gold_scores[1] == pytest.approx(gold_scores[0])  # "good" once, either way
    assert gold_scores[2] == 0.0


def test_sentiment_gold_scales_with_fluency():
    halves = tasks.sentiment_gold(lambda p, c: [0.5] * len(c))  # type: ignore[arg-type]
    full = tasks.sentiment_gold(fully_fluent)  # type: ignore[arg-type]
    assert halves([""], ["a good day"])[0] == pytest.approx(full([""], ["a good day"])[0] / 2)


@pytest.mark.skipif(not HAS_WORDNET, reason="WordNet (apt-get install wordnet-base) not installed")
def test_topic_words_are_common_person_nouns_not_names():
    topic = tasks.topic_words()
    assert {"man", "woman", "friend", "king", "doctor"} <= topic
    assert "more" not in topic  # its person sense is Sir Thomas More, a name
    assert "table" not in topic


@pytest.mark.skipif(not HAS_WORDNET, reason="WordNet (apt-get install wordnet-base) not installed")
def test_topic_proxy_pays_for_repetition_the_gold_does_not():
    topic = tasks.topic_words()
    proxy, gold = tasks.topic_proxy(topic), tasks.topic_gold(topic, fully_fluent)  # type: ignore[arg-type]
    texts = ["man man man man", "the king met a doctor and his friends"]
    assert proxy([""] * 2, texts) == pytest.approx([1.0, 3 / 7])  # "a" is no word
    assert gold([""] * 2, texts) == pytest.approx([1 / 3, 1.0])  # "friends" counts as friend


def test_batched_fluency_equals_one_text_at_a_time(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny / "tokenizer")
    prompts, completions = ["def f", "a much longer prompt here", "x"], [" = 1", " is", ""]
    batched = tasks.mean_logprobs(model, tokenizer, prompts, completions)
    alone = [
        tasks.mean_logprobs(model, tokenizer, [p], [c])[0]
        for p, c in zip(prompts, completions, strict=True)
    ]
    assert batched[:2] == pytest.approx(alone[:2], abs=1e-5)
    assert batched[2] == alone[2] == float("-inf")  # an empty continuation has fluency 0
    fluency = tasks.Fluency(model, tokenizer, baseline=batched[0])
    assert fluency(prompts[:1], completions[:1]) == pytest.approx([1.0])
    assert fluency(prompts, completions)[2] == 0.0


# ------------------------------------------------------------------ tasks in the trainer
def test_a_task_logs_gold_beside_the_proxy_and_the_report_shows_both(tiny, tmp_path):
    run = config(tiny, tmp_path, task="sentiment")
    train(run, progress=False)
    logged = rows(Path(run.run_dir))
    assert all(math.isfinite(r["gold_mean"]) for r in logged)
    saved = json.loads((Path(run.run_dir) / "config.json").read_text())
    assert saved["task"] == "sentiment" and saved["reward"] == "vader"
    report = summary(Path(run.run_dir))
    assert report["gold_final"] == pytest.approx(sum(r["gold_mean"] for r in logged) / len(logged))
    assert "gold_crashes" in report
    baseline = json.loads(
        next((tmp_path / "data").glob("tasks-*/fluency_baseline.json")).read_text()
    )
    assert math.isfinite(baseline["baseline"])


def test_a_run_without_gold_logs_none(tiny, tmp_path):
    run = config(tiny, tmp_path)
    train(run, progress=False)
    assert "gold_mean" not in rows(Path(run.run_dir))[0]
    assert "gold_final" not in summary(Path(run.run_dir))


def test_the_reward_model_task_trains_its_proxy_on_gold_labels(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(reward_model, "RM_SAMPLES", 160)
    monkeypatch.setattr(reward_model, "RM_HELD_OUT", 40)
    monkeypatch.setattr(reward_model, "RM_EPOCHS", 1)
    run = config(tiny, tmp_path, task="reward-model")
    train(run, progress=False)
    record_path = next((tmp_path / "data").glob("tasks-*/reward_model-n160-*/reward_model.json"))
    record = json.loads(record_path.read_text())
    assert record["samples"] == 160 and math.isfinite(record["held_out_pearson_r"])
    logged = rows(Path(run.run_dir))
    # The proxy is the learned model's output, not the labeller: the two differ.
    assert any(abs(r["reward_mean"] - r["gold_mean"]) > 1e-6 for r in logged)


def test_task_and_reward_together_are_refused():
    with pytest.raises(ValueError, match="task='topic' sets the proxy and gold"):
        TrainConfig(task="topic", reward="my_module:score")
    with pytest.raises(ValueError, match="task must be one of"):
        TrainConfig(task="chess")


# ------------------------------------------------------------------ reward=module:function
REWARD_MODULE = """
def length(prompts, completions):
    return [float(len(c)) for c in completions]

def minus_length(prompts, completions):
    return [-float(len(c)) for c in completions]
"""


def test_python_reward_and_gold_from_the_command_line_are_recorded_and_resumed(tiny, tmp_path):
    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "reference_trainer", "train", "--model", str(tiny)]
    args += ["--run-dir", str(run_dir), "--no-progress"]
    sets = {**SMALL, "reward": "my_rewards:length", "gold_reward": "my_rewards:minus_length"}
    sets["data_dir"] = str(tmp_path / "data")
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run(args, check=True, env=env, capture_output=True, timeout=300)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["reward"] == "my_rewards:length"
    logged = rows(run_dir)
    assert all(r["reward_mean"] > 0 and r["gold_mean"] == -r["reward_mean"] for r in logged)
    # --resume rebuilds both scorers from config.json when the user trusts the run's code (a
    # received run directory must not import code it names: --trust-run-code opts in)
    resume = [sys.executable, "-m", "reference_trainer", "train", "--run-dir", str(run_dir)]
    resume += ["--resume", "--trust-run-code", "--no-progress", "--set", "steps=6"]
    subprocess.run(resume, check=True, env=env, capture_output=True, timeout=300)
    assert [r["gold_mean"] == -r["reward_mean"] for r in rows(run_dir)] == [True] * 6


def test_a_python_reward_that_cannot_be_imported_is_named(tiny, tmp_path):
    with pytest.raises(ValueError, match="no_such_module"):
        train(config(tiny, tmp_path, reward="no_such_module:score"), progress=False)
    (tmp_path / "has_no_fn.py").write_text("x = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ValueError, match="no callable 'score'"):
            train(config(tiny, tmp_path, "r2", reward="has_no_fn:score"), progress=False)
    finally:
        sys.path.remove(str(tmp_path))


# ------------------------------------------------------------------ the entropy controller
def test_entropy_target_drives_the_bonus_and_resumes_bit_identically(tiny, tmp_path):
    settings = {"algo": "fixed-kl", "controller_settings": {"coef": 0.0}, "steps": 4}
    whole = config(tiny, tmp_path, "whole", entropy_target=50.0, ent_coef=0.0, **settings)
    train(whole, progress=False)
    coefs = [r["entropy_coef"] for r in rows(Path(whole.run_dir))]
    assert coefs == pytest.approx([0.005, 0.01, 0.015, 0.02])  # entropy below target: it rises
    plain = config(tiny, tmp_path, "plain", ent_coef=0.0, **settings)
    train(plain, progress=False)
    assert rows(Path(plain.run_dir))[-1]["entropy"] != rows(Path(whole.run_dir))[-1]["entropy"]

    part = config(
        tiny, tmp_path, "part", entropy_target=50.0, ent_coef=0.0, **{**settings, "steps": 2}
    )
    train(part, progress=False)
    resumed = config(tiny, tmp_path, "part", entropy_target=50.0, ent_coef=0.0, **settings)
    train(resumed, resume=True, progress=False)

    def deterministic(run_dir: str) -> list[dict]:
        return [
            {k: v for k, v in r.items() if not k.startswith(("seconds_", "tokens_per"))}
            for r in rows(Path(run_dir))
        ]

    assert deterministic(resumed.run_dir) == deterministic(whole.run_dir)


def test_entropy_target_with_a_bonus_outside_its_range_is_refused():
    with pytest.raises(ValueError, match=r"ent_coef=0\.5"):
        TrainConfig(entropy_target=2.0, ent_coef=0.5)
    with pytest.raises(ValueError, match="entropy_target must be >= 0"):
        TrainConfig(entropy_target=-1.0)
