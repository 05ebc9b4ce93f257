"""safecontrol.torch.distributed: sums and counts reduced together, on 2 gloo CPU processes."""

import json

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from gloo_workers import STEPS, WORLD_SIZE, _exact_global, _rank_batch, _worker  # noqa: E402

from safecontrol.torch import (  # noqa: E402
    global_masked_mean,
    global_means,
    global_measurements,
    global_sum,
    is_distributed,
    masked_mean,
)


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gloo")
    torch.multiprocessing.spawn(
        _worker, args=(str(tmp / "rendezvous"), str(tmp)), nprocs=WORLD_SIZE, join=True
    )
    results = []
    for rank in range(WORLD_SIZE):
        with open(tmp / f"rank{rank}.json") as f:
            results.append(json.load(f))
    return results


def test_every_rank_gets_the_exact_token_weighted_global_mean(two_rank_results):
    for result in two_rank_results:
        for step, record in enumerate(result["records"]):
            exact = _exact_global(step)
            for name in ("kl", "entropy", "reward"):
                assert record["stats"][name] == pytest.approx(exact[name], rel=1e-12, abs=1e-15)
            assert record["kl_tensor"] == pytest.approx(exact["kl"], rel=1e-12)


def test_the_global_mean_is_not_the_biased_mean_of_rank_means(two_rank_results):
    kl0, _, _, mask0 = _rank_batch(0, 0)
    kl1, _, _, mask1 = _rank_batch(0, 1)
    assert mask0.sum() != mask1.sum()
    mean_of_means = (masked_mean(kl0, mask0) + masked_mean(kl1, mask1)).item() / 2
    assert abs(two_rank_results[0]["records"][0]["stats"]["kl"] - mean_of_means) > 1e-3


def test_every_rank_takes_identical_controller_decisions(two_rank_results):
    first, second = two_rank_results
    assert first["records"] == second["records"]
    assert first["state"] == second["state"]
    assert any(r["decision"]["active"] for r in first["records"])


def test_global_sum_adds_over_ranks_and_empty_statistics_are_nan(two_rank_results):
    for result in two_rank_results:
        assert result["ranks"] == WORLD_SIZE
        assert result["empty_is_nan"]
    tokens = sum(_rank_batch(STEPS - 1, r)[3].sum().item() for r in range(WORLD_SIZE))
    assert two_rank_results[0]["tokens"] == tokens


def test_without_a_process_group_the_reductions_are_local():
    assert not is_distributed()
    kl, entropy, reward, mask = _rank_batch(3, 1)
    stats = global_measurements(kl=kl, entropy=entropy, reward=reward, mask=mask)
    assert stats["kl"] == pytest.approx(masked_mean(kl, mask).item(), rel=1e-12)
    assert stats["entropy"] == pytest.approx(masked_mean(entropy.double(), mask).item(), rel=1e-9)
    assert stats["reward"] == pytest.approx(reward.double().mean().item(), rel=1e-12)
    assert global_masked_mean(kl, mask).item() == pytest.approx(stats["kl"], rel=1e-12)
    x = torch.ones(3)
    assert torch.equal(global_sum(x), x) and global_sum(x) is not x
    assert global_masked_mean(kl, torch.zeros_like(mask)).item() == 0.0
    assert set(global_measurements(reward=reward)) == {"reward"}


def test_global_statistics_carry_no_gradient():
    x = torch.ones(4, requires_grad=True)
    assert not global_masked_mean(x).requires_grad
    assert not global_sum(x).requires_grad


def test_global_reductions_reject_bad_arguments():
    kl, _, _, mask = _rank_batch(0, 0)
    with pytest.raises(ValueError, match="kl mask"):
        global_measurements(kl=kl, mask=mask[:, :2])
    with pytest.raises(ValueError, match="at least one"):
        global_measurements()
    with pytest.raises(ValueError, match="at least one"):
        global_means()
    with pytest.raises(ValueError, match="reward"):
        global_means(reward=[1.0, 2.0])
