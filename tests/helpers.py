"""Shared test helpers."""

from __future__ import annotations

import json
from typing import Any


def json_roundtrip(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A state dict as it comes back from a JSON checkpoint file (proves it is plain JSON)."""
    return json.loads(json.dumps(state_dict, allow_nan=False))


def load_benchmark(name: str) -> Any:
    """A script of ``benchmarks/`` as a module (that folder holds scripts, not a package)."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # the scripts import each other by name
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
