"""Running the trainer in a run directory: environment and source checks before anything is
written, the directory's lock, resume from the checkpoint, and the loop that logs, samples,
checkpoints and feeds the trackers (``train.Trainer.iteration`` is one step of the algorithm).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .config import TrainConfig, as_dict
from .prepare import is_prepared
from .rewards import RewardFn, is_python_reward
from .run_log import RunLog
from .sources import check_pretrained
from .trackers import Trackers
from .train import Trainer


def world_size_from_environment() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when unset); anything else is an error naming it."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        world = int(text)
    except ValueError:
        world = 0
    if world < 1:
        raise ValueError(
            f"environment variable WORLD_SIZE must be a positive integer, got {text!r}"
        )
    return world


def preflight(config: TrainConfig, reward_fn: RewardFn | None) -> None:
    """Checks that need no model loaded, done before the run directory is touched."""
    if config.model and not is_prepared(Path(config.model)):
        check_pretrained(config.model, "model")
    scorers = [("reward model", config.reward)] if reward_fn is None else []
    for what, spec in [*scorers, ("gold reward model", config.gold_reward)]:
        if spec and spec != "vader" and not is_python_reward(spec):
            check_pretrained(spec, what)


def train(
    config: TrainConfig,
    reward_fn: RewardFn | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Run (or continue) a training run; returns its directory."""
    distributed = world_size_from_environment() > 1
    preflight(config, reward_fn)
    if distributed and not dist.is_initialized():
        dist.init_process_group("gloo")
    try:
        return _train(config, reward_fn, resume, progress)
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, reward_fn: RewardFn | None, resume: bool, progress: bool) -> Path:
    run = RunLog(Path(config.run_dir), writer=not dist.is_initialized() or dist.get_rank() == 0)
    with run.session(config, resume):
        # The checkpoint is checked before the model and the rewards load (a foreign or corrupt
        # one stops the run at once), and everything is loaded before config.json is written.
        state = run.latest_checkpoint(config) if resume else None
        trainer = Trainer(config, reward_fn)
        if state is not None:
            trainer.load_state(state)
        if resume:
            run.truncate_metrics(trainer.step)
        run.write_config(config)
        trackers = Trackers(config.report_to, run.directory, as_dict(config), resume, run.writer)
        bar = run.progress(config.steps, trainer.step, enabled=progress)
        with contextlib.closing(bar), contextlib.closing(trackers):
            while trainer.step < config.steps:
                metrics = trainer.iteration()
                run.log_metrics(metrics)
                trackers.log(metrics)
                if trainer.step % config.sample_every == 0 or trainer.step == config.steps:
                    run.log_samples(trainer.step, trainer.last_samples[:4], metrics)
                if trainer.step % config.checkpoint_every == 0 or trainer.step == config.steps:
                    run.save_checkpoint(trainer.state(), _rank_rng_states())
                bar.update(1)
                bar.set_postfix(
                    reward=f"{metrics['reward_mean']:.3f}",
                    kl=f"{metrics['kl_k3']:.3f}",
                    entropy=f"{metrics['entropy']:.2f}",
                )
    return Path(config.run_dir)


def _rank_rng_states() -> list[torch.Tensor]:
    """Every rank's torch RNG state (rank 0 writes them all into the checkpoint)."""
    state = torch.get_rng_state()
    if not dist.is_initialized():
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states
