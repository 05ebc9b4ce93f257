"""The reference trainer: resume after SIGKILL, atomic checkpoints, bad input, two processes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import build_tiny  # noqa: E402
from tiny_lm import deterministic_rows as deterministic  # noqa: E402

from reference_trainer.__main__ import main  # noqa: E402
from reference_trainer.config import TrainConfig  # noqa: E402
from reference_trainer.config_cli import build  # noqa: E402
from reference_trainer.run import train  # noqa: E402
from reference_trainer.run_dir import checkpoint  # noqa: E402
from safecontrol import registry  # noqa: E402

SMALL = {
    "steps": "6",
    "batch_size": "4",
    "max_new_tokens": "6",
    "min_new_tokens": "1",
    "checkpoint_every": "2",
    "sample_every": "3",
    "threads": "1",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def cli(model: Path, run_dir: Path, *extra: str, **overrides: str) -> list[str]:
    settings = {**SMALL, **overrides}
    args = [
        sys.executable,
        "-m",
        "reference_trainer",
        "train",
        "--model",
        str(model),
        "--run-dir",
        str(run_dir),
        "--no-progress",
    ]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    return args + list(extra)


def test_sigkilled_run_resumes_to_the_same_metrics_as_an_uninterrupted_run(tiny, tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    uninterrupted = tmp_path / "uninterrupted"
    subprocess.run(cli(tiny, uninterrupted), check=True, env=env, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        cli(tiny, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    metrics = killed / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    lines_at_kill = len(metrics.read_text().splitlines())
    assert 3 <= lines_at_kill < 6, "the kill must land mid-run"
    assert checkpoint.load(killed / "checkpoint.pt")["step"] in (2, 4)

    subprocess.run(
        cli(tiny, killed, "--resume"), check=True, env=env, capture_output=True, timeout=300
    )
    assert deterministic(killed) == deterministic(uninterrupted)
    assert len(deterministic(killed)) == 6


KILLED_WRITER = """
import sys, torch
from pathlib import Path
from reference_trainer.run_dir.checkpoint import save_atomic
path = Path(sys.argv[1])
save_atomic(path, {"step": 1, "weights": torch.zeros(10)})
print("ready", flush=True)
while True:   # keep rewriting a large checkpoint until killed mid-write
    save_atomic(path, {"step": 2, "weights": torch.ones(20_000_000)})
