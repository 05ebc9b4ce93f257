"""safecontrol.integrations.verl_plugin against the real verl package (0.9.1, CPU): the opt-in
``verl.plugins`` entry point, verl's own controller factory, ``apply_kl_penalty`` and checkpoint
methods (``RayPPOTrainer``'s as imported; the v1 ``PPOTrainer``'s compiled from verl's source,
since its module needs ``transfer_queue``, which has no CPU wheel here), without Ray workers."""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
import types
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl")

import torch

with warnings.catch_warnings():  # verl warns about the GPU engines (megatron, ...) it lacks
    warnings.simplefilter("ignore")
    import verl.trainer.ppo
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo import core_algos, ray_trainer
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    from verl.trainer.ppo.utils import Role
    from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

from safecontrol.integrations import verl_plugin
from safecontrol.integrations.kl_ctrl import KLCtrlAdapter
from safecontrol.integrations.verl import CHECKPOINT_FILE

pytestmark = pytest.mark.filterwarnings("ignore:KLCtrlAdapter:UserWarning")

ROOT = Path(__file__).resolve().parents[2]
BATCH, RESPONSE = 8, 12
MARK = verl_plugin._MARK
V1_SOURCE = Path(verl.trainer.ppo.__file__).parent / "v1" / "trainer_base.py"
PATCHED = [
    (core_algos, "get_kl_controller"),
    (ray_trainer, "apply_kl_penalty"),
    (RayPPOTrainer, "_save_checkpoint"),
    (RayPPOTrainer, "_load_checkpoint"),
    (RayPPOTrainer, "_compute_old_log_prob"),
]


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The plugin, off before and after (set up after ``monkeypatch``: undone before it)."""
    verl_plugin.uninstall()
    yield verl_plugin
    verl_plugin.uninstall()


def _batch(t: int, seed: int = 0, drift: float = 0.004) -> DataProto:
    g = torch.Generator().manual_seed(seed * 10_000 + t)
    lengths = torch.randint(3, RESPONSE + 1, (BATCH,), generator=g)
    mask = (torch.arange(RESPONSE)[None, :] < lengths[:, None]).float()
    ref = -2.0 - torch.rand(BATCH, RESPONSE, generator=g)
    scores = torch.zeros(BATCH, RESPONSE)
    scores[torch.arange(BATCH), lengths - 1] = torch.rand(BATCH, generator=g) + 0.01 * t
    return DataProto.from_dict(
        tensors={
            "old_log_probs": ref + drift * t * (1 + torch.rand(BATCH, RESPONSE, generator=g)),
            "ref_log_prob": ref,
            "response_mask": mask,
            "rm_scores": scores,
            "token_level_scores": scores.clone(),
        }
    )


def _kl_ctrl(kind: str = "fixed") -> dict[str, Any]:
    return {"type": kind, "kl_coef": 0.05, "target_kl": 0.02, "horizon": 1000}


def _config(folder: Any, use_kl_in_reward: bool = True, kind: str = "fixed") -> Any:
    return OmegaConf.create(
        {
            "trainer": {
                "default_local_dir": str(folder),
                "default_hdfs_dir": None,
                "resume_mode": "auto",
                "resume_from_path": None,
                "del_local_ckpt_after_load": False,
            },
            "algorithm": {
                "use_kl_in_reward": use_kl_in_reward,
                "kl_penalty": "kl",
                "kl_ctrl": _kl_ctrl(kind),
            },
            "actor_rollout_ref": {
                "actor": {"checkpoint": {"async_save": False}, "loss_agg_mode": "token-mean"}
            },
        }
    )


class _WorkerGroup:
    def __init__(self) -> None:
        self.saved: list[str] = []
        self.loaded: list[str] = []

    def save_checkpoint(self, local_path: str, *args: Any, **kwargs: Any) -> None:
        self.saved.append(local_path)

    def load_checkpoint(self, local_path: str, **kwargs: Any) -> None:
        self.loaded.append(local_path)


class _Loader:
    def __init__(self) -> None:
        self.state = {"position": 0}

    def state_dict(self) -> dict[str, int]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.state = dict(state)

    def __len__(self) -> int:
        return 1000


def _old_log_prob_v0(self: Any, batch: DataProto) -> tuple[DataProto, float]:
    """What RayPPOTrainer._compute_old_log_prob returns, without the actor worker group."""
    entropys = 2.0 + 0.1 * batch.batch["old_log_probs"].abs()
    out = {"old_log_probs": batch.batch["old_log_probs"], "entropys": entropys}
    return DataProto.from_dict(tensors=out), 0.0


def _trainer(cls: type, folder: Any, **config: Any) -> Any:
    """``cls`` as its ``__init__`` leaves what the plugin touches (workers stubbed)."""
    trainer = object.__new__(cls)
    trainer.config = _config(folder, **config)
    trainer.actor_rollout_wg = _WorkerGroup()
    trainer.use_critic = False
    trainer.train_dataloader = _Loader()
    trainer.global_steps = 0
    trainer.trainer_mode = "sync"
    trainer.checkpoint_callback = types.SimpleNamespace(on_save=lambda **kwargs: None)
    if trainer.config.algorithm.use_kl_in_reward:  # as both trainers' __init__ do
        trainer.kl_ctrl_in_reward = core_algos.get_kl_controller(trainer.config.algorithm.kl_ctrl)
    return trainer


def _run(trainer: Any, start: int, stop: int, apply: Any, v1: bool) -> list[Any]:
    rows = []
    for t in range(start, stop):
        data = _batch(t)
        trainer._compute_old_log_prob(data, **({"metrics": {}} if v1 else {}))  # entropy
        out, metrics = apply(data, trainer.kl_ctrl_in_reward, kl_penalty="kl")
        decision = trainer.kl_ctrl_in_reward.decision.as_dict()
        rows.append((out.batch["token_level_rewards"], metrics, decision))
    return rows


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SAFECONTROL_VERL_")}
    environ.update(env, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, cwd=ROOT, capture_output=True, text=True
    )


# ---------------------------------------------------------------------------- loading
def test_entry_point_is_declared_and_installed() -> None:
    declared = (ROOT / "pyproject.toml").read_text()
    assert '[project.entry-points."verl.plugins"]' in declared
    found = {ep.name: ep.value for ep in entry_points(group="verl.plugins")}
    assert found.get("safecontrol") == "safecontrol.integrations.verl_plugin", (
        "reinstall the package (pip install -e .) to register the entry point"
    )


def test_inert_without_the_variable() -> None:
    code = """
