"""The main job, ``python -m safecontrol.testing.demo``, on a short budget."""

from __future__ import annotations

import subprocess
import sys

import pytest

from safecontrol import FixedKL, registry
from safecontrol.testing import PATHOLOGIES, demo


def test_demo_prints_every_controller_on_every_setting(capsys):
    assert demo.main(["--seeds", "1", "--steps", "60"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("setting"))
    for title, _, _ in demo.COLUMNS:
        assert title in header
    rows = [line.split() for line in lines if line.split() and line.split()[0] in PATHOLOGIES]
    rows = [r for r in rows if not r[1].startswith("(")]  # skip the settings' descriptions
    controllers = demo.controllers()
    assert len(rows) == len(PATHOLOGIES) * len(controllers)
    seen = {(r[0], " ".join(r[1 : -len(demo.COLUMNS)])) for r in rows}
    assert seen == {(s, c) for s in PATHOLOGIES for c in controllers}
    for r in rows:
        [float(v) for v in r[-len(demo.COLUMNS) :]]  # every cell is a number


def test_demo_controllers_are_no_penalty_then_every_registered_name():
    assert list(demo.controllers()) == [demo.NO_PENALTY, *registry.names()]
    assert set(demo.DEMO_SETTINGS) <= set(registry.names())


def test_demo_settings_reproduce_the_demos_controllers():
    made = {name: make() for name, make in demo.controllers().items()}
    assert made[demo.NO_PENALTY] is None
    assert made["fixed-kl"].decision.coef == 0.05
    for name in ("adaptive-kl", "schulman-kl"):
        assert made[name].decision.coef == 0.2
        assert made[name].target == demo.KL_BUDGET
    assert made["pid-lagrangian-kl"].target == demo.KL_BUDGET
    assert made["safe"].state_dict() == registry.make("safe").state_dict()


def test_a_controller_registered_at_run_time_is_in_the_demo():
    class TinyFixedKL(FixedKL):
        """A fixed β under another name.

        Args:
            coef: β.
        """

        def __init__(self, coef: float = 0.07) -> None:
            super().__init__(coef)

    registry.register("tiny-fixed-kl", TinyFixedKL, "A test's own controller.")
    try:
        rows = demo.table(seeds=1, steps=20, settings=["late_crash"])
        assert "tiny-fixed-kl" in [row.controller for row in rows]
        tiny = next(row for row in rows if row.controller == "tiny-fixed-kl")
        assert tiny.values["kl_mean"] >= 0.0
    finally:
        registry.unregister("tiny-fixed-kl")
    assert "tiny-fixed-kl" not in demo.controllers()


def test_demo_is_deterministic_and_separates_safe_from_a_small_fixed_beta(capsys):
    args = ["--seeds", "2", "--steps", "150", "--settings", "kl_runaway"]
    demo.main(args)
    first = capsys.readouterr().out
    demo.main(args)
    assert capsys.readouterr().out == first
    rows = {r.controller: r.values for r in demo.table(seeds=2, steps=150, settings=["kl_runaway"])}
    assert rows["fixed-kl"]["kl_max"] > 3.0
    assert rows["safe"]["kl_max"] < 2.2
    assert rows["safe"]["entropy_min"] > 1.2 > rows["fixed-kl"]["entropy_min"]


def test_demo_markdown_table():
    rows = demo.table(seeds=1, steps=20, settings=["late_crash"])
    text = demo.format_table(rows, markdown=True)
    lines = text.splitlines()
    assert lines[0].startswith("| setting | controller |")
    assert len(lines) == 2 + len(demo.controllers())


@pytest.mark.parametrize(
    "args", [["--seeds", "0"], ["--steps", "0"], ["--settings", "nope"], ["--settings", ","]]
)
def test_demo_rejects_bad_arguments(args):
    with pytest.raises(SystemExit) as info:
        demo.main(args)
    assert info.value.code == 2


def test_unknown_settings_and_controllers_are_rejected():
    with pytest.raises(ValueError, match="unknown settings"):
        demo.table(seeds=1, settings=["nope"])
    with pytest.raises(ValueError, match=r"unknown controller 'nope'.*fixed-kl"):
        demo.evaluate("late_crash", "nope", seeds=1)


def test_the_core_does_not_import_the_demo():
    code = "import sys, safecontrol; print('safecontrol.testing' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "False", done.stderr


def test_demo_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "safecontrol.testing.demo", "--seeds", "1", "--steps", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "safe" in result.stdout and "runs in" in result.stderr
