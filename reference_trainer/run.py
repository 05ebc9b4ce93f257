"""Running the trainer in a run directory: environment and source checks before anything is
written, the directory's lock, resume from the checkpoint, and the loop that logs, samples,
checkpoints and feeds the trackers (``train.Trainer.iteration`` is one step of the algorithm).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch.distributed as dist

from . import ranks
from .config import TrainConfig, as_dict
from .device import resolve_device
from .prepare.default_model import is_prepared
from .prepare.sources import check_pretrained
from .run_dir.log import RunLog
from .run_dir.trackers import Trackers
from .tasks.rewards import RewardFn, is_python_reward
from .train import Trainer


def preflight(config: TrainConfig, reward_fn: RewardFn | None) -> None:
    """Checks that need no model loaded, done before the run directory is touched."""
    resolve_device(config.device)  # a device this machine lacks
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
    distributed = ranks.world_size_from_environment() > 1
    preflight(config, reward_fn)
    if distributed:
        ranks.start_process_group(cuda=resolve_device(config.device).type == "cuda")
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
                if config.eval_every and (
                    trainer.step % config.eval_every == 0 or trainer.step == config.steps
                ):
                    metrics.update(trainer.evaluate())
                run.log_metrics(metrics)
                trackers.log(metrics)
                if trainer.step % config.sample_every == 0 or trainer.step == config.steps:
                    run.log_samples(trainer.step, trainer.last_samples[:4], metrics)
                if trainer.step % config.checkpoint_every == 0 or trainer.step == config.steps:
                    run.save_checkpoint(
                        {**trainer.state(), **ranks.rank_rng_states(trainer.device)}
                    )
                bar.update(1)
                bar.set_postfix(
                    reward=f"{metrics['reward_mean']:.3f}",
                    kl=f"{metrics['kl_k3']:.3f}",
                    entropy=f"{metrics['entropy']:.2f}",
                )
    return Path(config.run_dir)
