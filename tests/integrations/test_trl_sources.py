"""Where SafeBetaCallback reads TRL's measurements, on the real GRPOTrainer: TRL's metric lists
(the fast path) or the logs passed to ``on_log`` (the public path, forced by ``source="logs"`` or
taken when the lists lack a key), with the same decisions when ``logging_steps=1``."""

from __future__ import annotations

import warnings
from collections import defaultdict, deque
from typing import Any

import pytest

pytest.importorskip("trl")

from integrations.trl_tiny import (
    MOVING_SAFE,
    attach_with_probe,
    make_trainer,
    step_logs,
    tiny_model_dir,
)

from safecontrol import AdaptiveKL, SafeController
from safecontrol.integrations.trl import MEAN_LENGTH
from safecontrol.integrations.trl_measurements import logged_measurements, rollouts_generated


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_model_dir(tmp_path_factory)


class RecordingAdaptiveKL(AdaptiveKL):
    """AdaptiveKL that records the arguments of each update."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict[str, Any]] = []

    def update(self, **kwargs: Any):
        self.calls.append(kwargs)
        return super().update(**kwargs)


def run(model_dir: str, out: Any, source: str, hide_lists: bool = False) -> dict[str, Any]:
    trainer = make_trainer(model_dir, out)
    if hide_lists:  # a TRL keeping its per-batch values in another container than lists
        trainer._metrics["train"] = defaultdict(deque)
    callback, probe = attach_with_probe(trainer, SafeController(MOVING_SAFE), source=source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    ours = [str(w.message) for w in caught if "SafeBetaCallback" in str(w.message)]
    return {"trainer": trainer, "callback": callback, "probe": probe, "warnings": ours}


@pytest.fixture(scope="module")
def lists_run(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run(model_dir, tmp_path_factory.mktemp("lists"), "auto")


def test_trls_metric_lists_are_the_default_source(lists_run):
    assert lists_run["callback"].measurements.source == "metrics"
    assert lists_run["warnings"] == []


@pytest.mark.parametrize("how", ["source='logs'", "lists without the keys"])
def test_the_logs_path_with_logging_steps_1_makes_the_decisions_of_the_fast_path(
    lists_run, model_dir, tmp_path, how
):
    logs_run = run(model_dir, tmp_path, *(("logs",) if how == "source='logs'" else ("auto", True)))
    assert logs_run["callback"].measurements.source == "logs"
    fast = [(s, b, d.as_dict()) for s, b, d in lists_run["probe"].steps]
    assert [(s, b, d.as_dict()) for s, b, d in logs_run["probe"].logged] == fast
    assert len({b for _, b, _ in fast}) > 1  # beta moved
    logs = step_logs(logs_run["trainer"])
    for step, beta, decision in logs_run["probe"].logged:
        assert logs[step]["safe/beta"] == beta  # the log carries the decision it caused
        assert logs[step]["safe/gate"] == decision.gate
        assert decision.kl == logs[step]["kl"]
    if how == "source='logs'":
        assert logs_run["warnings"] == []
    else:
        [warning] = logs_run["warnings"]  # once, naming what is missing
        assert "['kl', 'entropy', 'reward', 'completions/mean_length']" in warning


def test_the_logs_path_updates_once_per_logging_step(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path, logging_steps=2)
    controller = RecordingAdaptiveKL(init_coef=0.05, target=1e-3, horizon=100)
    callback, probe = attach_with_probe(trainer, controller, source="logs")
    trainer.train()
    logs = step_logs(trainer)
    assert sorted(logs) == [2, 4]
    first, second = controller.calls
    for call, step in ((first, 2), (second, 4)):
        assert call["kl"] == logs[step]["kl"]  # the window's mean, as TRL logged it
        assert call["tokens_per_sequence"] == logs[step][MEAN_LENGTH]
        assert call["n_steps"] == 2 * trainer.args.generation_batch_size  # two rollout batches
    # Beta holds through each window and changes at its log.
    betas = [b for _, b, _ in probe.steps]
    assert betas[0] == betas[1] == 0.05 and betas[2] == betas[3] == logs[2]["safe/beta"] != 0.05
    assert trainer.beta == logs[4]["safe/beta"] == max(controller.decision.coef, callback.min_beta)


def test_the_logs_path_counts_reused_rollouts_as_the_fast_path_does(model_dir, tmp_path):
    trainer = make_trainer(model_dir, tmp_path, num_iterations=2)
    controller = RecordingAdaptiveKL(init_coef=0.05, target=1e-4, horizon=100)
    attach_with_probe(trainer, controller, source="logs")
    trainer.train()
    logs = step_logs(trainer)
    first, second = controller.calls  # rollouts at steps 1 and 3, none at 2 and 4
    assert first["kl"] == logs[1]["kl"]
    assert second["kl"] == (logs[2]["kl"] + logs[3]["kl"]) / 2  # step 2's KL carried over
    assert second["tokens_per_sequence"] == logs[3][MEAN_LENGTH]
    assert first["n_steps"] == second["n_steps"] == trainer.args.generation_batch_size


@pytest.mark.parametrize(
    ("first", "end", "every", "expected"),
    [
        (0, 1, 1, 1),
        (0, 4, 1, 4),
        (0, 1, 2, 1),
        (1, 2, 2, 0),
        (2, 3, 2, 1),
        (0, 8, 4, 2),
        (3, 9, 4, 2),
    ],
)
def test_rollouts_generated_counts_the_multiples_of_every_in_the_range(first, end, every, expected):
    assert rollouts_generated(first, end, every) == expected
    assert expected == sum(1 for i in range(first, end) if i % every == 0)


def test_logged_measurements_ignore_evaluation_and_summary_logs_and_unscorable_rewards():
    assert logged_measurements({"eval_kl": 0.1, "eval_loss": 1.0}) is None
    assert logged_measurements({"train_runtime": 3.0, "train_loss": 0.1}) is None
    assert logged_measurements(None) is None
    logged = {"kl": 0.1, "entropy": 2.0, "reward": None, "loss": 0.0}  # every reward unscorable
    assert logged_measurements(logged) == {"kl": 0.1, "entropy": 2.0}
    logged = {"kl": 0.1, "entropy": 2.0, "reward": float("nan"), MEAN_LENGTH: 3.0}
    assert logged_measurements(logged) == {"kl": 0.1, "entropy": 2.0, MEAN_LENGTH: 3.0}
