"""What a cost-curve run ran on: the machine and library versions, and the trainer's source."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def cpu_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else None


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    import torch

    return {
        "platform": platform.platform(),
        "processor": cpu_model() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "transformers": version("transformers"),
        "trl": version("trl"),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def trainer_source(root: Path) -> dict[str, str]:
    """The commit and a hash of the trainer's source as measured (its tree may hold uncommitted
    edits: the hash tells two runs of different code apart)."""
    digest = hashlib.sha256()
    for path in sorted((root / "reference_trainer").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return {"git_head": head or "unknown", "reference_trainer_sha256": digest.hexdigest()[:16]}
