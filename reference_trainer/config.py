"""Configuration of the reference trainer: one dataclass per command, each field documented.

Overrides come from the command line as ``--set key=value`` (or a JSON file); an unknown key or a
bad value is an error naming it, raised before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from safecontrol import registry

from .recipes import names as algo_names
from .recipes import recipe

RENAMED_ALGORITHMS = {
    "ppo": "fixed-kl",
    "ppo-adaptive-kl": "adaptive-kl",
    "ppo-pid-lagrangian": "pid-lagrangian-kl",
}
"""Names the trainer used before its controllers came from ``safecontrol.registry``."""
PENALTY_MODES = ("hinge", "coef", "detached")
STEP_LIMITS = ("preview", "predicted")
TASKS = ("sentiment", "reward-model", "topic")
"""The offline tasks (``tasks/offline.py`` defines each proxy and gold)."""
TRACKERS = ("none", "tensorboard", "wandb")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
"""The values of ``TrainConfig.device`` (``device.resolve_device`` says what each means here)."""
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class PrepareConfig:
    """The offline default (SPEC §6): tokenizer, small causal LM, supervised pre-training."""

    data_dir: str = ".data"
    """Cache root; each config gets its own sub-directory keyed by a hash of this config."""
    corpus: str = "auto"
    """"debian" (fortunes + wordnet-base), "python" (pydoc_data fallback) or "auto"."""
    vocab_size: int = 2048
    """Byte-level BPE vocabulary size."""
    n_layer: int = 4
    """Transformer blocks of the GPT-2 model."""
    n_embd: int = 64
    """Hidden size."""
    n_head: int = 4
    """Attention heads (divides n_embd)."""
    n_positions: int = 64
    """Context length in tokens (prompt + continuation must fit)."""
    sft_steps: int = 850
    """Supervised next-token steps on the corpus (850 at lr 3e-3: validation perplexity ~140 in
    ~3 minutes on one quiet core; 1500 reach ~103 in ~5 minutes)."""
    sft_batch_size: int = 32
    """Sequences per SFT step."""
    sft_lr: float = 3e-3
    """Peak SFT learning rate (cosine schedule)."""
    sft_seq_len: int = 64
    """Tokens per SFT sequence."""
    prompt_words: int = 4
    """Words of a held-out corpus text that form one RL prompt."""
    n_prompts: int = 4096
    """Held-out texts turned into prompts."""
    seed: int = 0
    """Seeds the corpus split, the tokenizer and the SFT run."""
    threads: int = 2
    """torch CPU threads. Runs are bit-identical only at the same thread count; on a loaded
    2-core machine 1 thread can be faster than 2."""

    def __post_init__(self) -> None:
        _check_field_types(self)
        _check_positive(
            self,
            (
                "vocab_size",
                "n_layer",
                "n_embd",
                "n_head",
                "n_positions",
                "sft_steps",
                "sft_batch_size",
                "sft_seq_len",
                "prompt_words",
                "n_prompts",
                "threads",
                "sft_lr",
            ),
        )
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.sft_seq_len > self.n_positions:
            raise ValueError(
                f"sft_seq_len={self.sft_seq_len} exceeds n_positions={self.n_positions}"
            )
        if self.vocab_size < 300:
            raise ValueError(f"vocab_size={self.vocab_size} must be >= 300 (256 bytes + specials)")

    def key(self) -> str:
        """A short hash of everything that changes the prepared artefacts."""
        import hashlib

        from reference_trainer.prepare.corpus import debian_corpus_present

        relevant = {k: v for k, v in as_dict(self).items() if k not in ("data_dir", "threads")}
        # "auto" without the Debian corpus builds the fallback's model: a cache prepared before
        # the corpus was installed must not be taken for the Debian one afterwards.
        if self.corpus == "auto" and not debian_corpus_present():
            relevant["corpus"] = "python"
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]

    def directory(self) -> Path:
        return Path(self.data_dir) / f"default-{self.key()}"


@dataclass(frozen=True)
class TrainConfig:
    """One RL fine-tuning run (CleanRL-style: every knob a practitioner looks at)."""

    algo: str = registry.DEFAULT
    """The KL controller: a name registered in ``safecontrol.registry``, or one of this trainer's
    recipes (``reference_trainer/recipes.py``: safe-published); listed below."""
    run_dir: str = "runs/default"
    """The run's directory: config.json, metrics.jsonl, samples.jsonl, checkpoint.pt; locked
    while a trainer uses it, and never written when it holds files that are not a run."""
    model: str = ""
    """Local path or Hub name of a causal LM; empty: the prepared offline default."""
    reward: str = "vader"
    """The proxy reward the policy trains on: "vader" (VADER compound sentiment of the
    continuation), "module:function" (an importable Python callable ``f(prompts, completions)``
    returning one number per completion), or a local path / Hub name of an
    AutoModelForSequenceClassification (its logit of ``reward_label``)."""
    gold_reward: str = ""
    """A scorer the policy never trains on, logged as gold_mean on every batch (same forms as
    ``reward``; empty: none). Proxy rising while gold falls is reward hacking."""
    task: str = ""
    """An offline task that sets both rewards (reference_trainer/tasks/offline.py): "sentiment",
    "reward-model" or "topic"; empty: ``reward`` and ``gold_reward`` as given."""
    reward_label: int = -1
    """Which output of a classification reward model is the reward (-1: the last)."""
    lora_rank: int = 0
    """> 0: train LoRA adapters of this rank through peft instead of the full policy."""
    steps: int = 150
    """Rollout batches (PPO iterations)."""
    batch_size: int = 32
    """Prompts per rollout batch (over all processes)."""
    max_new_tokens: int = 16
    """Tokens sampled per continuation (prompt + continuation must fit the model's context)."""
    min_new_tokens: int = 4
    """EOS is blocked for this many tokens in sampling *and* in scoring (SPEC §6 trap 2)."""
    temperature: float = 1.0
    """Sampling temperature; the update scores tokens with the same temperature-scaled logits."""
    lr: float = 1e-3
    """Policy learning rate."""
    critic_lr: float = 1e-3
    """Critic (value heads) learning rate."""
    ppo_epochs: int = 2
    """Optimisation passes over each rollout batch (one controller update per batch)."""
    clip_range: float = 0.2
    """PPO's ratio clip ε."""
    value_clip: float = 0.2
    """Clip of the value prediction around the rollout-time value (SAFE's critic loss)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient (the initial one when ``entropy_target`` > 0)."""
    entropy_target: float = 0.0
    """> 0: an entropy controller (Skywork-OR1's, safecontrol.EntropyTargetController) moves the
    entropy bonus coefficient by ±0.005 per batch toward this entropy (nats per token), within
    [0, 0.1]; the β = 0 recipe of GRPO/DAPO-style training pairs it with fixed-kl coef 0."""
    gamma: float = 1.0
    """Discount per token."""
    lam: float = 0.95
    """GAE λ."""
    max_grad_norm: float = 1.0
    """Policy gradient-norm clip."""
    critic_max_grad_norm: float = 0.5
    """Critic gradient-norm clip."""
    critic_heads: int = 0
    """Value heads; 0: the controller's (2 for safe and safe-published), else 1."""
    soft_min_alpha: float = 0.3
    """α of the critic's soft-min over heads (SPEC §1.1)."""
    polyak_tau: float = 0.05
    """Target-critic update rate; the target critic supplies the values behind GAE targets."""
    kl_estimator: str = "k3"
    """Per-token estimator of the live KL in the loss and of the controller's measurement."""
    controller_settings: dict[str, Any] = field(default_factory=dict)
    """Settings of the controller, e.g. {"coef": 0.1} for fixed-kl or {"use_gate": false} for
    safe (defaults: its registration; see below). A controller with a ``kl_estimator`` setting
    gets this run's."""
    penalty_mode: str = "hinge"
    """For a dead-band decision (SAFE's): "hinge" applies c·g·max(0, KL − τ)² to the live KL;
    "coef" decision.coef × live KL; "detached" the published code's float penalty, which never
    reaches the gradient (safe-published's default). Other decisions always apply coef × live
    KL."""
    preview_steps: bool = True
    """When the controller limits a step (a finite ``max_preview_kl``: safe, kl-budget), scale
    each optimizer step so its KL to the pre-step policy stays within the limit (false by
    default for safe-published, whose published code has no preview)."""
    max_step_kl: float = 0.0
    """The trainer's trust region, whatever the controller: scale each optimizer step so that
    its KL to the pre-step policy stays within this many nats per token (0: none). With fixed-kl
    it is trust-region PPO; with a controller that limits steps too, the tighter limit applies
    (``trust_region.py``)."""
    step_limit: str = "auto"
    """How ``preview_steps`` finds a step's KL (``safecontrol.torch.StepLimiter``). "preview":
    run the stepped policy's forward after every optimizer step (SAFE's preview: one more
    forward per epoch). "predicted": predict it as the last measured KL per squared step length
    × this step's squared length, shrink the step before it is used, and measure it at the
    next epoch's forward, which runs anyway (redone, shrunk, only when the step overshot its
    limit by more than half): limiting steps then costs no forward of its own. "auto": the
    controller's (kl-budget: "predicted"), else "preview" (``resolved_step_limit``)."""
    device: str = "auto"
    """Where the policy, the reference and the critic compute: "auto" (CUDA when present, else
    the CPU), "cpu", "cuda" (under torchrun, each process its LOCAL_RANK's GPU), "cuda:N" or
    "mps". Rewards and the tasks' scorers run on the CPU."""
    dtype: str = "float32"
    """"float32", or "bfloat16": autocast of the policy's, reference's and critic's forwards and
    backward, with float32 master weights and optimizer state, and log-probabilities, KL, entropy,
    values and every controller statistic in float32."""
    micro_batch_size: int = 0
    """Sequences per forward and backward (gradient accumulation inside each PPO epoch, the
    forwards without gradients chunked alike), so that peak memory stays flat as ``batch_size``
    grows; 0: each process's whole shard at once. The step equals the whole-batch step within
    float rounding."""
    seed: int = 0
    """Seeds prompts, sampling and initial critics; a run is bit-identical for a seed."""
    threads: int = 2
    """torch CPU threads (runs are bit-identical only at the same thread count)."""
    eval_every: int = 0
    """> 0: evaluate the policy every this many iterations and after the last on ``eval_prompts``
    prompts held out of every training batch (the last of the prompt set), with the same sampling
    noise each time: proxy, gold, KL to the reference, entropy, distinct-1 and length, logged as
    ``eval_*`` and summed up by the report (the gold's drawdown from its best evaluation). 0: no
    evaluation, and every prompt can be drawn for training."""
    eval_prompts: int = 512
    """Held-out prompts of an evaluation (``eval_every`` > 0)."""
    checkpoint_every: int = 25
    """Save a checkpoint every this many steps (and at the last)."""
    sample_every: int = 10
    """Write decoded samples every this many steps."""
    data_dir: str = ".data"
    """Where the prepared default lives (see PrepareConfig)."""
    reward_timeout: float = 600.0
    """Seconds one call of a reward function (``reward``, ``gold_reward``) may take before the
    run stops with an error naming it (0: no limit, and a scorer that never returns hangs the
    run forever). Ten minutes is ~3x what a 7B-parameter reward model needs on a CPU for the
    default batch (32 x ~50 tokens, ~2e13 FLOP at ~100 GFLOP/s): a call still running then has
    hung. Raise it for a slower scorer (a remote judge, larger batches)."""
    report_to: str = "none"
    """Trackers beside metrics.jsonl: "none", "tensorboard" (<run_dir>/tensorboard), "wandb"
    (honours WANDB_MODE, WANDB_PROJECT), or a comma-separated list; metrics are namespaced
    (reward/, kl/, controller/, policy/, value/, rollout/, time/)."""

    def __post_init__(self) -> None:
        _check_field_types(self)
        if self.algo in RENAMED_ALGORITHMS:
            raise ValueError(
                f"algo {self.algo!r} is now called {RENAMED_ALGORITHMS[self.algo]!r} "
                f"(known: {list(algo_names())})"
            )
        recipe(self.algo)  # an unknown name lists the known ones
        self._apply_recipe()
        _check_positive(
            self,
            (
                "steps",
                "batch_size",
                "max_new_tokens",
                "ppo_epochs",
                "threads",
                "checkpoint_every",
                "sample_every",
                "eval_prompts",
                "temperature",
                "lr",
                "critic_lr",
                "clip_range",
                "value_clip",
                "max_grad_norm",
                "critic_max_grad_norm",
                "soft_min_alpha",
            ),
        )
        for name in (
            "ent_coef",
            "min_new_tokens",
            "lora_rank",
            "critic_heads",
            "eval_every",
            "micro_batch_size",
            "seed",
            "reward_timeout",
            "entropy_target",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens={self.min_new_tokens} exceeds max_new_tokens={self.max_new_tokens}"
            )
        for name in ("gamma", "lam", "polyak_tau"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
        if self.kl_estimator not in ("k1", "k2", "k3"):
            raise ValueError(f"kl_estimator must be k1, k2 or k3, got {self.kl_estimator!r}")
        parse_report_to(self.report_to)
        if self.task:
            if self.task not in TASKS:
                raise ValueError(f"task must be one of {TASKS} or empty, got {self.task!r}")
            if self.reward != "vader" or self.gold_reward:
                raise ValueError(
                    f"task={self.task!r} sets the proxy and gold rewards itself; leave reward "
                    f"and gold_reward unset (got reward={self.reward!r}, "
                    f"gold_reward={self.gold_reward!r})"
                )
        if self.entropy_target > 0 and self.ent_coef > 0.1:
            raise ValueError(
                f"ent_coef={self.ent_coef!r} is the entropy controller's initial coefficient and "
                "must lie in its range [0, 0.1]"
            )
        if not (math.isfinite(self.max_step_kl) and self.max_step_kl >= 0):
            raise ValueError(
                f"max_step_kl must be a finite KL >= 0 (0: no trust region), got "
                f"{self.max_step_kl!r}"
            )
        if self.step_limit not in ("auto", *STEP_LIMITS):
            raise ValueError(
                f"step_limit must be 'auto' or one of {STEP_LIMITS}, got {self.step_limit!r}"
            )
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.penalty_mode not in PENALTY_MODES:
            raise ValueError(
                f"penalty_mode must be one of {PENALTY_MODES}, got {self.penalty_mode!r}"
            )
        self.make_controller()  # the controller's settings are checked now, before any write

    def _apply_recipe(self) -> None:
        """The recipe's penalty mode and preview (``recipes.py``: e.g. safe-published's detached
        penalty) replace the fields left at their defaults; a field set to another value keeps it
        (an ablation). critic_heads = 0 and step_limit = "auto" already mean "the recipe's"
        (``n_critic_heads``, ``resolved_step_limit``): left so, a config copied with another algo
        does not carry SAFE's two heads or kl-budget's predicted steps along."""
        defaults = {f.name: f.default for f in fields(self)}
        wanted = recipe(self.algo)
        for name in ("penalty_mode", "preview_steps"):
            if getattr(self, name) == defaults[name]:
                object.__setattr__(self, name, getattr(wanted, name))

    def controller_kwargs(self) -> dict[str, Any]:
        """``controller_settings``, plus this run's ``kl_estimator`` for a controller that has
        such a setting (a contradicting one is an error)."""
        registration = registry.registration(recipe(self.algo).controller)
        settings = dict(self.controller_settings)
        if "kl_estimator" in registration.defaults():
            given = settings.setdefault("kl_estimator", self.kl_estimator)
            if given != self.kl_estimator:
                raise ValueError(
                    f"controller_settings kl_estimator={given!r} contradicts "
                    f"kl_estimator={self.kl_estimator!r}; set kl_estimator alone"
                )
        return settings

    def make_controller(self) -> Any:
        """A fresh controller of this run (``safecontrol.contract.Controller``)."""
        try:
            return registry.make(recipe(self.algo).controller, **self.controller_kwargs())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"controller_settings of {self.algo!r}: {exc}") from exc

    def make_entropy_controller(self) -> Any:
        """The entropy-bonus controller (``entropy_target`` > 0), else ``None``."""
        if self.entropy_target <= 0:
            return None
        from safecontrol import EntropyTargetController

        return EntropyTargetController(target=self.entropy_target, init_coef=self.ent_coef)

    def policy_source(self) -> Path | str:
        """Where the policy loads from: ``model``, or the prepared offline default's directory."""
        return PrepareConfig(data_dir=self.data_dir).directory() if not self.model else self.model

    @property
    def n_critic_heads(self) -> int:
        return self.critic_heads or recipe(self.algo).critic_heads

    @property
    def resolved_step_limit(self) -> str:
        """``step_limit``, "auto" resolved: the recipe's."""
        if self.step_limit != "auto":
            return self.step_limit
        return recipe(self.algo).step_limit


def _check_field_types(config: Any) -> None:
    """Every field holds its declared type (bools are not numbers, numbers are finite); numeric
    fields are stored as Python ``int`` / ``float`` so that ``config.json`` is plain JSON."""
    hints = get_type_hints(type(config))
    for f in fields(config):
        value, kind, name = getattr(config, f.name), hints[f.name], f.name
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(config, name, int(value))
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
            object.__setattr__(config, name, float(value))
        elif kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {value!r}")
        elif not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{name} must be a JSON object with string keys, got {value!r}")


def _check_positive(config: Any, names: tuple[str, ...]) -> None:
    """Each named field > 0 (its type and finiteness are ``_check_field_types``'s)."""
    for name in names:
        value = getattr(config, name)
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


def parse_report_to(text: str) -> tuple[str, ...]:
    """``"none"``, one tracker or a comma-separated list; an unknown one is named."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in TRACKERS]
    if unknown or not names:
        raise ValueError(f"report_to must be a comma-separated subset of {TRACKERS}, got {text!r}")
    if "none" in names and len(names) > 1:
        raise ValueError(f"report_to 'none' cannot be combined with others, got {text!r}")
    return () if names == ("none",) else names


def as_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
