"""The PPO / SAFE loop: rollout → score → advantages → controller → losses, one named step each.

Read top to bottom, ``Trainer.iteration`` is the algorithm; ``run.train`` drives it in a run
directory. Every quantity a practitioner looks at goes to ``metrics.jsonl``; ``Trainer.state``
holds everything needed to continue bit-identically.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from safecontrol.contract import Decision
from safecontrol.torch import (
    LimitedStep,
    StepLimiter,
    UncheckedStep,
    critic_loss,
    entropy_from_logits,
    global_means,
    global_measurements,
    kl_per_token,
    polyak_update,
)

from . import ranks
from .batch_metrics import decision_fields, distinct_1, explained_variance
from .config import TrainConfig, as_dict
from .device import autocast, resolve_device
from .evaluation import Evaluation, split_prompts
from .losses import gae, token_share, whiten
from .models import check_context_length, frozen_reference, load_policy, make_critics
from .policy_gradient import EpochLoss, micro_batch_gradient, whole_batch_gradient
from .rollout import ForwardResult, Rollout, concatenate, sample, sequence_forward
from .tasks.rewards import RewardFn, checked_rewards
from .tasks.scorers import scorers
from .trust_region import step_limit


class NonFiniteTraining(RuntimeError):
    """A loss, gradient or weight became NaN or infinite; the run stops before saving it."""


class StageClock:
    """Wall-clock seconds of an iteration's stages, ``seconds_<stage>`` in ``metrics.jsonl``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[f"seconds_{stage}"] = now - self.last
        self.last = now


@dataclass
class RolloutView:
    """The rollout policy's, the reference's and the critics' view of one batch of samples, and
    the batch's global statistics (step 3 of an iteration; nothing here carries gradient)."""

    old: ForwardResult
    reference_logp: torch.Tensor
    old_heads: torch.Tensor
    target_values: torch.Tensor
    stats: dict[str, float]
    """KL, entropy and reward: what the controller reads."""
    extra: dict[str, float]
    """The other estimators of the KL, the reward's second moment, the mean response length."""


