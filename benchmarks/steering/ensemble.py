"""A reward-model ensemble beside the ``reward-model`` task's proxy, and one policy's held-out
evaluation scored by every member.

The proxy is the reward model of seed ``RM_SEED`` (``reference_trainer/tasks/reward_model.py``).
Each member of ``MEMBER_SEEDS`` is trained by the same recipe on its own draw of labelled SFT
samples, from its own head: what a user who trains a few reward models instead of one has. The
policy trains on the proxy alone; the members only watch.

A policy is evaluated by the trainer's own held-out evaluation (``Trainer.evaluate``: the last
``eval_prompts`` prompts of the set, sampled with the noise the run's own evaluations draw: one
stream per run seed), with the proxy wrapped so that the completions it scores are kept; the
members then score those completions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reference_trainer.config import TrainConfig
from reference_trainer.models import load_policy
from reference_trainer.run_dir import checkpoint
from reference_trainer.run_dir.checkpoint import CHECKPOINT_NAME
from reference_trainer.tasks.reward_model import reward_model_proxy
from reference_trainer.tasks.rewards import RewardFn
from reference_trainer.tasks.scorers import make_task, task_source
from reference_trainer.train import Trainer

MEMBER_SEEDS = (3, 4, 5, 6)
"""The members beside the proxy (seed 2): four, as in Coste et al. (2023)'s smaller ensembles."""
TASK = "reward-model"


@dataclass(frozen=True)
class Ensemble:
    proxy: RewardFn
    """The task's proxy: the reward model the policy trains on."""
    members: tuple[RewardFn, ...]
    """The reward models that only watch."""


def build_ensemble(config: TrainConfig, seeds: Sequence[int] = MEMBER_SEEDS) -> Ensemble:
    """The proxy of ``config``'s reward-model task and its members (each trained on first use,
    about a minute on a CPU, then cached beside the proxy)."""
    if config.task != TASK:
        raise ValueError(f"an ensemble needs the {TASK!r} task, got task={config.task!r}")
    _, _, prompts = load_policy(config)
    source, load = task_source(config, prompts)
    task = make_task(TASK, source, load)
    members = tuple(reward_model_proxy(source, task.gold, load, seed=s) for s in seeds)
    return Ensemble(task.proxy, members)


class Recording:
    """A reward function that keeps every (prompt, completion, score) it is asked for."""

    def __init__(self, reward_fn: RewardFn) -> None:
        self.reward_fn = reward_fn
        self.prompts: list[str] = []
        self.completions: list[str] = []
        self.scores: list[float] = []

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]:
        scores = [float(s) for s in self.reward_fn(prompts, completions)]
        self.prompts += prompts
        self.completions += completions
        self.scores += scores
        return scores


def ensemble_signals(
    proxy: Sequence[float], members: Sequence[Sequence[float]]
) -> dict[str, float]:
    """Per sample, then averaged over the samples: the spread of all reward models' scores
    (``disagreement``, sample standard deviation), the members' mean (``members_mean``) and the
    proxy's excess over it (``proxy_excess``: what the policy gets from the proxy that the
    members do not confirm)."""
    scores = np.asarray([proxy, *members], dtype=np.float64)
    if scores.shape[0] < 2 or scores.shape[1] == 0:
        raise ValueError(f"need a proxy, at least one member and a sample, got {scores.shape}")
    others = scores[1:].mean(axis=0)
    return {
        "disagreement": float(scores.std(axis=0, ddof=1).mean()),
        "members_mean": float(others.mean()),
        "proxy_excess": float((scores[0] - others).mean()),
    }


def evaluate_policy(
    config: TrainConfig, run_dir: Path | None, ensemble: Ensemble, eval_prompts: int = 512
) -> dict[str, float]:
    """The trainer's ``eval_*`` metrics of the policy saved in ``run_dir`` (None: the SFT policy
    the runs start from) and the ensemble's signals on the same completions."""
    recording = Recording(ensemble.proxy)
    eval_config = dataclasses.replace(
        config, eval_every=max(config.eval_every, 1), eval_prompts=eval_prompts
    )
    trainer = Trainer(eval_config, recording)
    if run_dir is not None:
        trainer.load_state(checkpoint.load(run_dir / CHECKPOINT_NAME))
    metrics = trainer.evaluate()
    watched = [m(recording.prompts, recording.completions) for m in ensemble.members]
    return {**metrics, **ensemble_signals(recording.scores, watched)}
