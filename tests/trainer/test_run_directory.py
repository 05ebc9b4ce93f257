"""Nothing a careless user, a crash or a corrupt file does may lose a run or silently change it:
the run directory's ownership, checksummed checkpoints, resume rules and readable errors (its
lock: ``test_run_lock``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import build_tiny  # noqa: E402

from reference_trainer.__main__ import main  # noqa: E402
from reference_trainer.config import TrainConfig  # noqa: E402
from reference_trainer.config_cli import build  # noqa: E402
from reference_trainer.run import train  # noqa: E402
from reference_trainer.run_dir import checkpoint  # noqa: E402
from reference_trainer.run_dir.report import summary  # noqa: E402
from reference_trainer.train import NonFiniteTraining  # noqa: E402
from safecontrol import registry  # noqa: E402

SMALL = {
    "steps": "2",
    "batch_size": "4",
    "max_new_tokens": "6",
    "min_new_tokens": "1",
    "checkpoint_every": "1",
    "sample_every": "1",
    "threads": "1",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def config(tiny: Path, run_dir: Path, **changes) -> TrainConfig:
    values = build(TrainConfig, SMALL, strings=True)
    return TrainConfig(
        **{**values.__dict__, "model": str(tiny), "run_dir": str(run_dir), **changes}
    )


def constant_reward(prompts, completions):
    return [0.5] * len(completions)


def cli(tiny: Path, run_dir: Path, *extra: str) -> list[str]:
    args = ["train", "--model", str(tiny), "--run-dir", str(run_dir), "--no-progress"]
    for key, value in SMALL.items():
        args += ["--set", f"{key}={value}"]
    return args + list(extra)


def test_report_refuses_a_metrics_log_written_by_two_processes(tiny, tmp_path):
    run_dir = tmp_path / "run"
    train(config(tiny, run_dir), reward_fn=constant_reward, progress=False)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("\n".join(lines + lines) + "\n")  # steps 1, 2, 1, 2
    with pytest.raises(ValueError, match="more than one process"):
        summary(run_dir)


# ------------------------------------------------------------------ non-finite training
@pytest.mark.parametrize("algo", registry.names())
def test_non_finite_weights_stop_the_run_and_are_never_checkpointed(tiny, tmp_path, algo):
    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteTraining, match=r"step 1: the .* (is nan|is inf|non-finite)"):
        train(
            config(tiny, run_dir, algo=algo, lr=1e30, steps=1),
            reward_fn=constant_reward,
            progress=False,
        )
    assert not (run_dir / "checkpoint.pt").exists()


def test_a_non_finite_loss_keeps_the_last_good_checkpoint(tiny, tmp_path):
    calls = {"n": 0}

    def reward_exploding_at_step_3(prompts, completions):
        calls["n"] += 1
        return [1e30 if calls["n"] >= 3 else 0.5] * len(completions)  # finite, but 1e60 squared

    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteTraining, match=r"step 3: the .* is inf"):
        train(config(tiny, run_dir, steps=4), reward_fn=reward_exploding_at_step_3, progress=False)
    state = checkpoint.load(run_dir / "checkpoint.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(t).all() for t in state["policy"].values())
    assert all(torch.isfinite(t).all() for t in state["critic"].values())


@pytest.mark.parametrize(
    "key, value",
    [("ent_coef", "nan"), ("clip_range", "nan"), ("lr", "inf"), ("seed", "-1"), ("gamma", "nan")],
)
def test_non_finite_or_negative_settings_are_named_before_anything_is_written(
    tiny, tmp_path, capsys, key, value
):
    run_dir = tmp_path / "run"
    assert main(cli(tiny, run_dir, "--set", f"{key}={value}")) == 2
    assert key in capsys.readouterr().err
    assert not run_dir.exists()


# ------------------------------------------------------------------ foreign directories
def test_a_directory_holding_someone_elses_files_is_never_written(tiny, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "config.json").write_text('{"my": "settings"}')
    (project / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="holds no training run"):
        train(config(tiny, project), reward_fn=constant_reward, progress=False)
    assert (project / "config.json").read_text() == '{"my": "settings"}'
    assert sorted(p.name for p in project.iterdir()) == ["config.json", "notes.txt"]


# ------------------------------------------------------------------ trainer inputs
@pytest.mark.parametrize(
    "returned, message",
    [
        (lambda c: ["0.5"] * len(c), "rewards must be real numbers"),
        (lambda c: [True] * len(c), "rewards must be real numbers"),
        (lambda c: {f"{i}": 0.5 for i in range(len(c))}, "sequence of numbers"),
        (lambda c: "0.5" * len(c), "sequence of numbers"),
        (lambda c: [torch.tensor([0.5])] * len(c), "rewards must be real numbers"),
    ],
)
def test_rewards_that_are_not_real_numbers_are_refused(tiny, tmp_path, returned, message):
    with pytest.raises(ValueError, match=message):
        train(
            config(tiny, tmp_path / "run"),
            reward_fn=lambda p, c: returned(c),
            progress=False,
        )


def test_a_reward_function_that_never_returns_times_out(tiny, tmp_path):
    def hung(prompts, completions):
        time.sleep(3600)

    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"did not return within reward_timeout=1\.0 s"):
        train(config(tiny, tmp_path / "run", reward_timeout=1.0), reward_fn=hung, progress=False)
    assert time.monotonic() - start < 60


def test_controller_settings_may_not_contradict_top_level_settings():
    with pytest.raises(ValueError, match="kl_estimator"):
        TrainConfig(kl_estimator="k3", controller_settings={"kl_estimator": "k1"})
    with pytest.raises(ValueError, match=r"unknown settings \['use_gate'\]"):
        TrainConfig(algo="fixed-kl", controller_settings={"use_gate": False})
    with pytest.raises(ValueError, match="'ppo' is now called 'fixed-kl'"):
        TrainConfig(algo="ppo")
    with pytest.raises(ValueError, match=r"unknown controller 'reinforce'.*'safe'"):
        TrainConfig(algo="reinforce")


def test_controller_settings_are_validated_when_the_config_is_built(tiny, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(cli(tiny, run_dir, "--set", 'controller_settings={"use_gate": "false"}'))
    assert code == 2
    assert "use_gate" in capsys.readouterr().err
    assert not run_dir.exists()
    code = main(
        cli(tiny, run_dir, "--algo", "fixed-kl", "--set", 'controller_settings={"coef": -1}')
    )
    assert code == 2
    assert "coef" in capsys.readouterr().err
    assert not run_dir.exists()


def test_a_flipped_byte_in_the_checkpoint_is_detected(tiny, tmp_path):
    run_dir = tmp_path / "run"
    train(config(tiny, run_dir), reward_fn=constant_reward, progress=False)
    data = bytearray((run_dir / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (run_dir / "checkpoint.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"checkpoint\.pt is corrupt"):
        train(config(tiny, run_dir, steps=3), reward_fn=constant_reward, resume=True)


def test_a_checkpoint_of_another_run_is_named_as_such(tiny, tmp_path):
    mine, other = tmp_path / "mine", tmp_path / "other"
    train(config(tiny, mine), reward_fn=constant_reward, progress=False)
    train(config(tiny, other, critic_heads=3), reward_fn=constant_reward, progress=False)
    (mine / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    with pytest.raises(ValueError, match=r"belongs to another run.*critic_heads"):
        train(config(tiny, mine, steps=3), reward_fn=constant_reward, resume=True)


# ------------------------------------------------------------------ unclear messages
def test_a_run_that_failed_before_its_first_checkpoint_can_be_resumed_from_step_0(tiny, tmp_path):
    run_dir = tmp_path / "run"

    def failing(prompts, completions):
        raise RuntimeError("scorer down")

    with pytest.raises(RuntimeError, match="scorer down"):
        train(config(tiny, run_dir), reward_fn=failing, progress=False)
    assert (run_dir / "config.json").exists() and not (run_dir / "checkpoint.pt").exists()
    with pytest.raises(FileExistsError, match="restart it from step 0"):
        train(config(tiny, run_dir), reward_fn=constant_reward, progress=False)
    train(config(tiny, run_dir), reward_fn=constant_reward, resume=True, progress=False)
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").open()]
    assert steps == [1, 2]


def test_a_run_resumes_through_a_relative_path_or_after_being_moved(tiny, tmp_path, monkeypatch):
    first = tmp_path / "first"
    train(config(tiny, first), reward_fn=constant_reward, progress=False)
    moved = tmp_path / "moved"
    first.rename(moved)
    monkeypatch.chdir(tmp_path)
    train(config(tiny, Path("moved"), steps=3), reward_fn=constant_reward, resume=True)
    assert checkpoint.load(moved / "checkpoint.pt")["step"] == 3


@pytest.mark.parametrize("name", ["metrics.jsonl", "config.json"])
def test_corrupt_run_files_are_named(tiny, tmp_path, name):
    run_dir = tmp_path / "run"
    train(config(tiny, run_dir), reward_fn=constant_reward, progress=False)
    with open(run_dir / name, "a") as handle:
        handle.write("{not json\n")
    with pytest.raises(ValueError, match=f"{name}.* corrupt"):
        summary(run_dir)


@pytest.mark.parametrize(
    "content, message", [("{not json", "is corrupt"), ("[1, 2]", "must hold a JSON object")]
)
def test_a_bad_config_file_is_named_with_exit_code_2(tiny, tmp_path, capsys, content, message):
    path = tmp_path / "settings.json"
    path.write_text(content)
    assert main(cli(tiny, tmp_path / "run", "--config", str(path))) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_a_run_dir_that_is_a_file_is_an_error_not_a_traceback(tiny, tmp_path, capsys):
    path = tmp_path / "afile"
    path.write_text("x")
    assert main(cli(tiny, path)) == 2
    assert "not a directory" in capsys.readouterr().err


def test_batch_size_above_the_prompt_count_is_named_before_anything_is_written(
    tiny, tmp_path, capsys
):
    n_prompts = len(json.loads((tiny / "prompts.json").read_text()))
    run_dir = tmp_path / "run"
    assert main(cli(tiny, run_dir, "--set", f"batch_size={n_prompts + 1}")) == 2
    assert f"batch_size={n_prompts + 1}" in capsys.readouterr().err
    assert not run_dir.exists()


def test_a_malformed_world_size_is_named(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "abc")
    assert main(cli(tiny, tmp_path / "run")) == 2
    assert "WORLD_SIZE" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_an_unreachable_hub_model_fails_at_once_and_writes_nothing(tiny, tmp_path, capsys):
    run_dir = tmp_path / "run"
    start = time.monotonic()
    assert main(cli(tiny, run_dir, "--reward-model", "afinn")) == 2
    assert time.monotonic() - start < 20
    err = capsys.readouterr().err
    assert "afinn" in err and "offline" in err
    assert not run_dir.exists()


def test_prepare_without_progress_bars_still_reports_its_stages(tmp_path):
    settings = {
        "corpus": "python",
        "vocab_size": "400",
        "n_layer": "1",
        "n_embd": "16",
        "n_head": "2",
        "n_positions": "32",
        "sft_steps": "2",
        "sft_batch_size": "4",
        "sft_seq_len": "16",
        "n_prompts": "16",
        "prompt_words": "3",
        "data_dir": str(tmp_path),
    }
    args = [sys.executable, "-m", "reference_trainer", "prepare", "--no-progress"]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True)
    assert "prepare: corpus" in done.stderr and "sft step 1/2" in done.stderr


def test_train_help_lists_every_config_field_with_its_doc_and_default():
    from dataclasses import fields

    from safecontrol.field_docs import field_docs

    done = subprocess.run(
        [sys.executable, "-m", "reference_trainer", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    docs = field_docs(TrainConfig)
    for f in fields(TrainConfig):
        assert f.name in docs, f"TrainConfig.{f.name} has no docstring"
        assert f"  {f.name} = " in done.stdout
        assert docs[f.name][:40] in done.stdout


def test_a_permission_error_is_an_error_line_not_a_traceback(tiny, tmp_path, capsys, monkeypatch):
    from reference_trainer.run_dir.lock import RunLock

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self.path))

    monkeypatch.setattr(RunLock, "acquire", denied)  # as root, chmod cannot deny us anything
    assert main(cli(tiny, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Permission denied" in err and ".lock" in err
    assert not (tmp_path / "run").exists()  # the directory it had created is removed again


# ------------------------------------------------------------------ what resume accepts
PAYLOAD = """from pathlib import Path
Path("imported").write_text("the payload ran")


