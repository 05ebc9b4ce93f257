"""benchmarks.compare_runs: equal runs pass, one changed value is named with its first step."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import compare_runs


def write(run: Path, rows: list[dict]) -> Path:
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_runs_differing_only_in_timing_are_identical_and_a_changed_value_is_named(tmp_path, capsys):
    rows = [{"step": s, "coef": 0.05, "kl_k3": 0.1 * s, "seconds_total": s} for s in (1, 2, 3)]
    a = write(tmp_path / "a", rows)
    b = write(tmp_path / "b", [{**r, "seconds_total": 9.0} for r in rows])
    assert compare_runs.main([str(a), str(b)]) == 0
    c = write(tmp_path / "c", [{**r, "kl_k3": r["kl_k3"] + (r["step"] == 2) * 1e-16} for r in rows])
    assert compare_runs.compare(a, c)["differing"] == {"kl_k3": 2}
    assert compare_runs.main([str(a), str(c)]) == 1
    assert "kl_k3 (first at step 2)" in capsys.readouterr().out
