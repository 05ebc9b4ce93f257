"""One record per finished run: what the frontier report needs of it, and nothing else.

A record is read from a finished run directory (``<task>/<regime>/<variant>/seed<k>/done.json``,
written by ``benchmarks/runner.py``) or back from a results JSON (its ``records``), so that the
report can be regenerated without the raw runs. ``load_records`` joins the two: the committed
records, each replaced by a finished run of the same name found under the runs directory.

Results JSONs written before the records were stored held per-seed values inside the aggregate
(``cells[task][regime]["variants"][v]["seeds"]`` and ``["metrics"][m]["values"]``);
``records_from_results`` reads that shape too, once, so that the first regeneration converts it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_trainer.config import PrepareConfig

METRICS = (
    "kl_final",
    "reward_final",
    "gold_final",
    "kl_mean",
    "kl_p95",
    "budget_adherence",
    "entropy_min",
    "entropy_collapse_steps",
    "distinct_1_final",
    "wall_seconds",
)
"""The summary values (``reference_trainer/run_dir/report.py``) the report aggregates: final =
mean of the last 10 iterations; KL per token (k3, nats); adherence a share of steps; seconds."""
SIZE_KEYS = ("steps", "batch_size", "max_new_tokens", "ppo_epochs")
MODEL_KEYS = ("n_layer", "n_embd", "n_head")


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its place in the sweep, its learning rate and length, its final metrics
    (None where the run has no finite value) and its crash counts (SPEC §5)."""

    task: str
    regime: str
    variant: str
    seed: int
    algo: str | None
    lr: float | None
    steps: int | None
    kl_final: float | None
    reward_final: float | None
    gold_final: float | None
    kl_mean: float | None
    kl_p95: float | None
    budget_adherence: float | None
    entropy_min: float | None
    entropy_collapse_steps: float | None
    distinct_1_final: float | None
    wall_seconds: float | None
    proxy_crashes: int | None
    gold_crashes: int | None

    @property
    def name(self) -> str:
        """``task/regime/variant/seed<k>``: the run's directory under the runs root."""
        return f"{self.task}/{self.regime}/{self.variant}/seed{self.seed}"

    def metric(self, name: str) -> float | None:
        value: float | None = getattr(self, name)
        return value


@dataclass(frozen=True)
class SweepSizes:
    """The sizes every run of the sweep shares."""

    steps: int | None
    batch_size: int | None
    max_new_tokens: int | None
    ppo_epochs: int | None


@dataclass(frozen=True)
class ModelInfo:
    """The prepared model's manifest (``prepare.json``)."""

    parameters: int | None
    vocab_size: int | None
    val_perplexity: float | None
    n_layer: int | None
    n_embd: int | None
    n_head: int | None


@dataclass(frozen=True)
class RecordSet:
    """The records a report is computed from, with the sweep's sizes and model."""

    records: tuple[RunRecord, ...]
    sizes: SweepSizes | None
    model: ModelInfo | None
    from_runs: int
    """How many records were read from run directories (the rest from the results JSON)."""
    from_results: int


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(value: Any) -> int | None:
    number = _finite(value)
    return None if number is None else int(number)


def record_from_done(done: Mapping[str, Any]) -> RunRecord:
    """The record of one run's ``done.json`` ({"spec", "config", "summary"})."""
    spec, config, summary = done["spec"], done["config"], done["summary"]
    return RunRecord(
        task=str(spec["task"]),
        regime=str(spec["regime"]),
        variant=str(spec["variant"]),
        seed=int(spec["seed"]),
        algo=config.get("algo"),
        lr=_finite(config.get("lr")),
        steps=_count(config.get("steps")),
        **{name: _finite(summary.get(name)) for name in METRICS},
        proxy_crashes=_count(summary.get("crashes")),
        gold_crashes=_count(summary.get("gold_crashes")),
    )


def _model_info(config: Mapping[str, Any]) -> ModelInfo | None:
    """The prepared model's manifest of a run's config, where it can be found."""
    directory = Path(config.get("model") or "")
    if not config.get("model"):
        directory = PrepareConfig(data_dir=config.get("data_dir", ".data")).directory()
    manifest = directory / "prepare.json"
    if not manifest.is_file():
        return None
    saved = json.loads(manifest.read_text())
    return ModelInfo(
        parameters=saved.get("parameters"),
        vocab_size=saved.get("vocab_size"),
        val_perplexity=saved.get("val_perplexity"),
        **{k: saved.get("config", {}).get(k) for k in MODEL_KEYS},
    )


def read_runs(runs_dir: Path) -> tuple[list[RunRecord], dict[str, Any] | None]:
    """Every finished run under ``runs_dir`` and the config of the first (None: no run)."""
    records, first = [], None
    for done_path in sorted(runs_dir.glob("*/*/*/seed*/done.json")):
        done = json.loads(done_path.read_text())
        records.append(record_from_done(done))
        first = first or done["config"]
    return records, first


def records_from_results(results: Mapping[str, Any]) -> list[RunRecord]:
    """The records stored in a results JSON."""
    if "records" not in results:
        raise ValueError("the results JSON holds no per-run `records`: regenerate it from its runs")
    return [RunRecord(**entry) for entry in results["records"]]


def merged(committed: Iterable[RunRecord], found: Iterable[RunRecord]) -> list[RunRecord]:
    """The committed records with each replaced by a found run of the same name, plus the
    found runs that are new."""
    by_name = {r.name: r for r in committed}
    by_name.update({r.name: r for r in found})
    return list(by_name.values())


def _sizes(values: Mapping[str, Any]) -> SweepSizes:
    return SweepSizes(**{k: values.get(k) for k in SIZE_KEYS})


def saved_results(results_path: Path | None, plan: str) -> Mapping[str, Any]:
    """The results JSON at ``results_path`` when it exists and is of ``plan`` (a name of
    ``plan.PLANS``); empty otherwise."""
    if results_path is None or not results_path.is_file():
        return {}
    saved = json.loads(results_path.read_text())
    return saved if saved.get("meta", {}).get("plan") == plan else {}


def load_records(runs_dir: Path, results_path: Path | None, plan: str) -> RecordSet:
    """The records of ``results_path`` (when it exists and is of the same ``plan``: a name of
    ``plan.PLANS``) joined with the finished runs under ``runs_dir``, a run replacing the committed
    record of the same name; the sizes and model of a run where there is one, else the
    committed ones."""
    found, config = read_runs(runs_dir) if runs_dir.is_dir() else ([], None)
    saved = saved_results(results_path, plan)
    committed = records_from_results(saved) if saved else []
    records = merged(committed, found)
    if not records:
        raise FileNotFoundError(
            f"no finished runs (*/*/*/seed*/done.json) under {runs_dir}"
            + ("" if results_path is None else f" and no {plan} records in {results_path}")
        )
    meta = saved.get("meta", {})
    if config is not None:
        sizes: SweepSizes | None = _sizes(config)
        model = _model_info(config) or (ModelInfo(**meta["model"]) if meta.get("model") else None)
    else:
        sizes = _sizes(meta["sizes"]) if meta.get("sizes") else None
        model = ModelInfo(**meta["model"]) if meta.get("model") else None
    names = {r.name for r in found}
    return RecordSet(
        records=tuple(records),
        sizes=sizes,
        model=model,
        from_runs=len(found),
        from_results=sum(r.name not in names for r in committed),
    )