def score(prompts, completions):
    return [0.5] * len(completions)
"""


@pytest.mark.parametrize(
    "named_again",
    [[], ["--set", "reward=payload_25:score"], ["--trust-run-code"]],
    ids=["not named", "named again", "trusted"],
)
def test_resume_imports_code_named_only_by_the_run_directory_when_the_user_names_it(
    tiny, tmp_path, monkeypatch, capsys, named_again
):
    """A received ``run/`` with a ``payload.py`` beside it ran the payload on
    ``--resume``, from the reward ``config.json`` names."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as ``python -m`` puts the current directory first
    (tmp_path / "payload_25.py").write_text(PAYLOAD)
    run_dir = tmp_path / "run"
    try:
        assert main(cli(tiny, run_dir, "--set", "reward=payload_25:score")) == 0
        (tmp_path / "imported").unlink()
        sys.modules.pop("payload_25")  # a fresh process: importing runs the module again
        code = main(cli(tiny, run_dir, "--resume", "--set", "steps=3", *named_again))
    finally:
        sys.modules.pop("payload_25", None)
    if named_again:
        assert code == 0 and (tmp_path / "imported").exists()
        return
    assert code == 2 and not (tmp_path / "imported").exists()
    err = capsys.readouterr().err
    assert "--set reward=payload_25:score" in err and "--trust-run-code" in err
    assert str(run_dir / "config.json") in err
    assert checkpoint.load(run_dir / "checkpoint.pt")["step"] == 2


