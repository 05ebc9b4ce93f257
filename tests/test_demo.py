"""The main job, ``python -m safecontrol.demo``, on a short budget."""

from __future__ import annotations

import subprocess
import sys

import pytest

from safecontrol import demo
from safecontrol.testing import PATHOLOGIES


def test_demo_prints_every_controller_on_every_setting(capsys):
    assert demo.main(["--seeds", "1", "--steps", "60"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("setting"))
    for title, _, _ in demo.COLUMNS:
        assert title in header
    rows = [line.split() for line in lines if line.split() and line.split()[0] in PATHOLOGIES]
    rows = [r for r in rows if not r[1].startswith("(")]  # skip the settings' descriptions
    assert len(rows) == len(PATHOLOGIES) * len(demo.CONTROLLERS)
    seen = {(r[0], " ".join(r[1 : -len(demo.COLUMNS)])) for r in rows}
    assert seen == {(s, c) for s in PATHOLOGIES for c in demo.CONTROLLERS}
    for r in rows:
        [float(v) for v in r[-len(demo.COLUMNS) :]]  # every cell is a number


def test_demo_is_deterministic_and_separates_safe_from_a_small_fixed_beta(capsys):
    args = ["--seeds", "2", "--steps", "150", "--settings", "kl_runaway"]
    demo.main(args)
    first = capsys.readouterr().out
    demo.main(args)
    assert capsys.readouterr().out == first
    rows = {r.controller: r.values for r in demo.table(seeds=2, steps=150, settings=["kl_runaway"])}
    assert rows["FixedKL(0.05)"]["kl_max"] > 3.0
    assert rows["SafeController"]["kl_max"] < 2.2
    assert rows["SafeController"]["entropy_min"] > 1.2 > rows["FixedKL(0.05)"]["entropy_min"]


def test_demo_markdown_table():
    rows = demo.table(seeds=1, steps=20, settings=["late_crash"])
    text = demo.format_table(rows, markdown=True)
    lines = text.splitlines()
    assert lines[0].startswith("| setting | controller |")
    assert len(lines) == 2 + len(demo.CONTROLLERS)


@pytest.mark.parametrize(
    "args", [["--seeds", "0"], ["--steps", "0"], ["--settings", "nope"], ["--settings", ","]]
)
def test_demo_rejects_bad_arguments(args):
    with pytest.raises(SystemExit) as info:
        demo.main(args)
    assert info.value.code == 2


def test_unknown_settings_are_rejected_by_table():
    with pytest.raises(ValueError, match="unknown settings"):
        demo.table(seeds=1, settings=["nope"])


def test_demo_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "safecontrol.demo", "--seeds", "1", "--steps", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "SafeController" in result.stdout and "runs in" in result.stderr
