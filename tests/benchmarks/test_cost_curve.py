"""``python -m benchmarks.speed.cost_curve``: the model builder's cache and parameter count, one
configuration measured in-process on a tiny model, the job plan, the analysis and files on
hand-made runs (the exponent fit, the comparisons, the goals), and the committed files rendered
again from the committed json."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("matplotlib")
from tiny_lm import build_tiny

from benchmarks.speed.cost_curve import plan as cost_plan
from benchmarks.speed.cost_curve.aggregate import analyse, fit_exponent
from benchmarks.speed.cost_curve.measure import measure_trainer
from benchmarks.speed.cost_curve.models import build_model, model_data_dir
from benchmarks.speed.cost_curve.plan import STAGES, BuiltModel, Job, Shape
from benchmarks.speed.cost_curve.render import rewrite_report, write_report
from reference_trainer.config import PrepareConfig
from reference_trainer.prepare.default_model import is_prepared

SHAPE = Shape(n_embd=16, n_layer=2, n_head=2)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, int]:
    """(cache, model directory, parameter count) of SHAPE with the tiny LM's tokenizer."""
    source = build_tiny(tmp_path_factory.mktemp("source"))
    cache = tmp_path_factory.mktemp("cache")
    directory, parameters = build_model(cache, SHAPE, source)
    return cache, directory, parameters


def gpt2_parameters(vocab: int, positions: int, d: int, layers: int) -> int:
    """Embeddings (the head is tied to them), 12d² + 13d per block, the final layer norm."""
    return vocab * d + positions * d + layers * (12 * d * d + 13 * d) + 2 * d


def test_build_model_counts_parameters_and_is_found_where_trl_looks(built):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    cache, directory, parameters = built
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")
    model = GPT2LMHeadModel.from_pretrained(directory / "model")
    assert model.config.n_positions == cost_plan.N_POSITIONS
    assert parameters == sum(p.numel() for p in model.parameters())
    assert parameters == gpt2_parameters(len(tokenizer), cost_plan.N_POSITIONS, 16, 2)
    assert is_prepared(directory)
    # measure_trl_grpo loads PrepareConfig(data_dir).directory(): the same model.
    data_dir = model_data_dir(cache, SHAPE)
    assert PrepareConfig(data_dir=str(data_dir)).directory() == directory


def test_build_model_reuses_its_cache_and_rebuilds_another_shape(built, tmp_path):
    cache, directory, parameters = built
    weights = directory / "model" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert build_model(cache, SHAPE, tmp_path / "unused") == (directory, parameters)
    assert weights.stat().st_mtime_ns == before
    wider = Shape(n_embd=32, n_layer=2, n_head=2)
    other, more = build_model(cache, wider, directory)
    assert other != directory and more > parameters


def test_measure_trainer_one_iteration_on_a_tiny_model(built):
    _, directory, _ = built
    job = Job(
        shape=SHAPE.name,
        parameters=0,
        model_dir=str(directory),
        data_dir="",
        iterations=1,
        warmup=0,
        threads=1,
        kind="trainer",
        length=5,
        dtype="float32",
        micro_batch_size=8,
    )
    result = measure_trainer(job)
    assert result["response_length"] == 5  # min_new_tokens = max_new_tokens
    stages = sum(result[stage] for stage in STAGES)
    assert stages == pytest.approx(result["total"])
    assert result["generation_share"] == pytest.approx(result["generate"] / result["total"])
    assert 0 < result["generation_share"] < 1
    assert result["bare_generate"] > 0
    assert result["generate_over_bare"] == pytest.approx(
        result["generate"] / result["bare_generate"]
    )
    assert result["rss_peak_mib"] >= result["rss_after_setup_mib"] > 0
    assert result["rss_peak_mib_by_iteration"] == [result["rss_peak_mib"]]
    [iteration] = result["by_iteration"]
    assert iteration["seconds_total"] == pytest.approx(result["total"])
    # kl-budget limits its steps; the first iteration has no measured curvature to predict a
    # step's KL from, so it previews: at least one forward that the limiter runs itself.
    assert result["step_limit_forwards"] == iteration["step_limit_forwards"] >= 1


def test_jobs_cover_the_plan():
    args = argparse.Namespace(
        quick=False,
        iterations=3,
        largest_iterations=2,
        warmup=1,
        threads=2,
        trl_sizes="ends",
        bfloat16_lengths=[16],
    )
    plan = cost_plan.make_plan(args)
    models = {
        s.name: BuiltModel(s.n_embd, s.n_layer, s.n_head, 128, 10 ** (i + 5), s.name, s.name)
        for i, s in enumerate(plan.shapes)
    }
    jobs = [job.record() for job in cost_plan.jobs(plan, models)]
    trainer = [j for j in jobs if j["kind"] == "trainer"]
    largest = plan.shapes[-1].name
    assert len(plan.shapes) >= 4
    assert {j["dtype"] for j in trainer if j["length"] == 48} == {"float32"}
    assert {(j["length"], j["dtype"]) for j in trainer if j["shape"] == plan.shapes[0].name} == {
        (16, "float32"),
        (16, "bfloat16"),
        (48, "float32"),
    }
    micro = {j["micro_batch_size"] for j in trainer if j["shape"] == largest and j["length"] == 48}
    assert micro == {0, 16, 8, 4}
    assert {j["shape"] for j in jobs if j["kind"] == "trl"} == {plan.shapes[0].name, largest}
    assert {j["iterations"] for j in jobs if j["shape"] == largest} == {2}
    assert {j["iterations"] for j in jobs if j["shape"] != largest} == {3}
    # A TRL job's record has no trainer settings (the committed runs' shape).
    assert all("length" not in j and "dtype" not in j for j in jobs if j["kind"] == "trl")


