"""The README's "With TRL (GRPO, RLOO)" block runs as written against the real TRL (so it never
rots). The test supplies ``model``, ``reward`` and ``dataset`` (the tiny local model) and shrinks
each config to a two-step CPU run; everything else is the README's code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

import trl
from datasets import Dataset
from integrations.trl_tiny import PROMPTS, TINY_RUN, tiny_model_dir, word_score_reward

from safecontrol import BudgetKL, PIDLagrangianKL
from safecontrol.integrations.trl import SafeBetaCallback

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "### With TRL (GRPO, RLOO)"


def recipe() -> str:
    text = README.read_text()
    section = text[text.index(HEADING) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under {HEADING!r}"
    return match.group(1)


def test_recipe_is_short():
    code_lines = [ln for ln in recipe().splitlines() if ln.strip()]
    assert len(code_lines) <= 16


def test_recipe_trains_grpo_and_rloo_with_beta_driven_by_the_callback(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
):
    def tiny(config_class: Any) -> Any:
        def make(**settings: Any) -> Any:
            return config_class(**{**TINY_RUN, "max_steps": 2, **settings})

        return make

    for name in ("GRPOConfig", "RLOOConfig"):
        monkeypatch.setattr(trl, name, tiny(getattr(trl, name)))
    namespace: dict[str, Any] = {
        "model": tiny_model_dir(tmp_path_factory),
        "reward": word_score_reward,
        "dataset": Dataset.from_dict({"prompt": PROMPTS}),
    }
    monkeypatch.chdir(tmp_path_factory.mktemp("readme"))
    exec(compile(recipe(), str(README), "exec"), namespace)
    for name, controller_class in (("grpo", BudgetKL), ("rloo", PIDLagrangianKL)):
        trainer = namespace[name]
        [callback] = [
            c for c in trainer.callback_handler.callbacks if isinstance(c, SafeBetaCallback)
        ]
        assert type(callback.controller) is controller_class
        assert callback.controller.decision.step == trainer.state.global_step == 2
        assert trainer.beta == callback.beta
        logged = [h["safe/beta"] for h in trainer.state.log_history if "safe/beta" in h]
        assert len(logged) == 2
    assert namespace["rloo"].callback_handler.callbacks[0].controller.target == 0.02