class Trainer:
    """Holds the models, optimisers, controller and RNG streams of one run."""

    def __init__(self, config: TrainConfig, reward_fn: RewardFn | None = None) -> None:
        self.config = config
        self.world, self.rank = ranks.world(), ranks.rank()
        self.device = resolve_device(config.device)
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)  # identical initial critics on every rank
        policy, self.tokenizer, prompts = load_policy(config)
        policy.eval()
        check_context_length(policy, self.tokenizer, prompts, config.max_new_tokens)
        self.prompts, held_out = (
            split_prompts(prompts, config.eval_prompts) if config.eval_every else (prompts, [])
        )
        if config.batch_size < self.world:
            raise ValueError(f"batch_size={config.batch_size} < number of processes {self.world}")
        if config.batch_size > len(self.prompts):
            raise ValueError(
                f"batch_size={config.batch_size} exceeds the {len(self.prompts)} prompts of the "
                f"model's prompt set (a batch draws distinct prompts)"
            )
        policy.to(self.device)
        self.reference = frozen_reference(policy, config)
        critic, self.target_critic = (m.to(self.device) for m in make_critics(policy, config))
        self.policy_params = [p for p in policy.parameters() if p.requires_grad]
        self.policy_optimizer = torch.optim.AdamW(self.policy_params, lr=config.lr)
        self.critic_optimizer = torch.optim.AdamW(critic.parameters(), lr=config.critic_lr)
        if self.world > 1:
            policy = torch.nn.parallel.DistributedDataParallel(policy)
            critic = torch.nn.parallel.DistributedDataParallel(critic)
        self.policy, self.critic = policy, critic
        self.controller = config.make_controller()
        self.decision = self.controller.decision
        self.step_limiter: StepLimiter[Rollout, ForwardResult] = StepLimiter(
            self.policy_params,
            forward=lambda rollout: self._forward(self.policy, rollout),
            logits=lambda result: result.logits,
            mask=lambda rollout: rollout.response_mask,
            mode=config.resolved_step_limit,
            check_finite=self._check_finite,
        )
        proxy, self.gold_fn = scorers(config, prompts)  # a task's cached artefacts: every prompt
        self.reward_fn = reward_fn or proxy
        self.evaluation = None
        if config.eval_every:
            self.evaluation = Evaluation(
                held_out,
                config.seed,
                config.batch_size,
                self._sample,
                self._policy_and_reference,
                self.reward_fn,
                self.gold_fn,
                config.reward_timeout,
            )
        self.entropy_controller = config.make_entropy_controller()
        self.ent_coef = config.ent_coef
        self.prompt_sampler = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed * 1009 + self.rank)  # distinct samples per rank
        random.seed(config.seed)
        self.step = 0

    # ------------------------------------------------------------------ one iteration
    def iteration(self) -> dict[str, Any]:
        """One PPO iteration, its steps in order; returns the row of ``metrics.jsonl``."""
        clock = StageClock()
        rollout = self._rollout()  # 1. sample a batch of continuations
        clock.lap("generate")
        scores, gold = self._score(rollout)  # 2. score them: proxy (trained on) and gold (logged)
        clock.lap("score")
        view = self._view(rollout, scores)  # 3. the old policy's, reference's and critics' view
        clock.lap("forward")  # the statistics above are measurement, not control
        self._control(view)  # 4. one controller update per batch, from global statistics
        clock.lap("controller")
        advantages, returns = self._advantages(rollout, scores, view)  # 5. GAE, whitened
        logs = self._update(rollout, view, advantages, returns)  # 6. the PPO epochs
        clock.lap("update")
        metrics = self._metrics(rollout, view, gold, returns, logs, clock.seconds)
        self.step += 1
        return metrics

    def evaluate(self) -> dict[str, float]:
        """The ``eval_*`` metrics of the policy now (``evaluation.py``; ``eval_every`` > 0)."""
        if self.evaluation is None:
            raise RuntimeError("this run holds no prompts out for evaluation (eval_every=0)")
        return self.evaluation.run(self.device)

    def _rollout(self) -> Rollout:
        """Every rank draws the same batch of prompts and samples its shard of them."""
        c = self.config
        indices = self.prompt_sampler.choice(len(self.prompts), size=c.batch_size, replace=False)
        return self._sample([self.prompts[i] for i in indices[self.rank :: self.world]])

    def _sample(self, shard: list[str]) -> Rollout:
        c = self.config
        with autocast(self.device, c.dtype):
            return sample(
                ranks.unwrapped(self.policy),
                self.tokenizer,
                shard,
                c.max_new_tokens,
                c.min_new_tokens,
                c.temperature,
            )

    def _score(self, rollout: Rollout) -> tuple[torch.Tensor, dict[str, float]]:
        scores = torch.tensor(
            checked_rewards(
                self.reward_fn, rollout.prompts, rollout.completions, self.config.reward_timeout
            ),
            device=self.device,
        )
        return scores, self._gold(rollout)

    def _view(self, rollout: Rollout, scores: torch.Tensor) -> RolloutView:
        c, mask = self.config, rollout.response_mask
        old, reference_logp = self._policy_and_reference(rollout)
        with torch.no_grad():
            old_heads, _ = self._critic(ranks.unwrapped(self.critic), old.hidden)
            _, target_values = self._critic(self.target_critic, old.hidden)
            entropy = entropy_from_logits(old.logits)
        kl_tokens = kl_per_token(old.logp, reference_logp, kind=c.kl_estimator)
        k1_tokens = kl_per_token(old.logp, reference_logp, kind="k1")
        k3_tokens = (
            kl_tokens if c.kl_estimator == "k3" else kl_per_token(old.logp, reference_logp, "k3")
        )
        stats = global_measurements(kl=kl_tokens, entropy=entropy, reward=scores, mask=mask)
        extra = global_means(
            kl_k1=(k1_tokens, mask),
            kl_k3=(k3_tokens, mask),
            reward_sq=scores**2,
            response_length=mask.sum(-1).float(),
        )
        return RolloutView(old, reference_logp, old_heads, target_values, stats, extra)

    def _control(self, view: RolloutView) -> None:
        c = self.config
        self.decision = self.controller.update(
            kl=view.stats["kl"],
            entropy=view.stats["entropy"],
            reward=view.stats["reward"],
            n_steps=c.batch_size,
            tokens_per_sequence=view.extra["response_length"],
        )
        ranks.check_ranks_agree(self.decision)
        if self.entropy_controller is not None:  # the bonus of this batch's epochs
            self.ent_coef = self.entropy_controller.update(entropy=view.stats["entropy"]).coef

    def _advantages(
        self, rollout: Rollout, scores: torch.Tensor, view: RolloutView
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE on the target critic's values, the reward at the last token; advantages whitened."""
        c, mask = self.config, rollout.response_mask
        last = (mask.long().cumsum(-1) * mask).argmax(-1)
        rewards = torch.zeros_like(view.old.logp)
        rewards[torch.arange(len(scores), device=scores.device), last] = scores
        advantages, returns = gae(rewards, view.target_values, mask, c.gamma, c.lam)
        return whiten(advantages, mask), returns

    def _update(
        self,
        rollout: Rollout,
        view: RolloutView,
        advantages: torch.Tensor,
        returns: torch.Tensor,
    ) -> dict[str, list[float]]:
        """PPO epochs: clipped policy loss + live KL term − entropy bonus, the step limited to the
        decision's KL; the critic on the returns. The policy stays in eval mode: dropout would
        make the ratio to the rollout's log-probs noise instead of the update's effect."""
        c, mask = self.config, rollout.response_mask
        logs: dict[str, list[float]] = {}
        share = token_share(mask)  # the mask is the same in every epoch
        micro_batches = self._micro_batches(rollout)
        after: ForwardResult | None = None
        unchecked: UncheckedStep | None = None
        for epoch in range(c.ppo_epochs):
            loss = EpochLoss(
                view.old.logp,
                view.reference_logp,
                advantages,
                share,
                self.decision,
                c,
                self.ent_coef,
            )
            self.policy_optimizer.zero_grad(set_to_none=True)
            if micro_batches is None:
                # A whole (unscaled) previewed step already ran the forward of the weights this
                # epoch starts from: reuse it, so the preview costs one forward per iteration.
                new = after if after is not None else self._forward(self.policy, rollout)
                if unchecked is not None:  # the last epoch's predicted step, measured now
                    new, shrunk = self.step_limiter.checked(
                        self.step_limit, rollout, new, unchecked, self.step
                    )
                    logs["step_scale"][-1] *= shrunk
                terms = whole_batch_gradient(loss, rollout, new)
            else:
                if unchecked is not None:  # measured on a forward of its own, without gradients
                    with torch.no_grad():
                        probe = self._forward(self.policy, rollout)
                        _, shrunk = self.step_limiter.checked(
                            self.step_limit, rollout, probe, unchecked, self.step
                        )
                    logs["step_scale"][-1] *= shrunk
                new, terms = micro_batch_gradient(
                    loss,
                    rollout,
                    micro_batches,
                    lambda chunk: self._forward_rows(self.policy, chunk),
                    self.policy,
                    self.policy_params,
                )
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy_params, c.max_grad_norm)
            self._check_finite("policy loss", terms["loss"], "policy gradient norm", grad_norm)
            # A next epoch measures a predicted step; micro-batches never keep a whole batch's
            # graph for it (they measure it on a forward without gradients).
            later = epoch < c.ppo_epochs - 1
            keep = micro_batches is None and later
            scale, preview_kl, after, unchecked = self._policy_step(rollout, new, keep, later)
            value_loss = self._critic_step(rollout, view, new, returns, share)
            for key, value in {
                "policy_loss": terms["policy_loss"],
                "value_loss": value_loss,
                "kl_term": terms["kl_term"],
                "live_kl": terms["live_kl"],
                "grad_norm": float(grad_norm),
                "step_scale": scale,
                **({} if preview_kl is None else {"preview_kl": preview_kl}),
                "clip_fraction": terms["clip_fraction"],
                "approx_kl": terms["approx_kl"],
            }.items():
                logs.setdefault(key, []).append(value)
        return logs

    def _critic_step(
        self,
        rollout: Rollout,
        view: RolloutView,
        new: ForwardResult,
        returns: torch.Tensor,
        share: float,
    ) -> float:
        """One critic step on the returns, from the epoch's hidden states; its loss."""
        c, mask = self.config, rollout.response_mask
        heads, _ = self._critic(self.critic, new.hidden.detach())
        value_loss = critic_loss(heads, view.old_heads, returns, clip=c.value_clip, mask=mask)
        value_loss = value_loss * share
        self.critic_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        critic_grad_norm = torch.nn.utils.clip_grad_norm_(
            self.critic.parameters(), c.critic_max_grad_norm
        )
        self._check_finite("value loss", value_loss, "critic gradient norm", critic_grad_norm)
        self.critic_optimizer.step()
        self._check_finite_parameters("critic", list(self.critic.parameters()))
        polyak_update(self.target_critic, ranks.unwrapped(self.critic), c.polyak_tau)
        return float(value_loss.detach()) / share

    def _metrics(
        self,
        rollout: Rollout,
        view: RolloutView,
        gold: dict[str, float],
        returns: torch.Tensor,
        logs: dict[str, list[float]],
        timings: dict[str, float],
    ) -> dict[str, Any]:
        """The iteration's row of ``metrics.jsonl`` (refused when a value is not finite)."""
        c, stats, extra = self.config, view.stats, view.extra
        reward_std = max(extra["reward_sq"] - stats["reward"] ** 2, 0.0) ** 0.5
        completions = ranks.gather_strings(rollout.completions)
        tokens = extra["response_length"] * c.batch_size
        metrics = {
            "step": self.step + 1,
            "reward_mean": stats["reward"],
            "reward_std": reward_std,
            "kl_k1": extra["kl_k1"],
            "kl_k3": extra["kl_k3"],
            "kl_measured": stats["kl"],
            "entropy": stats["entropy"],
            "response_length": extra["response_length"],
            "distinct_1": distinct_1(completions),
            **gold,
            **({} if self.entropy_controller is None else {"entropy_coef": self.ent_coef}),
            "explained_variance": explained_variance(
                returns, view.target_values, rollout.response_mask
            ),
            **decision_fields(self.decision),
            **{key: float(np.mean(values)) for key, values in logs.items()},
            "step_scale_min": min(logs["step_scale"]),
            **timings,
        }
        metrics["seconds_total"] = sum(timings.values())
        metrics["tokens_per_second"] = tokens / metrics["seconds_total"]
        self._check_finite(*(x for k, v in metrics.items() if isinstance(v, float) for x in (k, v)))
        prompts = ranks.gather_strings(rollout.prompts)
        self.last_samples = list(zip(prompts, completions, strict=True))
        return metrics

    def _gold(self, rollout: Rollout) -> dict[str, float]:
        """The gold reward's mean over the whole batch (all processes), when the run has one."""
        if self.gold_fn is None:
            return {}
        values = checked_rewards(
            self.gold_fn, rollout.prompts, rollout.completions, self.config.reward_timeout
        )
        return {"gold_mean": global_means(gold=torch.tensor(values, device=self.device))["gold"]}

    # ------------------------------------------------------------------ finiteness guards
    def _check_finite(self, *named: Any) -> None:
        """Stop when a loss, gradient or metric (``name, value`` pairs) is NaN or infinite: before
        the optimizer step it would poison, or before the metrics row and checkpoint."""
        for name, value in zip(named[::2], named[1::2], strict=True):
            x = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
            if not math.isfinite(x):
                raise NonFiniteTraining(
                    f"step {self.step + 1}: the {name} is {x!r}; stopping before it is used or "
                    f"saved, so the last checkpoint stays good (lr={self.config.lr!r}, "
                    f"critic_lr={self.config.critic_lr!r})"
                )

    def _check_finite_parameters(self, name: str, params: list[torch.Tensor]) -> None:
        """Stop when an optimizer step left a non-finite weight (never checkpointed)."""
        with torch.no_grad():  # one host sync for all tensors, not one per tensor
            finite = bool(torch.stack([torch.isfinite(p).all() for p in params]).all())
        if not finite:
            raise NonFiniteTraining(
                f"step {self.step + 1}: the {name} has non-finite weights after an optimizer "
                f"step (lr={self.config.lr!r}, critic_lr={self.config.critic_lr!r}); stopping "
                f"without saving them, so the last checkpoint stays good"
            )

    # ------------------------------------------------------------------ helpers
    def _micro_batches(self, rollout: Rollout) -> list[slice] | None:
        """The rows of each micro-batch, or None when the shard runs whole."""
        size, rows = self.config.micro_batch_size, len(rollout)
        if size == 0 or size >= rows:
            return None
        return [slice(start, start + size) for start in range(0, rows, size)]

    def _forward(self, model: torch.nn.Module, rollout: Rollout) -> ForwardResult:
        """``model``'s view of the samples (micro-batch by micro-batch, concatenated: only ever
        called so without gradients)."""
        chunks = self._micro_batches(rollout)
        if chunks is None:
            return self._forward_rows(model, rollout)
        return concatenate([self._forward_rows(model, rollout.rows(rows)) for rows in chunks])

    def _forward_rows(self, model: torch.nn.Module, rollout: Rollout) -> ForwardResult:
        c = self.config
        with autocast(self.device, c.dtype):
            return sequence_forward(
                model, rollout, c.temperature, c.min_new_tokens, self.tokenizer.eos_token_id
            )

    def _policy_and_reference(self, rollout: Rollout) -> tuple[ForwardResult, torch.Tensor]:
        """The policy's forward on a rollout and the reference's log-probabilities of it."""
        with torch.no_grad():
            policy = self._forward(ranks.unwrapped(self.policy), rollout)
            return policy, self._reference_forward(rollout).logp

    def _reference_forward(self, rollout: Rollout) -> ForwardResult:
        if self.reference is not None:
            return self._forward(self.reference, rollout)
        policy = ranks.unwrapped(self.policy)
        with policy.disable_adapter():  # LoRA: the base model is the reference
            return self._forward(policy, rollout)

    def _critic(
        self, critic: torch.nn.Module, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(heads, soft-min value) of a critic, in float32 whatever the autocast."""
        with autocast(self.device, self.config.dtype):
            heads, value = critic(hidden)
        return heads.float(), value.float()

    def _policy_step(
        self, rollout: Rollout, before: ForwardResult, keep_forward: bool, check_later: bool
    ) -> LimitedStep:
        """Optimizer step, its new weights checked finite; when the decision limits steps (a
        finite ``max_preview_kl``: SAFE's preview, kl-budget's step limit) or the run has a trust
        region (``max_step_kl``), ``step_limiter`` shrinks it so that KL(before ‖ after) stays
        within the tighter limit (``step_limit``)."""
        if not math.isfinite(self.step_limit.max_preview_kl):
            self.policy_optimizer.step()
            self._check_finite_parameters("policy", self.policy_params)
            return LimitedStep(1.0, None, None, None)
        saved = [p.detach().clone() for p in self.policy_params]
        self.policy_optimizer.step()
        self._check_finite_parameters("policy", self.policy_params)
        return self.step_limiter.limit(
            self.step_limit, rollout, before, saved, self.step, keep_forward, check_later
        )

    @property
    def step_limit(self) -> Decision:
        """The decision as the step limiter reads it: its own limit and the trust region's."""
        c = self.config
        return step_limit(self.decision, c.preview_steps, c.max_step_kl)

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """Everything a resume needs, every rank's sampling streams included (so every rank calls
        it); refuses (``NonFiniteTraining``) to hold non-finite weights."""
        for name, model in (("policy", self.policy), ("critic", self.critic)):
            self._check_finite_parameters(name, list(model.parameters()))
        return {
            "step": self.step,
            "config": as_dict(self.config),
            "policy": ranks.unwrapped(self.policy).state_dict(),
            "critic": ranks.unwrapped(self.critic).state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "policy_optimizer": self.policy_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "controller": json.dumps(self.controller.state_dict()),
            **(
                {}
                if self.entropy_controller is None
                else {"entropy_controller": json.dumps(self.entropy_controller.state_dict())}
            ),
            **self.step_limiter.state_dict(),
            "prompt_sampler": json.dumps(self.prompt_sampler.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            **ranks.rank_rng_states(self.device),
            "python_rng": json.dumps(random.getstate()),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        ranks.unwrapped(self.policy).load_state_dict(state["policy"])
        ranks.unwrapped(self.critic).load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.controller.load_state_dict(json.loads(state["controller"]))
        self.decision = self.controller.decision
        if self.entropy_controller is not None:
            self.entropy_controller.load_state_dict(json.loads(state["entropy_controller"]))
            self.ent_coef = self.entropy_controller.decision.coef
        # A checkpoint from before the predicted step limit holds no curvature: preview first.
        self.step_limiter.load_state_dict({"step_curvature": state.get("step_curvature")})
        self.prompt_sampler.bit_generator.state = json.loads(state["prompt_sampler"])
        python_state = json.loads(state["python_rng"])
        random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
        self.step = int(state["step"])
        # Every rank restores its own sampling stream: rank r's was saved as rank_rng[r].
        torch.set_rng_state(
            state["rank_rng"][self.rank] if "rank_rng" in state else state["torch_rng"]
        )
        if self.device.type == "cuda" and "rank_cuda_rng" in state:
            torch.cuda.set_rng_state(state["rank_cuda_rng"][self.rank], self.device)