import sys
import safecontrol.integrations.verl_plugin as plugin
heavy = [m for m in ("torch", "verl", "safecontrol.integrations.verl") if m in sys.modules]
print(plugin.active(), heavy)
import verl                                            # loads the entry point (already loaded)
from verl.trainer.ppo import core_algos, ray_trainer
T = ray_trainer.RayPPOTrainer
wrapped = [f for f in (core_algos.get_kl_controller, ray_trainer.apply_kl_penalty,
           T._save_checkpoint, T._load_checkpoint, T._compute_old_log_prob)
           if hasattr(f, plugin._MARK)]
print(wrapped, [type(f).__name__ for f in sys.meta_path if "AfterImport" in type(f).__name__])
"""
    run = _python(code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["None []", "[] []"]

    entry = _python(
        "import sys, verl; print('safecontrol.integrations.verl_plugin' in sys.modules)"
    )
    assert entry.returncode == 0, entry.stderr
    assert entry.stdout.strip() == "True"  # verl imported it at `import verl`, and it did nothing


def test_the_variable_swaps_verls_controller_at_import_verl() -> None:
    code = """
import verl
from verl.trainer.ppo import core_algos, ray_trainer
kl_ctrl = core_algos.get_kl_controller(
    {"type": "adaptive", "kl_coef": 0.05, "target_kl": 0.02, "horizon": 1000})
config = kl_ctrl.controller.state_dict()["config"]
print(type(kl_ctrl).__name__, kl_ctrl.name, config["step_ratio"],
      hasattr(ray_trainer.RayPPOTrainer._save_checkpoint, "__safecontrol_original__"))
