"""The benchmarks import one way: the bottom layer (statistics, text, the sweep runner, the JSON
codec, the step clock) imports no study; each study package layers plan → aggregate → words →
render → command; no circle anywhere, however deferred the import."""

from __future__ import annotations

from pathlib import Path

from import_graph import find_cycle, import_graph

PACKAGE = Path(__file__).resolve().parents[2] / "benchmarks"
BOTTOM = ("stats", "text", "runner", "codec", "step_clock")


def test_the_benchmarks_have_no_import_circle():
    graph = import_graph(PACKAGE)
    assert len(graph) > 40  # the walk found the studies
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_bottom_layer_imports_no_study():
    graph = import_graph(PACKAGE)
    bottom = {f"benchmarks.{name}" for name in BOTTOM}
    for name in bottom:
        assert graph[name] <= bottom, f"{name} imports {sorted(graph[name] - bottom)}"


def test_a_study_s_plan_imports_no_aggregate_words_or_render():
    graph = import_graph(PACKAGE)
    later = ("aggregate", "words", "render", "__main__")
    plans = [name for name in graph if name.endswith(".plan")]
    assert {"benchmarks.frontier.plan", "benchmarks.stability.plan"} <= set(plans)
    for plan in plans:
        reached = {m for m in graph[plan] if m.rpartition(".")[2] in later}
        assert not reached, f"{plan} imports {sorted(reached)}"
