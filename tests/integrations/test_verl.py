"""safecontrol.integrations.verl against the real verl package (0.9.1, CPU): our adapter driven
through verl's own ``apply_kl_penalty`` on synthetic rollout batches."""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any

import numpy as np
import pytest

pytest.importorskip("verl")

import torch

with warnings.catch_warnings():  # verl warns about the GPU engines (megatron, ...) it lacks
    warnings.simplefilter("ignore")
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo import core_algos
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer, apply_kl_penalty

from safecontrol import FixedKL
from safecontrol.integrations.kl_ctrl import KLCtrlAdapter
from safecontrol.integrations.verl import (
    CHECKPOINT_FILE,
    SafeKLMixin,
    adapter_like,
    batch_statistics,
    load_checkpoint,
    save_checkpoint,
)

BATCH, RESPONSE = 8, 12


def _batch(t: int, seed: int = 0, drift: float = 0.002) -> tuple[DataProto, torch.Tensor]:
    """Rollout batch ``t`` of a drifting stream (the policy moving away from the reference,
    responses of varied length) and its per-token entropies."""
    g = torch.Generator().manual_seed(seed * 10_000 + t)
    lengths = torch.randint(3, RESPONSE + 1, (BATCH,), generator=g)
    mask = (torch.arange(RESPONSE)[None, :] < lengths[:, None]).float()
    ref = -2.0 - torch.rand(BATCH, RESPONSE, generator=g)
    shift = drift * t * (1 + torch.rand(BATCH, RESPONSE, generator=g))
    scores = torch.zeros(BATCH, RESPONSE)
    scores[torch.arange(BATCH), lengths - 1] = torch.rand(BATCH, generator=g) + 0.01 * t
    data = DataProto.from_dict(
        tensors={
            "old_log_probs": ref + shift,
            "ref_log_prob": ref,
            "response_mask": mask,
            "rm_scores": scores,
            "token_level_scores": scores.clone(),
        }
    )
    entropys = 3.0 - 0.02 * t + 0.1 * torch.rand(BATCH, RESPONSE, generator=g)
    return data, entropys


def _kl_ctrl_config(kind: str) -> Any:
    return OmegaConf.create({"type": kind, "kl_coef": 0.05, "target_kl": 0.02, "horizon": 1000})


@pytest.mark.parametrize("kind", ["adaptive", "fixed"])
def test_adapter_through_apply_kl_penalty_equals_verls_controller_bit_for_bit(kind: str) -> None:
    config = _kl_ctrl_config(kind)
    theirs, ours = core_algos.get_kl_controller(config), adapter_like(config)
    betas = set()
    for t in range(60):
        data, entropys = _batch(t)
        ours.observe(**batch_statistics(data, entropys))  # what SafeKLMixin adds; unused here
        out_theirs, metrics_theirs = apply_kl_penalty(data, theirs, kl_penalty="kl")
        data, _ = _batch(t)
        out_ours, metrics_ours = apply_kl_penalty(data, ours, kl_penalty="kl")
        assert torch.equal(
            out_theirs.batch["token_level_rewards"], out_ours.batch["token_level_rewards"]
        )
        assert metrics_theirs == metrics_ours
        assert float(theirs.value) == ours.value
        betas.add(ours.value)
    assert len(betas) == (60 if kind == "adaptive" else 1)  # the KL crossed the target: β moved


def _safe_run(steps: int, kl_ctrl: KLCtrlAdapter, start: int = 0) -> list[Any]:
    out = []
    for t in range(start, steps):
        data, entropys = _batch(t, seed=1, drift=0.01)  # KL per token up to ~1 nat
        kl_ctrl.observe(**batch_statistics(data, entropys))
        result, metrics = apply_kl_penalty(data, kl_ctrl, kl_penalty="kl")
        out.append((result.batch["token_level_rewards"], metrics, kl_ctrl.decision.as_dict()))
    return out


def test_safe_driven_apply_kl_penalty_saves_and_resumes_identically(tmp_path: Any) -> None:
    steps, saved_at = 70, 37  # past SAFE's warm-up: the dead band and the PID have moved
    uninterrupted = _safe_run(steps, KLCtrlAdapter("safe", {"kl_estimator": "k1"}))
    assert len({row[1]["actor/reward_kl_penalty_coeff"] for row in uninterrupted}) > 10

    first = KLCtrlAdapter("safe", {"kl_estimator": "k1"})
    _safe_run(saved_at, first)
    folder = tmp_path / f"global_step_{saved_at}"
    path = save_checkpoint(first, folder)
    with open(path) as f:
        json.load(f, parse_constant=pytest.fail)  # strict JSON

    resumed = KLCtrlAdapter("safe", {"kl_estimator": "k1"})
    assert load_checkpoint(resumed, folder)
    rest = _safe_run(steps, resumed, start=saved_at)
    for (rewards, metrics, decision), (r, m, d) in zip(uninterrupted[saved_at:], rest, strict=True):
        assert torch.equal(rewards, r)
        assert metrics == m and decision == d


def test_batch_statistics_are_token_weighted_means() -> None:
    data, entropys = _batch(5)
    stats = batch_statistics(data, entropys)
    mask = data.batch["response_mask"].numpy().astype(np.float64)
    assert stats["tokens_per_sequence"] == pytest.approx(mask.sum(-1).mean())
    assert stats["reward"] == pytest.approx(data.batch["rm_scores"].numpy().sum(-1).mean())
    assert stats["entropy"] == pytest.approx((entropys.numpy() * mask).sum() / mask.sum(), rel=1e-6)


