"""SAFE's preview step scaling measures KL(before ‖ after), the divergence of the step it limits."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from scipy.special import rel_entr  # noqa: E402
from tiny_lm import build_tiny  # noqa: E402

from reference_trainer.config import TrainConfig  # noqa: E402
from reference_trainer.rollout import sample  # noqa: E402
from reference_trainer.train import Trainer  # noqa: E402
from safecontrol.torch import exact_kl_per_token, kl_per_token  # noqa: E402


def brute_force_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> np.ndarray:
    """Σ_v p log(p/q) in float64 by the textbook definition (scipy's rel_entr: 0·log 0 = 0)."""
    p = torch.softmax(logits_p.double(), -1).numpy()
    q = torch.softmax(logits_q.double(), -1).numpy()
    return rel_entr(p, q).sum(-1)


def test_exact_kl_per_token_equals_the_definition_including_blocked_tokens():
    generator = torch.Generator().manual_seed(0)
    p = torch.randn(3, 5, 11, generator=generator) * 3
    q = torch.randn(3, 5, 11, generator=generator) * 3
    p[:, :2, 4] = float("-inf")  # EOS blocked under both policies: probability 0 in each
    q[:, :2, 4] = float("-inf")
    got = exact_kl_per_token(p, q)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), brute_force_kl(p, q), rtol=1e-4, atol=1e-6)


def test_preview_reads_the_exact_kl_of_the_step_from_before_to_after(tmp_path):
    tiny = build_tiny(tmp_path / "tiny")
    config = TrainConfig(
        algo="safe",
        model=str(tiny),
        run_dir=str(tmp_path / "run"),
        batch_size=8,
        max_new_tokens=6,
        min_new_tokens=2,
        threads=1,
        lr=0.3,  # a big step, where KL(before‖after) and KL(after‖before) part
        controller_settings={"max_preview_kl": 1e9},  # measure, never shrink
    )
    trainer = Trainer(config)
    torch.manual_seed(0)
    rollout = sample(trainer.policy, trainer.tokenizer, trainer.prompts[:8], 6, 2, 1.0)
    before = trainer._forward(trainer.policy, rollout)
    trainer.policy_optimizer.zero_grad()
    (-before.logp[rollout.response_mask].sum()).backward()
    scale, preview, _, _ = trainer._policy_step(rollout, before, False, False)
    assert scale == 1.0
    with torch.no_grad():
        after = trainer._forward(trainer.policy, rollout)
    mask = rollout.response_mask.numpy()
    forward = brute_force_kl(before.logits.detach(), after.logits)[mask].mean()
    reverse = brute_force_kl(after.logits, before.logits.detach())[mask].mean()
    # What the trainer used to read: k3 of KL(after‖before), on tokens sampled from *before*.
    wrong = kl_per_token(after.logp, before.logp.detach(), "k3")[rollout.response_mask].mean()
    assert float(wrong) > 10 * forward  # here 63 nats against 1.8: steps were shrunk ~35-fold
    assert preview == pytest.approx(forward, rel=1e-4)
    assert preview != pytest.approx(reverse, rel=0.05)