def test_resume_may_change_the_keys_that_cannot_change_the_result(tiny, tmp_path, capsys):
    """A hung run could not be resumed with a reward timeout, nor TensorBoard
    added; what the resumed run trains is the same whatever these keys say."""
    run_dir, straight = tmp_path / "run", tmp_path / "straight"
    assert main(cli(tiny, run_dir)) == 0
    assert main(cli(tiny, run_dir, "--resume", "--set", "steps=3", "--set", "lr=0.01")) == 2
    assert "['lr']" in capsys.readouterr().err  # keys that change the result still refuse
    changes = {
        "steps": "3",
        "reward_timeout": "30",
        "checkpoint_every": "3",
        "sample_every": "3",
        "report_to": "tensorboard",
    }
    sets = [arg for key, value in changes.items() for arg in ("--set", f"{key}={value}")]
    assert main(cli(tiny, run_dir, "--resume", *sets)) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert {key: str(saved[key]) for key in changes} == {**changes, "reward_timeout": "30.0"}
    assert (run_dir / "tensorboard").is_dir()
    assert main(cli(tiny, straight, "--set", "steps=3")) == 0

    def trained(directory: Path) -> list[dict]:
        rows = [json.loads(line) for line in (directory / "metrics.jsonl").open()]
        return [{k: v for k, v in r.items() if "second" not in k} for r in rows]

    assert trained(run_dir) == trained(straight)
