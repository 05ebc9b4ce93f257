"""The decision's per-step KL limit applied to every optimizer step of the real TRL trainers: a
step that moved the policy too far ends within the limit, measured independently; a decision
without a limit costs nothing; ``limit_steps=False`` says so once."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from integrations.trl_tiny import make_trainer, step_logs, tiny_model_dir  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from safecontrol.budget_kl import HELD_KL_RATIO  # noqa: E402
from safecontrol.integrations.trl import SafeBetaCallback  # noqa: E402
from safecontrol.integrations.trl_step_limit import completion_logits, completion_mask  # noqa: E402
from safecontrol.torch import exact_kl_per_token  # noqa: E402
from safecontrol.torch.step_limit import STEP_SLACK  # noqa: E402

BINDING = {"step_ratio": 1e-4}
"""kl-budget's step limit at a tenth of its default: binding at the tiny run's lr 3e-2."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_model_dir(tmp_path_factory)


class StepKL(TrainerCallback):
    """Added after SafeBetaCallback: measures each optimizer step's KL on the same probe batch,
    independently of the limiter, after the limiter has shrunk it."""

    def __init__(self, trainer: Any, callback: SafeBetaCallback) -> None:
        self.trainer, self.callback = trainer, callback
        self.steps: list[tuple[float, float]] = []  # (step KL after the limit, the limit)
        original = trainer.compute_loss

        def compute_loss(model, inputs, *args, **kwargs):
            self.probe = inputs
            return original(model, inputs, *args, **kwargs)

        trainer.compute_loss = compute_loss

    def _logits(self) -> Any:
        model = self.trainer.model
        model.eval()
        with torch.no_grad():
            logits = completion_logits(model, self.probe, 1.0)
        model.train()
        return logits

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.limit = self.callback.controller.decision.max_preview_kl
        self.before = self._logits()

    def on_optimizer_step(self, args, state, control, **kwargs):
        mask = completion_mask(self.probe)
        kl = exact_kl_per_token(self.before, self._logits())[mask].mean()
        self.steps.append((float(kl), self.limit))


def run(
    model_dir: str, out: Any, kind: str, trainer_args: dict | None = None, **kwargs: Any
) -> tuple[Any, SafeBetaCallback, Any]:
    trainer = make_trainer(model_dir, out, kind=kind, temperature=1.0, **(trainer_args or {}))
    callback = SafeBetaCallback.attach(trainer, "kl-budget", **kwargs)
    measured = StepKL(trainer, callback)
    trainer.add_callback(measured)
    trainer.train()
    return trainer, callback, measured


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_every_limited_step_ends_within_its_limit(model_dir, tmp_path, kind):
    trainer, _, measured = run(model_dir, tmp_path, kind, settings=BINDING)
    limited = [(kl, limit) for kl, limit in measured.steps if limit < float("inf")]
    assert len(limited) == 4  # the first step too: its batch's decision comes before it
    assert all(kl <= STEP_SLACK * limit for kl, limit in limited)
    logs = step_logs(trainer)
    scales = [logs[step]["safe/step_scale"] for step in (1, 2, 3, 4)]
    assert min(scales) < 1.0  # the limit bound: steps were shrunk
    assert all(logs[step]["safe/step_kl"] > 0.0 for step in (1, 2, 3, 4))


@pytest.mark.parametrize(
    "trainer_args",
    [{"gradient_accumulation_steps": 2}, {"num_iterations": 2}],
    ids=["accumulated", "reused-rollouts"],
)
def test_accumulated_and_reused_steps_are_limited_on_their_last_micro_batch(
    model_dir, tmp_path, trainer_args
):
    """Each optimizer step, whatever its micro-batches or rollout reuse, is measured on the last
    micro-batch it trained on and ends within its limit there."""
    _, _, measured = run(model_dir, tmp_path, "grpo", trainer_args, settings=BINDING)
    limited = [(kl, limit) for kl, limit in measured.steps if limit < float("inf")]
    assert len(limited) == len(measured.steps) == 4
    assert all(kl <= STEP_SLACK * limit for kl, limit in limited)


def test_without_the_limit_the_same_steps_overshoot_and_the_callback_warns_once(
    model_dir, tmp_path
):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, _, measured = run(model_dir, tmp_path, "grpo", settings=BINDING, limit_steps=False)
    said = [w for w in caught if "its steps are not limited" in str(w.message)]
    assert len(said) == 1 and "limit_steps=False" in str(said[0].message)
    assert any(kl > 2 * limit for kl, limit in measured.steps if limit < float("inf"))
    assert "safe/step_scale" not in step_logs(trainer)[4]


def test_a_decision_without_a_limit_runs_no_forward_of_its_own(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path)
    callback = SafeBetaCallback.attach(trainer, "fixed-kl", settings={"coef": 0.04})
    calls = {"forward": 0}
    original = callback.step_limit._forward

    def counted(inputs):
        calls["forward"] += 1
        return original(inputs)

    callback.step_limit._forward = counted
    trainer.train()
    assert calls["forward"] == 0
    assert "safe/step_scale" not in step_logs(trainer)[4]


def test_limit_steps_must_be_a_bool(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path)
    with pytest.raises(ValueError, match="limit_steps must be True or False, got 'no'"):
        SafeBetaCallback.attach(trainer, "kl-budget", limit_steps="no")


def test_a_callback_added_without_attach_limits_steps_too(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path)
    callback = SafeBetaCallback(trainer, "kl-budget", settings=BINDING)
    trainer.add_callback(callback)
    trainer.train()
    assert min(step_logs(trainer)[step]["safe/step_scale"] for step in (1, 2, 3, 4)) < 1.0


def test_a_held_kl_budget_stops_moving_the_policy_in_trl(model_dir, tmp_path):
    """kl-budget's proxy hold reaches TRL's optimizer steps through the step limit: once the
    batch reward stops rising (window 2: a batch no better than the last), every step's KL is
    held to 1e-8 × the budget."""
    _, callback, measured = run(model_dir, tmp_path, "grpo", settings={"hold_window": 2})
    held_at = callback.controller.state.hold.held_at
    assert 0 < held_at < len(measured.steps)  # the test needs a held step
    held = measured.steps[held_at - 1 :]  # step k runs on update k's decision
    budget = callback.controller.decision.budget
    assert all(limit == HELD_KL_RATIO * budget for _, limit in held)
    # Measured in float32 a held step's KL is rounding (|KL| ~ 1e-7); a free one's is ~3e-3.
    assert all(abs(kl) < 1e-6 for kl, _ in held)
    assert all(kl > 1e-4 and limit > 1e-4 for kl, limit in measured.steps[: held_at - 1])