class _StubTrainer:
    """The three RayPPOTrainer methods the mixin wraps, without workers."""

    def __init__(self, folder: str, entropys: torch.Tensor) -> None:
        self.config = OmegaConf.create(
            {"trainer": {"default_local_dir": folder, "resume_mode": "auto"}}
        )
        self.global_steps = 0
        self.entropys = entropys
        self.saved: list[int] = []

    def _compute_old_log_prob(self, batch: DataProto) -> tuple[DataProto, float]:
        out = DataProto.from_dict(
            tensors={"old_log_probs": batch.batch["old_log_probs"], "entropys": self.entropys}
        )
        return out, 0.0

    def _save_checkpoint(self) -> None:
        self.saved.append(self.global_steps)

    def _load_checkpoint(self) -> int:
        self.global_steps = self.saved[-1] if self.saved else 0
        return self.global_steps


class _Trainer(SafeKLMixin, _StubTrainer):
    pass


def test_mixin_hooks_exist_on_verls_trainer() -> None:
    for name in ("_compute_old_log_prob", "_save_checkpoint", "_load_checkpoint"):
        assert callable(getattr(RayPPOTrainer, name))
    assert issubclass(type("T", (SafeKLMixin, RayPPOTrainer), {}), RayPPOTrainer)


def test_mixin_feeds_the_side_channel_and_checkpoints(tmp_path: Any) -> None:
    data, entropys = _batch(3)
    trainer = _Trainer(str(tmp_path), entropys)
    trainer.kl_ctrl_in_reward = KLCtrlAdapter("safe")
    trainer._compute_old_log_prob(data)
    assert trainer.kl_ctrl_in_reward.state_dict()["pending"] == batch_statistics(data, entropys)
    apply_kl_penalty(data, trainer.kl_ctrl_in_reward)
    trainer.global_steps = 1
    trainer._save_checkpoint()
    saved = tmp_path / "global_step_1" / CHECKPOINT_FILE
    assert json.loads(saved.read_text()) == trainer.kl_ctrl_in_reward.state_dict()

    resumed = _Trainer(str(tmp_path), entropys)
    resumed.saved = [1]
    resumed.kl_ctrl_in_reward = KLCtrlAdapter("safe")
    resumed._load_checkpoint()
    assert resumed.kl_ctrl_in_reward.state_dict() == trainer.kl_ctrl_in_reward.state_dict()

    saved.write_text("{not json")
    fresh = _Trainer(str(tmp_path), entropys)
    fresh.saved = [1]
    fresh.kl_ctrl_in_reward = KLCtrlAdapter("safe")
    before = fresh.kl_ctrl_in_reward.state_dict()
    with pytest.raises(ValueError, match=CHECKPOINT_FILE):
        fresh._load_checkpoint()
    assert fresh.kl_ctrl_in_reward.state_dict() == before
    assert not load_checkpoint(fresh.kl_ctrl_in_reward, os.path.join(tmp_path, "global_step_9"))


@pytest.mark.parametrize("missing", ["type", "kl_coef", "target_kl", "horizon"])
@pytest.mark.parametrize("form", ["omegaconf", "dict", "object"])
def test_adapter_like_names_a_missing_key_and_the_config(missing: str, form: str) -> None:
    """A config without ``kl_coef`` raised a bare KeyError('kl_coef')."""
    values = {"type": "adaptive", "kl_coef": 0.05, "target_kl": 0.02, "horizon": 1000}
    del values[missing]
    config: Any = {
        "omegaconf": lambda: OmegaConf.create(values),
        "dict": lambda: values,
        "object": lambda: type("KLControlConfig", (), values)(),
    }[form]()
    with pytest.raises(ValueError, match=rf"kl_ctrl config has no {missing!r}") as error:
        adapter_like(config)
    assert repr(config)[:40] in str(error.value)


def test_a_state_observed_with_a_nan_entropy_is_saved_and_restored(tmp_path: Any) -> None:
    """A NaN entropy (a batch whose entropys are NaN) made the adapter's state
    non-strict JSON, and save_checkpoint failed naming no file."""
    data, entropys = _batch(2)
    kl_ctrl = KLCtrlAdapter("safe", {"on_nonfinite": "skip"})
    kl_ctrl.observe(**batch_statistics(data, torch.full_like(entropys, math.nan)))
    path = save_checkpoint(kl_ctrl, tmp_path)
    with open(path) as f:
        assert json.load(f, parse_constant=pytest.fail)["pending"]["entropy"] == "nan"
    resumed = KLCtrlAdapter("safe", {"on_nonfinite": "skip"})
    assert load_checkpoint(resumed, tmp_path)
    assert resumed.update(0.01, BATCH).skipped == kl_ctrl.update(0.01, BATCH).skipped == 1


class _UnsaveableKL(FixedKL):
    """A controller of one's own whose state is not strict JSON."""

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "note": math.nan}


def test_a_failed_save_names_the_file_and_keeps_the_previous_one(tmp_path: Any) -> None:
    (tmp_path / CHECKPOINT_FILE).write_text('{"old": true}')
    with pytest.raises(ValueError, match=rf"could not write {tmp_path / CHECKPOINT_FILE}.*JSON"):
        save_checkpoint(KLCtrlAdapter(_UnsaveableKL(coef=0.1)), tmp_path)
    assert (tmp_path / CHECKPOINT_FILE).read_text() == '{"old": true}'
    assert os.listdir(tmp_path) == [CHECKPOINT_FILE]  # no temporary left
