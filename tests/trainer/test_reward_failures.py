"""A reward function that hangs, returns a 0-d tensor or a value float32 cannot hold,
or raises ``SystemExit`` stops the run with exit 2 and an error naming the function; Ctrl-C
during a reward call still stops the run as Ctrl-C, keeping the last checkpoint."""

from __future__ import annotations

import inspect
import os
import re
import signal
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
from reference_trainer.run_dir import checkpoint  # noqa: E402
from reference_trainer.tasks.rewards import checked_rewards  # noqa: E402

MODULE = "issue25_rewards"
REWARDS = """
import os, sys, time
from pathlib import Path

import numpy as np
import torch


def zero_d_tensor(prompts, completions):
    return torch.tensor(0.5)


def zero_d_array(prompts, completions):
    return np.array(0.5)


def column(prompts, completions):
    return torch.zeros(len(completions), 1)


def huge(prompts, completions):
    return [1e200] * len(completions)


def exits(prompts, completions):
    sys.exit(0)


def interrupts(prompts, completions):
    raise KeyboardInterrupt


def hangs(prompts, completions):
    time.sleep(120)


def hangs_at_step_2(prompts, completions):
    marker = Path(os.environ["REWARD_MARKER"])
    if marker.exists():
        marker.with_suffix(".hanging").touch()
        time.sleep(120)
    marker.touch()
    return [0.5] * len(completions)
"""
SMALL = ("steps=2", "batch_size=4", "max_new_tokens=6", "min_new_tokens=1", "threads=1")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def rewards(tmp_path_factory, monkeypatch) -> Path:
    """A directory on ``sys.path`` holding the module ``issue25_rewards``."""
    directory = tmp_path_factory.getbasetemp() / "rewards"
    directory.mkdir(exist_ok=True)
    (directory / f"{MODULE}.py").write_text(REWARDS)
    monkeypatch.syspath_prepend(str(directory))
    return directory


def cli(tiny: Path, run_dir: Path, reward: str, *extra: str) -> list[str]:
    args = ["train", "--model", str(tiny), "--run-dir", str(run_dir), "--no-progress"]
    for setting in (*SMALL, f"reward={MODULE}:{reward}", *extra):
        args += ["--set", setting]
    return args


def default_to(monkeypatch, name: str, value: object) -> None:
    """Make ``value`` the default of TrainConfig's field ``name``, as if the field said so."""
    init = TrainConfig.__init__
    defaulted = [
        p.name
        for p in inspect.signature(init).parameters.values()
        if p.default is not inspect.Parameter.empty
    ]
    defaults = list(init.__defaults__)
    defaults[defaulted.index(name)] = value
    monkeypatch.setattr(init, "__defaults__", tuple(defaults))


def test_a_hung_reward_is_stopped_by_the_default_timeout(
    tiny, tmp_path, rewards, monkeypatch, capsys
):
    assert 60 <= TrainConfig().reward_timeout <= 3600  # a hang is caught, a slow model is not
    default_to(monkeypatch, "reward_timeout", 0.5)  # the default's path, in half a second
    start = time.monotonic()
    assert main(cli(tiny, tmp_path / "run", "hangs")) == 2
    assert time.monotonic() - start < 60
    err = capsys.readouterr().err
    assert f"reward function {MODULE}:hangs did not return within reward_timeout=0.5 s" in err


@pytest.mark.parametrize(
    "reward, message",
    [
        ("zero_d_tensor", r"zero_d_tensor returned a Tensor of shape \(\); expected .* \(4,\)"),
        ("zero_d_array", r"zero_d_array returned a ndarray of shape \(\)"),
        ("column", r"column returned a Tensor of shape \(4, 1\)"),
        ("huge", r"huge returned 1e\+200 for completion 0, beyond float32's range"),
        ("exits", r"exits raised SystemExit\(0\)"),
        ("interrupts", r"interrupts raised KeyboardInterrupt\(\)"),  # in the scorer's thread
    ],
)
def test_a_failing_reward_is_exit_2_naming_the_function(
    tiny, tmp_path, rewards, capsys, reward, message
):
    assert main(cli(tiny, tmp_path / "run", reward)) == 2
    err = capsys.readouterr().err
    assert re.search(rf"error: reward function {MODULE}:{message}", err), err


def test_without_a_timeout_a_reward_exit_is_named_and_a_keyboard_interrupt_is_ctrl_c():
    def exits(prompts, completions):
        sys.exit(0)

    def interrupted(prompts, completions):
        raise KeyboardInterrupt

    with pytest.raises(RuntimeError, match=r"exits raised SystemExit\(0\)"):
        checked_rewards(exits, ["p"], ["c"], timeout=0)
    with pytest.raises(KeyboardInterrupt):  # the main thread: Ctrl-C lands in the scorer
        checked_rewards(interrupted, ["p"], ["c"], timeout=0)


def test_ctrl_c_during_a_reward_call_stops_the_run_keeping_its_checkpoint(tiny, tmp_path, rewards):
    run_dir, marker = tmp_path / "run", tmp_path / "scored-once"
    args = cli(tiny, run_dir, "hangs_at_step_2", "steps=3", "checkpoint_every=1")
    process = subprocess.Popen(
        [sys.executable, "-m", "reference_trainer", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "REWARD_MARKER": str(marker),
            "PYTHONPATH": os.pathsep.join([str(rewards), os.environ.get("PYTHONPATH", "")]),
        },
        # A shell's background job ignores SIGINT, and a child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not marker.with_suffix(".hanging").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)  # while step 2's reward call runs
    _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT, err[-2000:]
    assert "KeyboardInterrupt" in err and "error: reward function" not in err
    assert checkpoint.load(run_dir / "checkpoint.pt")["step"] == 1
