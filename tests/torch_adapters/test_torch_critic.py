"""safecontrol.torch.critic: soft-min value heads, SAFE's critic loss, the Polyak target."""

import copy
import math

import pytest

torch = pytest.importorskip("torch")

from safecontrol.torch import SoftMinCritic, critic_loss, polyak_update, soft_min  # noqa: E402


def _hidden(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_soft_min_lies_between_min_and_min_plus_alpha_log_n_and_below_the_mean():
    values = _hidden((200, 4), seed=1).double() * 3
    for alpha in (0.01, 0.3, 5.0):
        out = soft_min(values, alpha)
        lowest = values.min(-1).values
        upper = torch.minimum(lowest + alpha * math.log(4), values.mean(-1))
        assert (out >= lowest - 1e-12).all() and (out <= upper + 1e-12).all()


def test_soft_min_tends_to_min_and_mean_and_is_exact_when_heads_agree():
    values = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)
    assert soft_min(values, 1e-4).item() == pytest.approx(1.0, abs=1e-3)
    assert soft_min(values, 1e4).item() == pytest.approx(values.mean().item(), abs=1e-3)
    same = torch.full((5, 2), 0.7, dtype=torch.float64)
    torch.testing.assert_close(soft_min(same, 0.3), torch.full((5,), 0.7, dtype=torch.float64))


def test_soft_min_does_not_overflow_for_large_values():
    values = torch.tensor([[-1e4, -1e4 + 1.0], [1e4, 2e4]])
    out = soft_min(values, 0.3)
    assert torch.isfinite(out).all()
    assert out[1].item() == pytest.approx(1e4 + 0.3 * math.log(2), rel=1e-6)


def test_critic_returns_heads_on_the_last_axis_and_their_soft_min_per_token():
    critic = SoftMinCritic(16, n_heads=3, alpha=0.3)
    heads, value = critic(_hidden((2, 5, 16)))
    assert heads.shape == (2, 5, 3) and value.shape == (2, 5)
    torch.testing.assert_close(value, soft_min(heads, 0.3))


def test_each_head_is_linear_gelu_linear_after_a_shared_layernorm():
    critic = SoftMinCritic(32, n_heads=2)
    assert isinstance(critic.norm, torch.nn.LayerNorm)
    for head in critic.heads:
        first, act, last = head
        assert (first.in_features, first.out_features) == (32, 8)
        assert isinstance(act, torch.nn.GELU)
        assert (last.in_features, last.out_features) == (8, 1)
    hidden = _hidden((4, 32))
    normed = torch.nn.functional.layer_norm(hidden, (32,), critic.norm.weight, critic.norm.bias)
    heads, _ = critic(hidden)
    torch.testing.assert_close(heads[:, 1], critic.heads[1](normed).squeeze(-1))
    assert isinstance(SoftMinCritic(32, layernorm=False).norm, torch.nn.Identity)


def test_one_head_is_an_ordinary_value_head():
    critic = SoftMinCritic(8, n_heads=1)
    heads, value = critic(_hidden((3, 4, 8)))
    assert heads.shape == (3, 4, 1)
    assert torch.equal(value, heads[..., 0])


def test_last_token_scores_the_last_unmasked_position_for_either_padding():
    critic = SoftMinCritic(8)
    hidden = _hidden((3, 5, 8))
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    heads, value = critic(hidden, mask=mask, last_token=True)
    assert heads.shape == (3, 2) and value.shape == (3,)
    per_token_heads, per_token_value = critic(hidden)
    torch.testing.assert_close(value, per_token_value[[0, 1, 2], [2, 4, 4]])
    torch.testing.assert_close(heads, per_token_heads[[0, 1, 2], [2, 4, 4]])
    _, unmasked = critic(hidden, last_token=True)
    torch.testing.assert_close(unmasked, per_token_value[:, -1])


def test_critic_gradients_reach_every_head_and_the_layernorm():
    critic = SoftMinCritic(8, n_heads=2)
    _, value = critic(_hidden((2, 3, 8)))
    value.sum().backward()
    for name, p in critic.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_critic_rejects_bad_arguments():
    for kwargs, name in [
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": 8, "n_heads": 0}, "n_heads"),
        ({"hidden_size": 8, "alpha": 0.0}, "alpha"),
    ]:
        with pytest.raises(ValueError, match=name):
            SoftMinCritic(**kwargs)
    critic = SoftMinCritic(8)
    with pytest.raises(ValueError, match="hidden_size"):
        critic(_hidden((2, 7)))
    with pytest.raises(ValueError, match="mask"):
        critic(_hidden((2, 3, 8)), mask=torch.ones(3, 2), last_token=True)


def _huber(x, delta):
    x = abs(x)
    return 0.5 * x * x if x <= delta else delta * (x - 0.5 * delta)


def test_critic_loss_is_the_mean_of_huber_and_clipped_huber():
    values = torch.tensor([0.0, 1.0, 2.0, -1.0], dtype=torch.float64)
    old = torch.tensor([0.5, 0.0, 2.1, 1.0], dtype=torch.float64)
    targets = torch.tensor([0.2, 3.0, 2.0, 0.9], dtype=torch.float64)
    expected = []
    for v, o, r in zip(values.tolist(), old.tolist(), targets.tolist(), strict=True):
        clipped = o + min(max(v - o, -0.2), 0.2)
        expected.append(0.5 * (_huber(v - r, 0.5) + _huber(clipped - r, 0.5)))
    out = critic_loss(values, old, targets)
    assert out.item() == pytest.approx(sum(expected) / 4, rel=1e-12)
    plain = sum(_huber(v - r, 0.5) for v, r in zip(values.tolist(), targets.tolist(), strict=True))
    assert critic_loss(values, old, targets, clip=None).item() == pytest.approx(plain / 4)


