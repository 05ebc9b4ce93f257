"""Shared test helpers."""

from __future__ import annotations

import json
from typing import Any


def json_roundtrip(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A state dict as it comes back from a JSON checkpoint file (proves it is plain JSON)."""
    return json.loads(json.dumps(state_dict, allow_nan=False))