"""
    run = _python(
        code,
        SAFECONTROL_VERL_CONTROLLER="kl-budget",
        SAFECONTROL_VERL_SETTINGS='{"step_ratio": 0.002}',
        VERL_USE_EXTERNAL_PLUGINS="safecontrol",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["KLCtrlAdapter", "kl-budget", "0.002", "True"]


def test_install_is_idempotent_and_reversible(plugin: Any) -> None:
    before = [vars(owner)[name] for owner, name in PATCHED]
    plugin.install("kl-budget")
    plugin.install("kl-budget", {"step_ratio": 0.002})  # reconfigures, wraps nothing twice
    assert plugin.active() == ("kl-budget", {"step_ratio": 0.002})
    for (owner, name), original in zip(PATCHED, before, strict=True):
        assert getattr(vars(owner)[name], MARK) is original
    assert sum(isinstance(f, plugin._AfterImport) for f in sys.meta_path) == 1
    plugin.uninstall()
    assert [vars(owner)[name] for owner, name in PATCHED] == before
    assert not any(isinstance(f, plugin._AfterImport) for f in sys.meta_path)
    assert plugin.active() is None


# ---------------------------------------------------------------------------- the controller
@pytest.mark.parametrize("kind", ["adaptive", "fixed"])
def test_verls_config_in_our_adapter_equals_verls_controller(plugin: Any, kind: str) -> None:
    config = OmegaConf.create(_kl_ctrl(kind))
    theirs = core_algos.get_kl_controller(config)
    plugin.install(f"{kind}-kl")  # no settings: verl's algorithm.kl_ctrl numbers
    ours = core_algos.get_kl_controller(config)
    assert isinstance(ours, KLCtrlAdapter) and not isinstance(theirs, KLCtrlAdapter)
    for t in range(40):
        out_theirs, m_theirs = ray_trainer.apply_kl_penalty(_batch(t), theirs)
        out_ours, m_ours = ray_trainer.apply_kl_penalty(_batch(t), ours)
        assert torch.equal(
            out_theirs.batch["token_level_rewards"], out_ours.batch["token_level_rewards"]
        )
        assert m_theirs == m_ours
    assert ours.value == theirs.value


def test_a_bad_controller_name_or_setting_refuses(plugin: Any, tmp_path: Any) -> None:
    plugin.install("no-such-controller")  # no exception at import time: verl would swallow it
    with pytest.raises(ValueError, match=r"SAFECONTROL_VERL_CONTROLLER='no-such-controller'.*"):
        core_algos.get_kl_controller(OmegaConf.create(_kl_ctrl()))
    trainer = object.__new__(RayPPOTrainer)
    trainer.config = _config(tmp_path)
    with pytest.raises(ValueError, match="unknown controller 'no-such-controller'"):
        trainer._load_checkpoint()  # fit() refuses too, whatever built the controller

    plugin.install("kl-budget", {"no_such_setting": 1})
    with pytest.raises(ValueError, match="no_such_setting"):
        core_algos.get_kl_controller(OmegaConf.create(_kl_ctrl()))


def test_bad_settings_json_refuses(plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugin.ENV_CONTROLLER, "kl-budget")
    monkeypatch.setenv(plugin.ENV_SETTINGS, "{step_ratio: 0.002}")
    plugin._install_from_environment()
    with pytest.raises(ValueError, match="SAFECONTROL_VERL_SETTINGS is not JSON"):
        core_algos.get_kl_controller(OmegaConf.create(_kl_ctrl()))


def test_no_in_reward_kl_refuses(plugin: Any, tmp_path: Any) -> None:
    plugin.install("kl-budget")
    trainer = _trainer(RayPPOTrainer, tmp_path, use_kl_in_reward=False)
    with pytest.raises(ValueError, match=r"use_kl_in_reward is False.*never run"):
        trainer._load_checkpoint()


def test_step_limit_is_warned_once_with_kl_budget_never_with_fixed_kl(plugin: Any) -> None:
    counts = {}
    for name in ("kl-budget", "fixed-kl"):
        plugin.install(name, {})
        kl_ctrl = core_algos.get_kl_controller(OmegaConf.create(_kl_ctrl()))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for t in range(30):
                kl_ctrl.observe(entropy=2.0)
                _, metrics = ray_trainer.apply_kl_penalty(_batch(t), kl_ctrl)
        steps = [w for w in caught if "the step is not limited" in str(w.message)]
        counts[name] = len(steps)
        if name == "kl-budget":
            assert f"controller {name!r}" in str(steps[0].message)
            assert "max_preview_kl=" in str(steps[0].message)
            assert kl_ctrl.unhonoured_max_preview_kl == kl_ctrl.decision.max_preview_kl
            # logged with verl's own KL metrics at every step, not only warned once
            assert metrics[plugin.UNHONOURED_METRIC] == kl_ctrl.decision.max_preview_kl
        else:
            assert kl_ctrl.unhonoured_max_preview_kl is None
            assert plugin.UNHONOURED_METRIC not in metrics
    assert counts == {"kl-budget": 1, "fixed-kl": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a loop that applies the limit says so: no warning
        honoured = KLCtrlAdapter("safe", step_limit_honoured=True)
    assert honoured.unhonoured_max_preview_kl is None


# ---------------------------------------------------------------------------- checkpoints
def _v1_trainer_class() -> type:
    """The v1 ``PPOTrainer``'s ``_save_checkpoint`` / ``_load_checkpoint``, compiled from verl's
    source (importing the module needs transfer_queue, aiohttp, ...), on a stand-in class."""
    tree = ast.parse(V1_SOURCE.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PPOTrainer")
    methods = [
        n
        for n in cls.body
        if isinstance(n, ast.FunctionDef) and n.name in ("_save_checkpoint", "_load_checkpoint")
    ]
    assert len(methods) == 2
    namespace: dict[str, Any] = {
        "os": os,
        "torch": torch,
        "logger": logging.getLogger("verl.v1"),
        "find_latest_ckpt_path": find_latest_ckpt_path,
        "Role": Role,
    }
    exec(compile(ast.Module(body=methods, type_ignores=[]), str(V1_SOURCE), "exec"), namespace)

    def _compute_old_log_prob(self: Any, batch: DataProto, metrics: dict[str, Any]) -> Any:
        metrics["actor/entropy"] = 2.5  # verl: agg_loss of the entropy, token-mean
        return batch

    members = {m.name: namespace[m.name] for m in methods}
    return type("PPOTrainer", (), {**members, "_compute_old_log_prob": _compute_old_log_prob})


def test_v1_source_has_what_the_plugin_wraps() -> None:
    source = V1_SOURCE.read_text()
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PPOTrainer")
    args = {
        n.name: [a.arg for a in n.args.args] for n in cls.body if isinstance(n, ast.FunctionDef)
    }
    assert args["_save_checkpoint"] == ["self"] and args["_load_checkpoint"] == ["self"]
    assert args["_compute_old_log_prob"] == ["self", "batch", "metrics"]
    assert "core_algos.get_kl_controller(self.config.algorithm.kl_ctrl)" in source
    assert "from verl.trainer.ppo.ray_trainer import apply_kl_penalty" in source
    assert '"actor/entropy": entropy_agg' in source
    assert "loss_agg_mode=actor_config.loss_agg_mode" in source


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_state_survives_a_global_step_checkpoint(
    plugin: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, version: str
) -> None:
    if version == "v0":
        cls: type = RayPPOTrainer
        monkeypatch.setattr(RayPPOTrainer, "_compute_old_log_prob", _old_log_prob_v0)
    else:
        cls = _v1_trainer_class()
        module = types.ModuleType(verl_plugin.V1_TRAINER)
        module.PPOTrainer = cls  # type: ignore[attr-defined]
        module.apply_kl_penalty = vars(ray_trainer)["apply_kl_penalty"]  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, verl_plugin.V1_TRAINER, module)
    plugin.install("kl-budget", {"budget": 0.1})  # the batches' KL crosses it: β moves
    v1 = version == "v1"
    apply = sys.modules[verl_plugin.V1_TRAINER if version == "v1" else ray_trainer.__name__]
    assert hasattr(vars(apply)["apply_kl_penalty"], MARK)

    steps, saved_at = 50, 23
    whole = _trainer(cls, tmp_path / "whole")
    uninterrupted = _run(whole, 0, steps, apply.apply_kl_penalty, v1)
    betas = [row[1]["actor/reward_kl_penalty_coeff"] for row in uninterrupted]
    assert len(set(betas[:saved_at])) > 3 and len(set(betas[saved_at:])) > 3, betas

    first = _trainer(cls, tmp_path / "run")
    _run(first, 0, saved_at, apply.apply_kl_penalty, v1)
    first.global_steps = saved_at
    first._save_checkpoint()  # verl's own save, ours first
    folder = tmp_path / "run" / f"global_step_{saved_at}"
    assert first.actor_rollout_wg.saved == [str(folder / "actor")]
    state = json.loads((folder / CHECKPOINT_FILE).read_text(), parse_constant=pytest.fail)
    assert state == first.kl_ctrl_in_reward.state_dict()
    assert (tmp_path / "run" / "latest_checkpointed_iteration.txt").read_text() == str(saved_at)

    resumed = _trainer(cls, tmp_path / "run")
    resumed._load_checkpoint()  # verl finds global_step_23 from its tracker file
    assert resumed.global_steps == saved_at
    assert resumed.kl_ctrl_in_reward.state_dict() == state
    rest = _run(resumed, saved_at, steps, apply.apply_kl_penalty, v1)
    for (rewards, metrics, decision), (r, m, d) in zip(uninterrupted[saved_at:], rest, strict=True):
        assert torch.equal(rewards, r) and metrics == m and decision == d

    (folder / CHECKPOINT_FILE).write_text("{not json")
    broken = _trainer(cls, tmp_path / "run")
    with pytest.raises(ValueError, match=CHECKPOINT_FILE):
        broken._load_checkpoint()
    (folder / CHECKPOINT_FILE).unlink()
    missing = _trainer(cls, tmp_path / "run")
    with pytest.warns(UserWarning, match=f"has no {CHECKPOINT_FILE}.*initial state"):
        missing._load_checkpoint()