def test_fit_exponent_recovers_a_power_law():
    parameters = [3e5, 1.5e6, 6e6, 3e7]
    assert fit_exponent(parameters, [2e-6 * p**0.8 for p in parameters]) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="two distinct"):
        fit_exponent([1e6, 1e6], [1.0, 2.0])


def run(shape: str, parameters: int, length: int, dtype: str, **values: Any) -> dict[str, Any]:
    seconds = 1e-4 * parameters**0.5 * length / 16 * (0.8 if dtype == "bfloat16" else 1.0)
    row = {
        "kind": "trainer",
        "shape": shape,
        "parameters": parameters,
        "length": length,
        "dtype": dtype,
        "micro_batch_size": 0,
        **{stage: seconds / 5 for stage in STAGES},
        "total": seconds,
        "generation_share": 0.2,
        "bare_generate": seconds / 5 / 1.1,
        "generate_over_bare": 1.1,
        "tokens_per_second": 32 * length / seconds,
        "rss_after_setup_mib": 400.0,
        "rss_peak_mib": 500.0,
        "rss_peak_mib_by_iteration": [450.0, 500.0],
        "step_limit_forwards": 1.0,
        "cuda_max_allocated_mib": None,
    }
    return {**row, **values}


def test_analysis_and_files_on_hand_made_runs(tmp_path):
    sizes = {"a": 10**5, "b": 10**6, "c": 10**7}
    runs = [
        run(shape, n, length, dtype)
        for shape, n in sizes.items()
        for length, dtype in ((16, "float32"), (16, "bfloat16"), (48, "float32"))
    ]
    runs += [
        run("c", 10**7, 48, "float32", micro_batch_size=m, rss_peak_mib=500.0 - m) for m in (16, 8)
    ]
    runs[0]["generate_over_bare"] = 1.5  # a, 16 tokens, float32: beyond the goal
    small_tps, large_tps = runs[0]["tokens_per_second"], runs[6]["tokens_per_second"]
    runs += [
        {"kind": "trl", "shape": "a", "parameters": 10**5, "total": 1.0, "rss_peak_mib": 600.0}
        | {"tokens_per_second": small_tps / 2, "mean_completion_length": 16.0},
        {"kind": "trl", "shape": "c", "parameters": 10**7, "total": 1.0, "rss_peak_mib": 600.0}
        | {"tokens_per_second": large_tps, "mean_completion_length": 16.0},
    ]
    analysis = analyse(runs)
    exponents = {(c.length, c.dtype): c.exponent for c in analysis.curves}
    assert [c.exponent_two_largest for c in analysis.curves] == pytest.approx([0.5] * 3)
    assert exponents == pytest.approx(
        {(16, "float32"): 0.5, (16, "bfloat16"): 0.5, (48, "float32"): 0.5}
    )
    assert all(p.bfloat16_over_float32_seconds == pytest.approx(0.8) for p in analysis.precision)
    assert len(analysis.precision) == 3
    assert [m.micro_batch_size for m in analysis.micro_batches] == [0, 16, 8]
    assert [m.rss_growth_mib for m in analysis.micro_batches] == [100.0, 84.0, 92.0]
    ratios = {p.shape: p.trainer_over_trl for p in analysis.peers}
    assert ratios == pytest.approx({"a": 2.0, "c": 1.0})
    goals = analysis.goals
    assert goals.trainer_over_trl.worst == pytest.approx(1.0)
    assert not goals.trainer_over_trl.holds
    at = goals.generate_over_bare.worst_at
    assert (at.shape, at.length, at.dtype) == ("a", 16, "float32")
    assert not goals.generate_over_bare.holds

    meta = {
        "command": "python -m benchmarks.speed.cost_curve --quick",
        "date": "2000-01-01",
        "wall_time_s": 60.0,
        "batch_size": 32,
        "machine": {
            "processor": "x86_64",
            "cpu_cores": 2,
            "load_average_at_start": [0.0, 0.0, 0.0],
            "torch": "2",
            "transformers": "5",
            "trl": "1",
            "cuda": None,
        },
        "source": {"git_head": "abc1234", "reference_trainer_sha256": "0123456789abcdef"},
        "plan": {"warmup": 1, "iterations": 3, "largest_iterations": 2, "threads": 2},
    }
    models = {name: BuiltModel(1, 1, 1, 128, n, name, name) for name, n in sizes.items()}
    write_report(tmp_path, meta, models, runs)
    saved = json.loads((tmp_path / "cost_curve.json").read_text())
    assert set(saved) == {"meta", "models", "runs", "analysis"}
    assert saved["analysis"]["goals"]["trainer_over_trl"]["holds"] is False
    assert saved["analysis"]["goals"]["generate_over_bare"]["worst_at"] == {
        "shape": "a",
        "length": 16,
        "dtype": "float32",
    }
    markdown = (tmp_path / "cost_curve.md").read_text()
    assert markdown.count("**does not hold**") == 2
    assert "**0.50**" in markdown  # the exponents
    assert "16: bfloat16/float32, 48: float32" in markdown
    assert (tmp_path / "cost_curve.png").stat().st_size > 0


def test_the_committed_files_render_again_from_the_committed_json(tmp_path):
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    shutil.copy(results / "cost_curve.json", tmp_path / "cost_curve.json")
    rewrite_report(tmp_path)
    for name in ("cost_curve.json", "cost_curve.md"):
        assert (tmp_path / name).read_text() == (results / name).read_text(), name
