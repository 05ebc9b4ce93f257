"""SafeBetaCallback's state on the real TRL GRPOTrainer: every bad field, corrupt file and foreign
state is refused naming it and changes nothing; older formats still load; saves are atomic."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("trl")

from integrations.trl_tiny import MOVING_SAFE, LenientController, make_trainer, tiny_model_dir
from trl import GRPOConfig, GRPOTrainer

from safecontrol import AdaptiveKL, EntropyTargetController, FixedKL, SafeController
from safecontrol.integrations.trl import (
    CHECKPOINT_FILE,
    MEAN_LENGTH,
    STATE_FORMAT_VERSION,
    SafeBetaCallback,
)


@pytest.fixture(scope="module")
def idle_trainer(tmp_path_factory: pytest.TempPathFactory) -> GRPOTrainer:
    model_dir = tiny_model_dir(tmp_path_factory)
    return make_trainer(model_dir, tmp_path_factory.mktemp("idle"))


def _advanced_state(trainer: GRPOTrainer) -> dict[str, Any]:
    """A valid state other than a fresh callback's: three updates, values pending."""
    source = SafeBetaCallback(trainer, SafeController(MOVING_SAFE))
    for i in range(3):
        source.controller.update(kl=0.01 * i, entropy=2.0, reward=0.1 * i, n_steps=4)
    source.measurements.pending = {"kl": [0.02], "entropy": [1.9], "reward": [], MEAN_LENGTH: []}
    source._global_step = 6
    trainer.beta = source.beta  # as a restore sets it
    return source.state_dict()


def _set(path: tuple[str, ...], value: Any):
    def mutate(state: dict[str, Any]) -> None:
        for key in path[:-1]:
            state = state[key]
        if value is _DELETE:
            del state[path[-1]]
        else:
            state[path[-1]] = value

    return mutate


