"""Where and how the trainer computes: micro-batches equal the whole-batch step, bfloat16 autocast
keeps float32 master weights and statistics, and a device or dtype that is not there is refused."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from tiny_lm import build_tiny  # noqa: E402
from tiny_lm import tiny_config as config  # noqa: E402

from reference_trainer.device import resolve_device  # noqa: E402
from reference_trainer.policy_gradient import (  # noqa: E402
    EpochLoss,
    micro_batch_gradient,
    whole_batch_gradient,
)
from reference_trainer.run import train  # noqa: E402
from reference_trainer.run_dir import checkpoint  # noqa: E402
from reference_trainer.train import Trainer  # noqa: E402
from safecontrol import registry  # noqa: E402

COMPARED = ("policy_loss", "kl_term", "live_kl", "grad_norm", "value_loss", "approx_kl")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


class FixedDecision:
    """A controller that always decides ``decision`` (to hold SAFE's hinge switched on)."""

    kl_unit = "per_token"

    def __init__(self, decision: Any) -> None:
        self.decision = decision

    def update(self, **measurements: Any) -> Any:
        return self.decision


def run(trainer: Trainer, iterations: int = 2) -> tuple[list[dict], list[torch.Tensor]]:
    rows = [trainer.iteration() for _ in range(iterations)]
    return rows, [p.detach().clone() for p in trainer.policy_params]


def epoch_gradients(trainer: Trainer, micro: bool) -> tuple[list[torch.Tensor], dict[str, float]]:
    """The policy gradient of one PPO epoch on a fresh batch, the whole batch at once or in
    micro-batches of 3 + 3 + 2 sequences (the trainer's own steps, run by hand up to the
    backward)."""
    state = torch.get_rng_state()
    rollout = trainer._rollout()
    torch.set_rng_state(state)  # the next call samples the same batch
    scores, _ = trainer._score(rollout)
    view = trainer._view(rollout, scores)
    trainer._control(view)
    advantages, _ = trainer._advantages(rollout, scores, view)
    loss = EpochLoss(
        view.old.logp,
        view.reference_logp,
        advantages,
        1.0,
        trainer.decision,
        trainer.config,
        trainer.ent_coef,
    )
    trainer.policy_optimizer.zero_grad(set_to_none=True)
    if micro:
        chunks = [slice(0, 3), slice(3, 6), slice(6, 8)]
        forward = functools.partial(trainer._forward_rows, trainer.policy)
        _, terms = micro_batch_gradient(
            loss, rollout, chunks, forward, trainer.policy, trainer.policy_params
        )
    else:
        terms = whole_batch_gradient(loss, rollout, trainer._forward_rows(trainer.policy, rollout))
    return [p.grad.clone() for p in trainer.policy_params], terms


def assert_same_gradient(trainer: Trainer) -> None:
    prompts = trainer.prompt_sampler.bit_generator.state
    whole, whole_terms = epoch_gradients(trainer, micro=False)
    trainer.prompt_sampler.bit_generator.state = prompts
    micro, micro_terms = epoch_gradients(trainer, micro=True)
    for key, value in whole_terms.items():
        assert micro_terms[key] == pytest.approx(value, rel=1e-5, abs=1e-8), key
    scale = max(float(g.abs().max()) for g in whole)
    assert scale > 0.0
    for a, b in zip(whole, micro, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6 * scale)


@pytest.mark.parametrize("algo", [registry.DEFAULT, "fixed-kl", "safe"])
def test_micro_batches_run_the_whole_batch_iteration(tiny, tmp_path, algo):
    """Uneven micro-batches (3 + 3 + 2 sequences) run the iterations of the whole batch: the
    default's predicted step limit (the same schedule of predicted, checked and previewed
    steps), a plain β, SAFE's previewed step. (The weights after AdamW
    are not compared: it divides each gradient by its own size, so a parameter whose gradient
    is rounding noise moves by the learning rate either way.)"""
    settings = {"algo": algo, "lr": 0.05}  # kl-budget's step limit binds: scales 0.09-0.57
    whole, _ = run(Trainer(config(tiny, tmp_path / "whole", **settings)), 4)
    micro, _ = run(Trainer(config(tiny, tmp_path / "micro", micro_batch_size=3, **settings)), 4)
    # Rounding differences (1e-7 at the first iteration) grow under AdamW at this learning rate
    # to ~2e-4 by the fourth; another schedule of steps differs by percents (0.92 against 0.98).
    for row_a, row_b in zip(whole, micro, strict=True):
        for key in COMPARED:
            assert row_b[key] == pytest.approx(row_a[key], rel=1e-3, abs=1e-6), key
        for key in ("step_scale", "step_scale_min"):  # the same predictions and previews
            assert row_b[key] == pytest.approx(row_a[key], rel=1e-3), key
    if algo == registry.DEFAULT:  # its limit binds (SAFE's 0.5 nats does not, here)
        assert min(row["step_scale_min"] for row in whole) < 0.9


@pytest.mark.parametrize("algo", [registry.DEFAULT, "fixed-kl"])
def test_micro_batches_accumulate_the_whole_batch_gradient(tiny, tmp_path, algo):
    trainer = Trainer(config(tiny, tmp_path / "run", algo=algo, micro_batch_size=3))
    trainer.iteration()  # away from the reference, where the KL's gradient is zero
    assert_same_gradient(trainer)


def test_micro_batches_accumulate_the_whole_batch_gradient_under_an_active_hinge(tiny, tmp_path):
    """SAFE's dead-band hinge is not linear in the KL: its slope at the batch's live KL is known
    only after the last micro-batch, so its gradient is accumulated apart and scaled then. With
    the threshold below every KL the hinge acts; a large coefficient makes it count."""
    trainer = Trainer(config(tiny, tmp_path / "run", algo="safe", micro_batch_size=3))
    trainer.iteration()
    active = dataclasses.replace(
        trainer.controller.decision, threshold=-0.05, gate=1.0, penalty_coef=50.0
    )
    trainer.controller = FixedDecision(active)
    assert_same_gradient(trainer)
    # and the hinge's share counts: switched off, the same batch gives another gradient
    prompts = trainer.prompt_sampler.bit_generator.state
    hinge, _ = epoch_gradients(trainer, micro=True)
    trainer.prompt_sampler.bit_generator.state = prompts
    trainer.controller = FixedDecision(dataclasses.replace(active, threshold=1e9))
    without, _ = epoch_gradients(trainer, micro=True)
    assert not all(torch.allclose(a, b) for a, b in zip(hinge, without, strict=True))


def test_bfloat16_autocast_keeps_float32_weights_and_statistics(tiny, tmp_path):
    full = Trainer(config(tiny, tmp_path / "fp32"))
    half = Trainer(config(tiny, tmp_path / "bf16", dtype="bfloat16"))
    rows_full, _ = run(full, 1)
    rows_half, params = run(half, 1)
    assert all(p.dtype == torch.float32 for p in params)
    assert all(
        state.dtype == torch.float32
        for group in half.policy_optimizer.state.values()
        for state in group.values()
        if isinstance(state, torch.Tensor) and state.is_floating_point()
    )
    row = rows_half[0]
    assert all(isinstance(v, float) for v in row.values() if isinstance(v, float))
    # the same first batch's statistics, to bfloat16's precision (≈ 3 significant digits) ...
    assert row["entropy"] == pytest.approx(rows_full[0]["entropy"], rel=0.05)
    # ... from forwards that really ran in bfloat16
    assert row["policy_loss"] != rows_full[0]["policy_loss"]


def test_forwards_run_in_bfloat16_under_autocast_and_return_float32(tiny, tmp_path):
    trainer = Trainer(config(tiny, tmp_path / "bf16", dtype="bfloat16"))
    seen: list[torch.dtype] = []
    layer = next(m for m in trainer.policy.modules() if type(m).__name__ == "Conv1D")
    layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    rollout = trainer._rollout()
    forward = trainer._forward(trainer.policy, rollout)
    assert torch.bfloat16 in seen
    assert forward.logits.dtype == forward.logp.dtype == torch.float32
    heads, value = trainer._critic(trainer.critic, forward.hidden)
    assert heads.dtype == value.dtype == torch.float32


def test_cpu_named_is_the_cpu_auto_picks_here(tiny, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("auto picks CUDA on this machine")
    auto, _ = run(Trainer(config(tiny, tmp_path / "auto")), 1)
    cpu, _ = run(Trainer(config(tiny, tmp_path / "cpu", device="cpu")), 1)
    timing = ("seconds_", "tokens_per_second")
    assert [{k: v for k, v in r.items() if not k.startswith(timing)} for r in auto] == [
        {k: v for k, v in r.items() if not k.startswith(timing)} for r in cpu
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("device", "gpu", "device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
        ("device", "cuda:x", "device must be"),
        ("dtype", "float16", "dtype must be one of"),
        ("micro_batch_size", -1, "micro_batch_size must be >= 0, got -1"),
    ],
)
def test_bad_device_dtype_or_micro_batch_is_refused_naming_it(
    tiny, tmp_path, field, value, message
):
    with pytest.raises(ValueError, match=message):
        config(tiny, tmp_path / "run", **{field: value})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_is_refused_where_there_is_none_before_anything_is_written(tiny, tmp_path, name):
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match=f"device='{name}' but torch.cuda.is_available"):
        train(config(tiny, tmp_path / "run", device=name), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_resumes_with_another_micro_batch_size(tiny, tmp_path):
    run_dir = tmp_path / "run"
    train(config(tiny, run_dir, steps=1), progress=False)
    train(config(tiny, run_dir, steps=2, micro_batch_size=2), resume=True, progress=False)
    assert checkpoint.load(run_dir / "checkpoint.pt")["step"] == 2
