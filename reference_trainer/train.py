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
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

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

from .batch_metrics import decision_fields, distinct_1, explained_variance
from .config import TrainConfig, as_dict
from .kl_control import kl_loss, update_controller
from .models import frozen_reference, load_policy, make_critics
from .ppo import clipped_policy_loss, gae, whiten
from .rewards import RewardFn, checked_rewards
from .rollout import ForwardResult, Rollout, sample, sequence_forward
from .tasks import scorers
from .token_means import global_token_mean, token_share


class NonFiniteTraining(RuntimeError):
    """A loss, gradient or weight became NaN or infinite; the run stops before saving it."""


def _module(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


class Trainer:
    """Holds the models, optimisers, controller and RNG streams of one run."""

    def __init__(self, config: TrainConfig, reward_fn: RewardFn | None = None) -> None:
        self.config = config
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)  # identical initial critics on every rank
        policy, self.tokenizer, self.prompts = load_policy(config)
        policy.eval()
        _check_context_length(policy, self.tokenizer, self.prompts, config.max_new_tokens)
        if config.batch_size < self.world:
            raise ValueError(f"batch_size={config.batch_size} < number of processes {self.world}")
        if config.batch_size > len(self.prompts):
            raise ValueError(
                f"batch_size={config.batch_size} exceeds the {len(self.prompts)} prompts of the "
                f"model's prompt set (a batch draws distinct prompts)"
            )
        self.reference = frozen_reference(policy, config)
        critic, self.target_critic = make_critics(policy, config)
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
        proxy, self.gold_fn = scorers(config, self.prompts)
        self.reward_fn = reward_fn or proxy
        self.entropy_controller = config.make_entropy_controller()
        self.ent_coef = config.ent_coef
        self.prompt_sampler = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed * 1009 + self.rank)  # distinct samples per rank
        random.seed(config.seed)
        self.step = 0

    # ------------------------------------------------------------------ one iteration
    def iteration(self) -> dict[str, Any]:
        c, timings = self.config, {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[f"seconds_{name}"] = now - clock
            clock = now

        # 1. rollout: every rank draws the same batch of prompts and samples its shard of them
        indices = self.prompt_sampler.choice(len(self.prompts), size=c.batch_size, replace=False)
        shard = [self.prompts[i] for i in indices[self.rank :: self.world]]
        policy = _module(self.policy)
        rollout = sample(
            policy, self.tokenizer, shard, c.max_new_tokens, c.min_new_tokens, c.temperature
        )
        lap("generate")

        # 2. score
        scores = torch.tensor(
            checked_rewards(self.reward_fn, rollout.prompts, rollout.completions, c.reward_timeout)
        )
        gold = self._gold(rollout)
        lap("score")

        # 3. the rollout policy's, the reference's and the critics' view of the samples
        mask = rollout.response_mask
        with torch.no_grad():
            old = self._forward(policy, rollout)
            reference_logp = self._reference_forward(rollout).logp
            old_heads, _ = _module(self.critic)(old.hidden)
            _, target_values = self.target_critic(old.hidden)
            entropy = entropy_from_logits(old.logits)

        # 4. one controller update per rollout batch, from global detached statistics (timed
        # apart from the statistics: "controller" is the update alone)
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
        lap("forward")  # the statistics above are measurement, not control
        self.decision = update_controller(
            self.controller, stats, c.batch_size, extra["response_length"]
        )
        self._check_ranks_agree(self.decision)
        if self.entropy_controller is not None:  # the bonus of this batch's epochs
            self.ent_coef = self.entropy_controller.update(entropy=stats["entropy"]).coef
        lap("controller")

        # 5. advantages: GAE on the target critic's values, reward at the last token
        last = (mask.long().cumsum(-1) * mask).argmax(-1)
        rewards = torch.zeros_like(old.logp)
        rewards[torch.arange(len(scores)), last] = scores
        advantages, returns = gae(rewards, target_values, mask, c.gamma, c.lam)
        advantages = whiten(advantages, mask)
        value_fit = explained_variance(returns, target_values, mask)

        # 6. PPO epochs: clipped policy loss + live KL term − entropy bonus; critic on returns.
        # The policy stays in eval mode: dropout would make the ratio to the rollout's log-probs
        # noise instead of the update's effect.
        logs: dict[str, list[float]] = {}
        share = token_share(mask)  # the mask is the same in every epoch
        after: ForwardResult | None = None
        unchecked: UncheckedStep | None = None
        for epoch in range(c.ppo_epochs):
            # A whole (unscaled) previewed step already ran the forward of the weights this epoch
            # starts from: reuse it, so the preview costs one forward per iteration, not per epoch.
            new = after if after is not None else self._forward(self.policy, rollout)
            if unchecked is not None:  # the last epoch's predicted step, measured now
                new, shrunk = self.step_limiter.checked(
                    self.decision, rollout, new, unchecked, self.step
                )
                logs["step_scale"][-1] *= shrunk
            pg, clip_fraction, approx_kl = clipped_policy_loss(
                new.logp, old.logp, advantages, mask, c.clip_range
            )
            live_kl = global_token_mean(
                kl_per_token(new.logp, reference_logp, c.kl_estimator), mask, share
            )
            new_entropy = global_token_mean(entropy_from_logits(new.logits), mask, share)
            policy_loss = global_token_mean(pg, mask, share)
            kl_term = kl_loss(live_kl, self.decision, c)
            loss = policy_loss + kl_term - self.ent_coef * new_entropy
            self.policy_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy_params, c.max_grad_norm)
            self._check_finite("policy loss", loss, "policy gradient norm", grad_norm)
            last = epoch == c.ppo_epochs - 1
            scale, preview_kl, after, unchecked = self._policy_step(
                rollout, new, keep_forward=not last
            )

            heads, _ = self.critic(new.hidden.detach())
            value_loss = critic_loss(heads, old_heads, returns, clip=c.value_clip, mask=mask)
            value_loss = value_loss * share
            self.critic_optimizer.zero_grad(set_to_none=True)
            value_loss.backward()
            critic_grad_norm = torch.nn.utils.clip_grad_norm_(
                self.critic.parameters(), c.critic_max_grad_norm
            )
            self._check_finite("value loss", value_loss, "critic gradient norm", critic_grad_norm)
            self.critic_optimizer.step()
            self._check_finite_parameters("critic", list(self.critic.parameters()))
            polyak_update(self.target_critic, _module(self.critic), c.polyak_tau)

            epoch = global_means(clip_fraction=(clip_fraction, mask), approx_kl=(approx_kl, mask))
            for key, value in {
                "policy_loss": float(policy_loss.detach()),
                "value_loss": float(value_loss.detach()) / share,
                "kl_term": float(kl_term.detach()),
                "live_kl": float(live_kl.detach()),
                "grad_norm": float(grad_norm),
                "step_scale": scale,
                **({} if preview_kl is None else {"preview_kl": preview_kl}),
                **epoch,
            }.items():
                logs.setdefault(key, []).append(value)
        lap("update")

        reward_std = max(extra["reward_sq"] - stats["reward"] ** 2, 0.0) ** 0.5
        completions = self._gather(rollout.completions)
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
            "explained_variance": value_fit,
            **decision_fields(self.decision),
            **{key: float(np.mean(values)) for key, values in logs.items()},
            "step_scale_min": min(logs["step_scale"]),
            **timings,
        }
        metrics["seconds_total"] = sum(v for k, v in timings.items() if k.startswith("seconds_"))
        metrics["tokens_per_second"] = tokens / metrics["seconds_total"]
        self._check_finite(*(x for k, v in metrics.items() if isinstance(v, float) for x in (k, v)))
        self.step += 1
        self.last_samples = list(zip(self._gather(rollout.prompts), completions, strict=True))
        return metrics

    def _gold(self, rollout: Rollout) -> dict[str, float]:
        """The gold reward's mean over the whole batch (all processes), when the run has one."""
        if self.gold_fn is None:
            return {}
        values = checked_rewards(
            self.gold_fn, rollout.prompts, rollout.completions, self.config.reward_timeout
        )
        return {"gold_mean": global_means(gold=torch.tensor(values))["gold"]}

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
    def _forward(self, model: torch.nn.Module, rollout: Rollout) -> ForwardResult:
        c = self.config
        return sequence_forward(
            model, rollout, c.temperature, c.min_new_tokens, self.tokenizer.eos_token_id
        )

    def _reference_forward(self, rollout: Rollout) -> ForwardResult:
        if self.reference is not None:
            return self._forward(self.reference, rollout)
        with _module(self.policy).disable_adapter():  # LoRA: the base model is the reference
            return self._forward(_module(self.policy), rollout)

    def _policy_step(
        self, rollout: Rollout, before: ForwardResult, keep_forward: bool = False
    ) -> LimitedStep:
        """Optimizer step, its new weights checked finite; when the decision limits steps (a
        finite ``max_preview_kl``: SAFE's preview, kl-budget's step limit), ``step_limiter``
        shrinks it so that KL(before ‖ after) ≤ ``decision.max_preview_kl``."""
        if not (self.config.preview_steps and math.isfinite(self.decision.max_preview_kl)):
            self.policy_optimizer.step()
            self._check_finite_parameters("policy", self.policy_params)
            return LimitedStep(1.0, None, None, None)
        saved = [p.detach().clone() for p in self.policy_params]
        self.policy_optimizer.step()
        self._check_finite_parameters("policy", self.policy_params)
        return self.step_limiter.limit(
            self.decision, rollout, before, saved, self.step, keep_forward
        )

    def _check_ranks_agree(self, decision: Any) -> None:
        """Every rank must hold the same decision: the controllers saw the same global stats."""
        if self.world == 1:
            return
        decisions: list[Any] = [None] * self.world
        dist.all_gather_object(decisions, decision.as_dict())
        if any(d != decisions[0] for d in decisions):
            raise RuntimeError(f"controller decisions differ across ranks: {decisions}")

    def _gather(self, items: list[str]) -> list[str]:
        if self.world == 1:
            return list(items)
        gathered: list[list[str]] = [[] for _ in range(self.world)]
        dist.all_gather_object(gathered, items)
        return [x for part in gathered for x in part]

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """Everything a resume needs; refuses (``NonFiniteTraining``) to hold non-finite weights."""
        for name, model in (("policy", self.policy), ("critic", self.critic)):
            self._check_finite_parameters(name, list(model.parameters()))
        return {
            "step": self.step,
            "config": as_dict(self.config),
            "policy": _module(self.policy).state_dict(),
            "critic": _module(self.critic).state_dict(),
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
            "python_rng": json.dumps(random.getstate()),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        _module(self.policy).load_state_dict(state["policy"])
        _module(self.critic).load_state_dict(state["critic"])
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


def _check_context_length(policy: Any, tokenizer: Any, prompts: list[str], new: int) -> None:
    """Prompt plus continuation must fit the model's positions (else generate misbehaves)."""
    limit = getattr(policy.config, "n_positions", None) or getattr(
        policy.config, "max_position_embeddings", None
    )
    if limit is None:
        return
    longest = max(len(ids) for ids in tokenizer(prompts)["input_ids"])
    if longest + new > limit:
        raise ValueError(
            f"max_new_tokens={new} plus the longest prompt ({longest} tokens) exceeds the "
            f"model's {limit} positions"
        )