_DELETE = object()
BAD_FIELDS = {
    "rollouts=-1": (_set(("rollouts",), -1), "rollouts"),
    "rollouts=1.5": (_set(("rollouts",), 1.5), "rollouts"),
    "rollouts=True": (_set(("rollouts",), True), "rollouts"),
    "rollouts='1'": (_set(("rollouts",), "1"), "rollouts"),
    "global_step=-1": (_set(("global_step",), -1), "global_step"),
    "global_step=None": (_set(("global_step",), None), "global_step"),
    "beta=nan": (_set(("beta",), float("nan")), "beta"),
    "min_beta=0": (_set(("min_beta",), 0.0), "min_beta"),
    "kl nan": (_set(("pending", "kl"), [0.01, float("nan")]), r"pending\['kl'\]\[1\]"),
    "entropy inf": (_set(("pending", "entropy"), [float("inf")]), r"pending\['entropy'\]\[0\]"),
    "reward nan": (_set(("pending", "reward"), [float("nan")]), r"pending\['reward'\]\[0\]"),
    "reward string": (_set(("pending", "reward"), ["0.5"]), r"pending\['reward'\]\[0\]"),
    "reward bool": (_set(("pending", "reward"), [True]), r"pending\['reward'\]\[0\]"),
    "kl a string": (_set(("pending", "kl"), "0.5"), r"pending\['kl'\]"),
    "pending a list": (_set(("pending",), [[0.1], [2.0], []]), "pending"),
    "pending lacks reward": (_set(("pending", "reward"), _DELETE), "reward"),
    "pending extra key": (_set(("pending", "loss"), [1.0]), "loss"),
    "mean length nan": (_set(("pending", MEAN_LENGTH), [float("nan")]), "mean_length"),
    "pending lacks mean length": (_set(("pending", MEAN_LENGTH), _DELETE), "mean_length"),
    # values of the right type but out of the range TRL's metrics take loaded,
    # and the next rollout's update then failed blaming TRL's measurement.
    "entropy negative": (_set(("pending", "entropy"), [-0.1]), r"pending\['entropy'\]\[0\]"),
    "mean length 0": (_set(("pending", MEAN_LENGTH), [0.0]), r"mean_length'\]\[0\] must be > 0"),
    "k3 kl negative": (_set(("pending", "kl"), [0.01, -0.01]), r"pending\['kl'\]\[1\].*k3"),
    "kl 1e300": (_set(("pending", "kl"), [1e300]), r"pending\['kl'\]\[0\].*magnitude"),
    "reward -1e300": (_set(("pending", "reward"), [-1e300]), r"pending\['reward'\]\[0\]"),
    "rollouts 2**60": (_set(("rollouts",), 2**60), "rollouts"),
    "rewards beyond rollouts": (
        _set(("pending", "reward"), [0.5]),
        r"pending\['reward'\].*rollouts 0",
    ),
    "lengths beyond rollouts": (
        _set(("pending", MEAN_LENGTH), [9.0]),
        r"mean_length'\].*rollouts 0",
    ),
    "min_beta differs": (_set(("min_beta",), 1e-4), r"min_beta 0\.0001 .*min_beta=1e-06"),
    "format_version=4": (_set(("format_version",), 4), "format_version"),
    "format_version=True": (_set(("format_version",), True), "format_version"),
    "no rollouts": (_set(("rollouts",), _DELETE), "rollouts"),
    "unknown key": (_set(("extra",), 1), "extra"),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_restore_refuses_a_bad_field_naming_it_and_changes_nothing(idle_trainer, case):
    mutate, field = BAD_FIELDS[case]
    state = _advanced_state(idle_trainer)
    callback = SafeBetaCallback(idle_trainer, SafeController(MOVING_SAFE))
    callback.load_state_dict(json.loads(json.dumps(state)))  # the state itself is fine
    assert callback.state_dict() == state
    fresh = SafeBetaCallback(idle_trainer, SafeController(MOVING_SAFE))
    before, beta = fresh.state_dict(), idle_trainer.beta
    mutate(state)
    with pytest.raises(ValueError, match=field):
        fresh.load_state_dict(state)
    assert fresh.state_dict() == before and idle_trainer.beta == beta


def test_a_format_1_state_loads_with_no_pending_lengths(idle_trainer):
    """States written before the mean length was collected (format 1) still restore."""
    state = _advanced_state(idle_trainer)
    del state["pending"][MEAN_LENGTH]
    state["format_version"] = 1
    callback = SafeBetaCallback(idle_trainer, SafeController(MOVING_SAFE))
    callback.load_state_dict(json.loads(json.dumps(state)))
    restored = callback.state_dict()
    assert restored["format_version"] == STATE_FORMAT_VERSION
    assert restored["pending"] == {**state["pending"], MEAN_LENGTH: []}
    assert restored["controller"] == state["controller"]
    state["pending"][MEAN_LENGTH] = []  # a format-1 state never had the list
    with pytest.raises(ValueError, match="mean_length"):
        callback.load_state_dict(state)


def test_a_per_sequence_controller_without_a_logged_length_is_refused_changing_nothing(
    idle_trainer,
):
    callback = SafeBetaCallback(idle_trainer, AdaptiveKL())
    callback.measurements.pending = {
        "kl": [0.01],
        "entropy": [1.0],
        "reward": [0.5],
        MEAN_LENGTH: [],
    }
    callback.measurements.rollouts = 1
    before = callback.state_dict()
    with pytest.raises(RuntimeError, match=r"completions/mean_length.*per_sequence"):
        callback._update()
    assert callback.state_dict() == before


def test_restore_is_all_or_nothing_when_the_restored_decision_is_refused(idle_trainer):
    callback = SafeBetaCallback(idle_trainer, LenientController())
    before, beta = callback.state_dict(), idle_trainer.beta
    state = json.loads(json.dumps(before))
    state["pending"]["kl"], state["global_step"] = [0.5], 3
    state["controller"] = {"coef": float("nan")}  # accepted by the controller, not as a beta
    with pytest.raises(ValueError, match="coef"):
        callback.load_state_dict(state)
    assert callback.controller.coef == 0.1
    assert callback.state_dict() == before and idle_trainer.beta == beta


CORRUPT_FILES = {
    "truncated": b'{"format_version": 1, "type": "SafeBe',
    "empty": b"",
    "binary": b"\xff\xfe\x00garbage",
    "not an object": b"[1, 2, 3]",
    "fields wrong": json.dumps({"format_version": 1, "type": "SafeBetaCallback"}).encode(),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_FILES))
def test_a_corrupt_state_file_is_refused_naming_the_file_and_changes_nothing(
    idle_trainer, tmp_path, case
):
    (tmp_path / CHECKPOINT_FILE).write_bytes(CORRUPT_FILES[case])
    callback = SafeBetaCallback(idle_trainer, SafeController(MOVING_SAFE))
    before, beta = callback.state_dict(), idle_trainer.beta
    with pytest.raises(ValueError, match="corrupt") as error:
        callback.load_checkpoint(tmp_path)
    assert str(tmp_path / CHECKPOINT_FILE) in str(error.value)
    assert callback.state_dict() == before and idle_trainer.beta == beta
    assert callback._restored_step is None  # a later train() does not expect a restored step