def test_critic_loss_masks_tokens_and_broadcasts_targets_over_heads():
    values = _hidden((2, 4, 3), seed=2).double()
    old = values + 0.3 * _hidden((2, 4, 3), seed=3).double()
    targets = _hidden((2, 4), seed=4).double()
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    out = critic_loss(values, old, targets, mask=mask)
    per_head = [
        critic_loss(values[..., i], old[..., i], targets, mask=mask).item() for i in range(3)
    ]
    assert out.item() == pytest.approx(sum(per_head) / 3, rel=1e-12)
    garbage = values.clone()
    garbage[mask == 0] = 1e6
    assert critic_loss(garbage, old, targets, mask=mask).item() == pytest.approx(out.item())


def test_critic_loss_passes_gradcheck_in_float64():
    values = (_hidden((3, 4), seed=5).double()).requires_grad_(True)
    old = values.detach() + 0.1 * _hidden((3, 4), seed=6).double()
    targets = _hidden((3, 4), seed=7).double()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    assert torch.autograd.gradcheck(lambda v: critic_loss(v, old, targets, mask=mask), (values,))


def test_critic_loss_rejects_bad_arguments():
    v = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="old_values"):
        critic_loss(v, torch.zeros(3, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="targets"):
        critic_loss(v, v, torch.zeros(3))
    with pytest.raises(ValueError, match="clip"):
        critic_loss(v, v, v, clip=-0.1)
    with pytest.raises(ValueError, match="huber_delta"):
        critic_loss(v, v, v, huber_delta=0.0)
    with pytest.raises(ValueError, match="mask"):
        critic_loss(v, v, v, mask=torch.ones(3))


def test_polyak_update_moves_the_target_a_fraction_tau_toward_the_online_critic():
    online = SoftMinCritic(8)
    target = copy.deepcopy(online)
    before = {k: t.clone() for k, t in target.state_dict().items()}
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    polyak_update(target, online, tau=0.05)
    for name, tensor in target.state_dict().items():
        expected = 0.95 * before[name] + 0.05 * online.state_dict()[name]
        torch.testing.assert_close(tensor, expected)
    polyak_update(target, online, tau=1.0)
    for name, tensor in target.state_dict().items():
        assert torch.equal(tensor, online.state_dict()[name])


def test_polyak_update_copies_integer_buffers_and_tracks_no_gradient():
    online, target = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    online(torch.randn(4, 3))
    polyak_update(target, online, tau=0.5)
    assert target.num_batches_tracked.item() == 1
    assert all(p.grad_fn is None for p in target.parameters())


def test_polyak_update_rejects_bad_tau_and_mismatched_modules():
    a, b = SoftMinCritic(8), SoftMinCritic(8)
    for tau in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="tau"):
            polyak_update(a, b, tau)
    with pytest.raises(ValueError, match="target"):
        polyak_update(a, SoftMinCritic(8, n_heads=3), 0.1)
    with pytest.raises(ValueError, match="shape"):
        polyak_update(a, SoftMinCritic(12), 0.1)


def test_soft_min_rejects_bad_alpha_values_and_dim_naming_them():
    values = torch.zeros(3, 2)
    for alpha in (0.0, -1.0, math.nan, math.inf, None, "0.3", True):
        with pytest.raises(ValueError, match="alpha"):
            soft_min(values, alpha)
    for bad in ([1.0, 2.0], torch.tensor(1.0), torch.zeros(3, 0)):
        with pytest.raises(ValueError, match="values"):
            soft_min(bad, 0.3)
    for dim in (2, -3, 1.0, True, None):
        with pytest.raises(ValueError, match="dim"):
            soft_min(values, 0.3, dim=dim)


def test_soft_min_gradient_is_the_softmax_weights_and_infinite_heads_give_their_limit():
    values = torch.tensor([[0.1, 0.5, -0.2]], dtype=torch.float64, requires_grad=True)
    soft_min(values, 0.3).sum().backward()
    torch.testing.assert_close(values.grad, torch.softmax(values.detach() / -0.3, dim=-1))
    out = soft_min(torch.tensor([[-math.inf, 1.0], [math.inf, math.inf], [math.inf, 1.0]]), 0.3)
    assert out[0] == -math.inf and out[1] == math.inf
    assert out[2].item() == pytest.approx(1.0 + 0.3 * math.log(2))


def test_critic_flags_must_be_bools():
    for bad in ("false", 0, None):
        with pytest.raises(ValueError, match="layernorm"):
            SoftMinCritic(8, layernorm=bad)
        with pytest.raises(ValueError, match="last_token"):
            SoftMinCritic(8)(_hidden((2, 3, 8)), last_token=bad)


def test_refused_polyak_update_changes_no_parameter():
    target, online = SoftMinCritic(8, n_heads=2), SoftMinCritic(8, n_heads=2)
    online.heads[1][2] = torch.nn.Linear(2, 2)  # its last layer alone has another shape
    before = copy.deepcopy(target.state_dict())
    with pytest.raises(ValueError, match=r"heads\.1\.2\.weight"):
        polyak_update(target, online, 0.5)
    for name, tensor in target.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_polyak_update_takes_an_online_module_of_another_float_dtype():
    target, online = SoftMinCritic(8), SoftMinCritic(8).double()
    expected = {
        name: tensor.lerp(online.state_dict()[name].float(), 0.25)
        for name, tensor in target.state_dict().items()
    }
    polyak_update(target, online, 0.25)
    for name, tensor in target.state_dict().items():
        assert tensor.dtype == torch.float32
        torch.testing.assert_close(tensor, expected[name])
