"""The reference trainer's modules import one way: no circle, however deferred the import.

A function-level import hides a circle from Python, not from a reader; this reads every import
statement, module level or not, so a circle cannot come back behind one. The wings (``tasks/``,
``prepare/``, ``run_dir/``) keep their ``__init__`` free of imports: importing one module of a
wing never loads the rest of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from import_graph import find_cycle, import_graph

PACKAGE = Path(__file__).resolve().parents[2] / "reference_trainer"
WINGS = ("tasks", "prepare", "run_dir")


def test_the_trainer_has_no_import_circle():
    graph = import_graph(PACKAGE)
    assert len(graph) > 20  # the walk found the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_relative_imports_resolve_to_the_modules_they_name():
    graph = import_graph(PACKAGE)
    assert "reference_trainer.config" in graph["reference_trainer.run_dir.log"]
    assert "reference_trainer.run_dir.checkpoint" in graph["reference_trainer.run_dir.log"]
    assert "reference_trainer.tasks.offline" in graph["reference_trainer.tasks.reward_model"]


def test_the_wings_are_packages_whose_init_imports_nothing():
    for wing in WINGS:
        init = PACKAGE / wing / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        assert not imports, f"{init} imports"
        assert len(list((PACKAGE / wing).glob("*.py"))) >= 3