"""


def test_kill_during_checkpoint_write_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = checkpoint.load(path, required=("step", "weights"))
    assert state["step"] in (1, 2)
    expected = 0.0 if state["step"] == 1 else 1.0
    assert float(state["weights"].mean()) == expected


def test_unknown_algorithm_and_config_key_are_named():
    with pytest.raises(ValueError, match="reinforce"):
        TrainConfig(algo="reinforce")
    with pytest.raises(ValueError, match="lrr"):
        build(TrainConfig, {"lrr": "1"}, strings=True)
    with pytest.raises(ValueError, match="max_new_tokens"):
        TrainConfig(max_new_tokens=0)


def test_cli_reports_bad_input_with_exit_code_2(tiny, tmp_path, capsys):
    code = main(
        [
            "train",
            "--model",
            str(tiny),
            "--run-dir",
            str(tmp_path / "r"),
            "--set",
            "nonexistent_key=1",
        ]
    )
    assert code == 2
    assert "nonexistent_key" in capsys.readouterr().err
    code = main(["train", "--model", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "r")])
    assert code == 2
    assert "missing" in capsys.readouterr().err


def small_config(tiny: Path, run_dir: Path, **changes) -> TrainConfig:
    values = build(TrainConfig, {**SMALL, "steps": "3", "checkpoint_every": "1"}, strings=True)
    return TrainConfig(
        **{**values.__dict__, "model": str(tiny), "run_dir": str(run_dir), **changes}
    )


def failing_at(step_to_fail: int, returned):
    calls = {"n": 0}

    def reward_fn(prompts, completions):
        calls["n"] += 1
        if calls["n"] >= step_to_fail:
            return returned(completions)
        return [0.1] * len(completions)

    return reward_fn


def _raise(completions):
    raise RuntimeError("scorer down")


@pytest.mark.parametrize(
    "returned, error, message",
    [
        (_raise, RuntimeError, "scorer down"),
        (lambda c: [math.nan] * len(c), ValueError, "non-finite"),
        (lambda c: [0.0] * (len(c) + 1), ValueError, "returned 5 values for 4"),
    ],
)
def test_bad_reward_function_stops_with_clear_error_and_checkpoint_intact(
    tiny, tmp_path, returned, error, message
):
    run_dir = tmp_path / "run"
    with pytest.raises(error, match=message):
        train(small_config(tiny, run_dir), reward_fn=failing_at(3, returned), progress=False)
    state = checkpoint.load(run_dir / "checkpoint.pt")
    assert state["step"] == 2
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2


def test_empty_prompt_set_is_refused(tiny, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for part in ("model", "tokenizer", "prepare.json"):
        os.symlink(tiny / part, empty / part)
    (empty / "prompts.json").write_text("[]")
    with pytest.raises(ValueError, match=r"prompt set .* is empty"):
        train(small_config(empty, tmp_path / "run"), progress=False)


def test_existing_run_is_not_clobbered_without_resume(tiny, tmp_path):
    run_dir = tmp_path / "run"
    train(small_config(tiny, run_dir, steps=1), reward_fn=failing_at(99, None), progress=False)
    before = (run_dir / "checkpoint.pt").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        train(small_config(tiny, run_dir, steps=1), progress=False)
    assert (run_dir / "checkpoint.pt").read_bytes() == before


def two_processes(args: list[str], port: int) -> None:
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        "-m",
        "reference_trainer",
        *args[3:],
    ]
    result = subprocess.run(
        launcher,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_train_data_parallel_with_one_writer(tiny, tmp_path):
    run_dir = tmp_path / "ddp"
    two_processes(
        cli(tiny, run_dir, steps="2", checkpoint_every="1", eval_every="1", eval_prompts="6"),
        29531,
    )
    rows = deterministic(run_dir)
    assert all("eval_kl" in row and "eval_distinct_1" in row for row in rows)
    assert [r["step"] for r in rows] == [1, 2]  # one writer: no duplicated lines
    assert checkpoint.load(run_dir / "checkpoint.pt")["step"] == 2
    assert len(checkpoint.load(run_dir / "checkpoint.pt")["rank_rng"]) == 2


def test_two_processes_in_micro_batches_take_the_data_parallel_step(tiny, tmp_path):
    """Micro-batches under DDP accumulate without synchronising and average the gradients once:
    the losses, KL and gradient norm of the whole-shard run, within float rounding."""
    whole, micro = tmp_path / "whole", tmp_path / "micro"
    two_processes(cli(tiny, whole, steps="2", lr="0.01"), 29533)
    two_processes(cli(tiny, micro, steps="2", lr="0.01", micro_batch_size="1"), 29535)
    for row_whole, row_micro in zip(deterministic(whole), deterministic(micro), strict=True):
        for key in ("policy_loss", "live_kl", "kl_term", "grad_norm", "value_loss", "kl_k3"):
            assert row_micro[key] == pytest.approx(row_whole[key], rel=1e-4, abs=1e-7), key


def test_continuation_longer_than_the_model_context_is_refused(tiny, tmp_path):
    with pytest.raises(ValueError, match="max_new_tokens=40 plus the longest prompt"):
        train(small_config(tiny, tmp_path / "run", max_new_tokens=40), progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_lora_trains_only_adapters_and_uses_the_base_model_as_reference(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path / "lora"
    train(small_config(tiny, run_dir, steps=2, lora_rank=4), progress=False)
    state = checkpoint.load(run_dir / "checkpoint.pt")["policy"]
    adapters = [k for k in state if "lora_" in k]
    assert adapters, "peft adapters are in the checkpoint"
    base = AutoModelForCausalLM.from_pretrained(tiny / "model").state_dict()
    for key, value in state.items():
        if "lora_" in key or "base_layer" not in key:
            continue
        original = key.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(value, base[original]), f"{key} changed under LoRA"
    assert any(state[k].abs().sum() > 0 for k in adapters if "lora_B" in k), (
        "the adapters trained (lora_B starts at zero)"
    )


def test_sequence_classification_reward_model_from_a_local_path(tiny, tmp_path):
    from transformers import AutoTokenizer, GPT2Config, GPT2ForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny / "tokenizer")
    reward_dir = tmp_path / "reward_model"
    torch.manual_seed(1)
    GPT2ForSequenceClassification(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=64,
            n_embd=16,
            n_layer=1,
            n_head=2,
            num_labels=2,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).save_pretrained(reward_dir)
    tokenizer.save_pretrained(reward_dir)
    run_dir = tmp_path / "run"
    train(small_config(tiny, run_dir, steps=2, reward=str(reward_dir)), progress=False)
    rewards = [json.loads(x)["reward_mean"] for x in (run_dir / "metrics.jsonl").open()]
    assert all(r != 0.0 and math.isfinite(r) for r in rewards)  # VADER would give 0 here


def test_missing_reward_model_path_is_named(tiny, tmp_path):
    with pytest.raises(ValueError, match="no_such_reward"):
        train(
            small_config(tiny, tmp_path / "run", reward=str(tmp_path / "no_such_reward")),
            progress=False,
        )


@pytest.mark.parametrize("algo", [n for n in registry.names() if not n.startswith("safe")])
def test_every_comparison_controller_trains_and_logs_its_coefficient(tiny, tmp_path, algo):
    run_dir = tmp_path / algo
    train(small_config(tiny, run_dir, steps=2, algo=algo), progress=False)
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").open()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["coef"]) and r["coef"] >= 0 for r in rows)
    assert "threshold" not in rows[0]  # SAFE-only fields are absent for classic controllers
    controller = small_config(tiny, run_dir, steps=2, algo=algo).make_controller()
    controller.load_state_dict(json.loads(checkpoint.load(run_dir / "checkpoint.pt")["controller"]))
    assert controller.decision.step == 2  # one update per rollout batch
    assert controller.decision.coef == rows[-1]["coef"]


def test_safe_published_trains_as_safe_applied_like_the_published_code(tiny, tmp_path):
    published = small_config(tiny, tmp_path / "published", algo="safe-published")
    assert (published.penalty_mode, published.preview_steps) == ("detached", False)
    assert published.n_critic_heads == 2
    assert small_config(tiny, tmp_path, algo="safe").n_critic_heads == 2
    spelt = small_config(
        tiny, tmp_path / "spelt", algo="safe", penalty_mode="detached", preview_steps=False
    )
    for config in (published, spelt):
        train(config, progress=False)
    untimed = [
        [
            {k: v for k, v in json.loads(x).items() if not k.startswith(("seconds", "tokens_per"))}
            for x in (Path(c.run_dir) / "metrics.jsonl").open()
        ]
        for c in (published, spelt)
    ]
    assert untimed[0] == untimed[1]
    ablation = small_config(tiny, tmp_path / "ablation", algo="safe-published", penalty_mode="coef")
    assert ablation.penalty_mode == "coef"  # a field set to a non-default value keeps it
    assert small_config(tiny, tmp_path, algo="fixed-kl").n_critic_heads == 1


def test_a_controller_registered_at_run_time_trains_through_the_trainer_unchanged(tiny, tmp_path):
    from toy_controller import registered

    from safecontrol.testing import check_controller

    with registered() as name:
        check_controller(lambda: registry.make(name))
        run_dir = tmp_path / "toy"
        settings = {"target": 0.01, "gain": 0.5}
        train(
            small_config(tiny, run_dir, steps=3, algo=name, controller_settings=settings),
            progress=False,
        )
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").open()]
        assert [r["step"] for r in rows] == [1, 2, 3]
        coef = 0.05  # the toy's rule on the KL the trainer measured, batch by batch
        for row in rows:
            coef = min(1.0, max(0.0, coef + 0.5 * (row["kl_measured"] - 0.01)))
            assert row["coef"] == coef
        assert "preview_kl" not in rows[-1]  # its decision never limits a step
        from reference_trainer.run_dir.report import summary

        restored = registry.make(name, **settings)
        restored.load_state_dict(
            json.loads(checkpoint.load(run_dir / "checkpoint.pt")["controller"])
        )
        assert restored.decision.coef == rows[-1]["coef"]
    assert name not in registry.names()
    # a later process that never registered the toy can still report the run
    assert summary(run_dir)["steps"] == 3
