"""The README's "Use it in your own PPO loop" block runs as written (so it never rots)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safecontrol import registry  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def recipe() -> str:
    text = README.read_text()
    section = text[text.index("## Use it in your own PPO loop") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_recipe_is_short():
    code_lines = [ln for ln in recipe().splitlines() if ln.strip()]
    assert len(code_lines) <= 28


def test_recipe_runs_and_drives_the_controller_once_per_batch():
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(recipe(), str(README), "exec"), namespace)
    controller, decision = namespace["controller"], namespace["decision"]
    assert controller.decision.step == 20  # one update per rollout batch, not per epoch
    assert 0.1 <= decision.threshold <= 0.6
    assert decision.kl > 0.0


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_controller_drops_into_the_recipe_unchanged(name):
    code = recipe()
    assert 'registry.make("safe")' in code
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(code.replace('"safe"', repr(name)), str(README), "exec"), namespace)
    assert namespace["controller"].decision.step == 20
    assert math.isfinite(namespace["decision"].coef)
