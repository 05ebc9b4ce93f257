"""A run directory: config.json, metrics.jsonl, samples.jsonl and the checkpoint.

Only the writer (rank 0) touches files. ``metrics.jsonl`` gets one line per iteration, flushed;
on resume the lines after the checkpoint's step are dropped, so a resumed run's log equals an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from . import checkpoint
from .config import TrainConfig, as_dict


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


class RunLog:
    def __init__(self, directory: Path, writer: bool = True) -> None:
        self.directory = directory
        self.writer = writer
        self.checkpoint_path = directory / checkpoint.CHECKPOINT_NAME
        self.metrics_path = directory / "metrics.jsonl"
        self.samples_path = directory / "samples.jsonl"
        self.config_path = directory / "config.json"

    def begin(self, config: TrainConfig, resume: bool) -> None:
        """Refuse to clobber an existing run; on resume, insist the config is the same."""
        if resume:
            if not self.checkpoint_path.is_file():
                raise FileNotFoundError(f"--resume: no checkpoint in {self.directory}")
            saved = json.loads(self.config_path.read_text())
            mine = json.loads(json.dumps(as_dict(config)))
            changed = sorted(
                k
                for k in saved.keys() | mine.keys()
                if k != "steps" and saved.get(k) != mine.get(k)
            )
            if changed:
                raise ValueError(f"--resume: config differs from the saved run in {changed}")
        elif self.metrics_path.exists() or self.checkpoint_path.exists():
            raise FileExistsError(
                f"{self.directory} already holds a run; pass --resume or choose another run_dir"
            )
        if self.writer:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.config_path, as_dict(config))

    def latest_checkpoint(self) -> dict[str, Any]:
        return checkpoint.load(self.checkpoint_path)

    def truncate_metrics(self, step: int) -> None:
        """Keep the metric lines of steps ≤ ``step`` (the checkpoint's)."""
        for path in (self.metrics_path, self.samples_path):
            if not self.writer or not path.exists():
                continue
            kept = [
                ln
                for ln in path.read_text().splitlines()
                if ln.strip() and json.loads(ln)["step"] <= step
            ]
            write_text_atomic(path, "".join(line + "\n" for line in kept))

    def log_metrics(self, metrics: dict[str, Any]) -> None:
        self._append(self.metrics_path, metrics)

    def log_samples(
        self, step: int, samples: list[tuple[str, str]], metrics: dict[str, Any]
    ) -> None:
        self._append(
            self.samples_path,
            {
                "step": step,
                "reward_mean": metrics["reward_mean"],
                "samples": [{"prompt": p, "completion": c} for p, c in samples],
            },
        )

    def save_checkpoint(self, state: dict[str, Any], rank_rng: list[Any]) -> None:
        if self.writer:
            checkpoint.save_atomic(self.checkpoint_path, {**state, "rank_rng": rank_rng})

    def progress(self, total: int, initial: int, enabled: bool) -> Any:
        if not (enabled and self.writer):
            return _NoBar()
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc="train", file=sys.stderr, dynamic_ncols=True)

    def _append(self, path: Path, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        with open(path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