def test_a_failed_save_leaves_the_previous_state_file_whole(idle_trainer, tmp_path):
    class Unsaveable(LenientController):
        def state_dict(self) -> dict[str, Any]:
            return {"coef": self.coef, "oops": object()}  # json.dump fails midway

    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    (folder / CHECKPOINT_FILE).write_text('{"old": true}')
    callback = SafeBetaCallback(idle_trainer, Unsaveable())
    args = SimpleNamespace(should_save=True, output_dir=str(tmp_path))
    with pytest.raises(TypeError, match=r"could not write .*checkpoint-3.*not JSON serializable"):
        callback.on_save(args, SimpleNamespace(global_step=3), None)
    assert (folder / CHECKPOINT_FILE).read_text() == '{"old": true}'
    assert sorted(p.name for p in folder.iterdir()) == [CHECKPOINT_FILE]  # no temporary left


def test_state_for_another_controller_config_is_refused_and_changes_nothing(idle_trainer):
    callback = SafeBetaCallback(idle_trainer, SafeController(MOVING_SAFE))
    other = SafeBetaCallback(idle_trainer, "safe")  # SAFE at its defaults: another config
    before = callback.state_dict()
    with pytest.raises(ValueError, match="config differs"):
        callback.load_state_dict(other.state_dict())
    assert callback.state_dict() == before


ENTROPY_BONUS = "entropy_coef" in GRPOConfig.__dataclass_fields__
"""GRPO's entropy bonus exists (trl >= 1.8)."""


@pytest.fixture(scope="module")
def idle_trainers(
    idle_trainer: GRPOTrainer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    model_dir = tiny_model_dir(tmp_path_factory)
    trainers = {
        "grpo": idle_trainer,
        "rloo": make_trainer(model_dir, tmp_path_factory.mktemp("idle_rloo"), kind="rloo"),
    }
    if ENTROPY_BONUS:
        trainers["grpo+entropy"] = make_trainer(
            model_dir, tmp_path_factory.mktemp("idle_entropy"), entropy_coef=0.01
        )
    return trainers


def _callback(trainers: dict[str, Any], kind: str, **kwargs: Any) -> SafeBetaCallback:
    if kind not in trainers:
        pytest.skip("GRPOConfig has no entropy_coef before trl 1.8")
    if kind == "grpo+entropy":
        kwargs["entropy_controller"] = EntropyTargetController(target=1.0)
    return SafeBetaCallback(trainers[kind], FixedKL(0.02), **kwargs)


@pytest.mark.parametrize("kind", ["grpo", "rloo", "grpo+entropy"])
def test_every_trainer_refuses_pending_values_out_of_range_and_another_min_beta(
    idle_trainers, kind
):
    """For each trainer the callback drives: the ranges of TRL's metrics (a k1 KL may be
    negative: RLOO's loads) and the min_beta the state was saved with."""
    source = _callback(idle_trainers, kind)
    kl = -0.01 if kind == "rloo" else 0.01
    source.measurements.pending = {"kl": [kl], "entropy": [1.0], "reward": [], MEAN_LENGTH: []}
    state = json.loads(json.dumps(source.state_dict()))
    cases = {
        "entropy": {"entropy": [-1.0]},
        "mean_length": {MEAN_LENGTH: [0.0]},
        "reward": {"reward": [1e300]},
    }
    if kind != "rloo":
        cases["k3 KL"] = {"kl": [-0.01]}
    for field, change in cases.items():
        bad = copy.deepcopy(state)
        bad["pending"].update(change)
        target = _callback(idle_trainers, kind)
        before = target.state_dict()
        with pytest.raises(ValueError, match=field):
            target.load_state_dict(bad)
        assert target.state_dict() == before
    other = _callback(idle_trainers, kind, min_beta=1e-3)
    with pytest.raises(ValueError, match="min_beta"):
        other.load_state_dict(copy.deepcopy(state))
    if kind == "rloo":  # RLOO's k1 KL per token may be negative
        restored = _callback(idle_trainers, kind)
        restored.load_state_dict(state)
        assert restored.state_dict()["pending"]["kl"] == [-0.01]
