"""The TRL callback under ``torchrun --nproc_per_node 2`` (gloo on CPU): both ranks take the same
decisions and shrink their steps by the same factors, so their weights stay equal; a resumed
two-process run continues the controller from its checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

from integrations.trl_tiny import tiny_model_dir

from safecontrol.integrations.trl import CHECKPOINT_FILE

WORKER = Path(__file__).with_name("trl_distributed_worker.py")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_model_dir(tmp_path_factory)


def torchrun(model_dir: str, output_dir: Path, *extra: str) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", str(WORKER), model_dir, str(output_dir), "4", "kl-budget"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, *extra], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def records(output_dir: Path, suffix: str = "") -> list[list[dict]]:
    return [json.loads((output_dir / f"rank{r}{suffix}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def two_process_run(model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    torchrun(model_dir, out)
    return out


def test_both_ranks_limit_every_step_alike_and_keep_equal_weights(two_process_run):
    rank0, rank1 = records(two_process_run)
    assert [r["step"] for r in rank0] == [1, 2, 3, 4]
    assert rank0 == rank1  # β, step scales, step KLs and the weights' checksum, bit for bit
    assert all(r["step_kl"] is not None for r in rank0)
    assert min(r["step_scale"] for r in rank0) < 1.0  # the limit bound


def test_a_resumed_two_process_run_continues_the_controller(two_process_run, model_dir, tmp_path):
    shutil.copytree(two_process_run / "checkpoint-2", tmp_path / "checkpoint-2")
    torchrun(model_dir, tmp_path, "resume")
    rank0, rank1 = records(tmp_path, "-resumed")
    assert [r["step"] for r in rank0] == [3, 4]
    assert rank0 == rank1
    saved = json.loads((tmp_path / "checkpoint-4" / CHECKPOINT_FILE).read_text())
    # Two updates restored from checkpoint-2, two more after it: not a controller begun afresh.
    assert saved["controller"]["state"]["controller"]["step"] == 4
