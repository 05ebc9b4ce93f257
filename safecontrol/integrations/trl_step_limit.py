"""The decision's per-step KL limit on every optimizer step of TRL's GRPO and RLOO trainers.

A decision with a finite ``max_preview_kl`` (kl-budget's, SAFE's) bounds KL(π_before ‖ π_after) of
each optimizer step. TRL has no such limit, and with its defaults (``num_iterations=1``) no signal
of how far a step moved the policy: GRPO's importance ratio is identically 1. So the step is
measured here, exactly, on the last micro-batch of its gradient-accumulation window (the probe):

- ``on_pre_optimizer_step``: the trainable weights are copied and the policy's next-token logits
  on the probe's completion tokens computed (no gradient, eval mode: dropout would make two
  forwards of the same weights differ);
- ``on_optimizer_step``: the same forward of the new weights; the exact KL between the two,
  averaged over the completion tokens of every process, decides the shrink
  θ ← θ_before + s·(θ − θ_before) with s = ``decision.step_scale(KL)``
  (``safecontrol.torch.StepLimiter``); a shrunk step is measured again, and shrunk further while
  its KL exceeds 1.5 × the limit.

Cost: one copy of the trainable weights and two gradient-free forwards of one micro-batch per
optimizer step (a third when the step is shrunk), only while the decision limits steps (measured
in ``benchmarks/results/trl_frontier.md``).
The probe is read from ``trainer.compute_loss``'s ``inputs`` (TRL's processed batch: prompt and
completion ids and masks), which ``StepLimit.install`` wraps to keep a reference to the last one.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from ..contract import Decision
from ..torch import StepLimiter


def completion_logits(model: torch.nn.Module, inputs: dict[str, Any], temperature: float) -> Any:
    """The (B, T, V) next-token logits at the completion tokens, scaled as TRL scales them."""
    prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    length = completion_ids.size(1)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    return logits[:, -length - 1 : -1, :].float() / temperature


def completion_mask(inputs: dict[str, Any]) -> torch.Tensor:
    """The completion tokens TRL's loss counts (the model's own tokens where a tool mask exists)."""
    mask: torch.Tensor = inputs["completion_mask"].bool()
    return mask & inputs["tool_mask"].bool() if "tool_mask" in inputs else mask


class StepLimit:
    """Limits each optimizer step of ``trainer`` to its controller decision's ``max_preview_kl``.

    ``enabled``: built so, it wraps ``trainer.compute_loss`` at once (``install``) to keep the
    last micro-batch's inputs, however the callback is then added; the callback calls ``before``
    / ``after`` around the optimizer step. Disabled (the ablation), it limits nothing and warns
    once when a decision asks for a limit. ``scale`` and ``step_kl`` are the last step's (1.0 and
    None when the decision did not limit it); ``log_values`` gives them for the logs.
    """

    def __init__(self, trainer: Any, enabled: bool = True, owner: str = "the controller") -> None:
        if not isinstance(enabled, bool):
            raise ValueError(f"limit_steps must be True or False, got {enabled!r}")
        self.trainer = trainer
        self.enabled = enabled
        self.owner = owner
        """What the ablation's warning names: the controller's class."""
        self.temperature = float(getattr(trainer, "temperature", 1.0))
        self.probe: dict[str, Any] | None = None
        self.limiter: StepLimiter[dict[str, Any], Any] | None = None
        self.pending: Any = None
        self.scale: float = 1.0
        self.step_kl: float | None = None
        self._warned = False
        if enabled:
            self.install()

    def log_values(self) -> dict[str, float]:
        """``safe/step_scale`` and ``safe/step_kl`` of the last step, when it was limited."""
        if self.step_kl is None:
            return {}
        return {"safe/step_scale": self.scale, "safe/step_kl": self.step_kl}

    def install(self) -> None:
        original = self.trainer.compute_loss

        def compute_loss(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            self.probe = inputs  # a reference, no copy: TRL keeps the batch alive meanwhile
            return original(model, inputs, *args, **kwargs)

        self.trainer.compute_loss = compute_loss

    def before(self, decision: Decision) -> None:
        """Just before ``optimizer.step()``: save the weights and the probe's forward."""
        self.scale, self.step_kl, self.pending = 1.0, None, None
        if not math.isfinite(decision.max_preview_kl):
            return
        if not self.enabled:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.owner} limits each optimizer step to max_preview_kl = "
                    f"{decision.max_preview_kl:.3g} nats per token, but the callback was built "
                    "with limit_steps=False: its steps are not limited",
                    stacklevel=3,
                )
            return
        if self.probe is None:
            raise RuntimeError(
                "the step limit found no batch of this optimizer step: trainer.compute_loss was "
                "replaced after the SafeBetaCallback was built (build it after replacing it)"
            )
        model = self.trainer.model
        if self.limiter is None:
            self.limiter = StepLimiter(
                [p for p in model.parameters() if p.requires_grad],
                forward=self._forward,
                logits=lambda logits: logits,
                mask=completion_mask,
            )
        self.pending = self.limiter.before_step(self.probe)

    def after(self, decision: Decision) -> None:
        """Just after ``optimizer.step()``: measure the step and shrink it to the limit."""
        if self.pending is None or self.limiter is None:
            return
        limited = self.limiter.after_step(decision, self.pending)
        self.scale, self.step_kl, self.pending = limited.scale, limited.step_kl, None

    def _forward(self, inputs: dict[str, Any]) -> Any:
        model = self.trainer.model
        training = model.training
        model.eval()
        try:
            return completion_logits(model, inputs, self.temperature)
        finally:
            model.train(training)
