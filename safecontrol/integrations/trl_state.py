"""The state ``SafeBetaCallback`` saves in every TRL checkpoint, and its validation.

One strict-JSON record (``STATE_KEYS``): the controller's own ``state_dict``, the entropy
controller's (or null), the β last set, and what the callback has collected but not yet fed to the
controller (``rollouts``, ``pending``). ``checked_state`` validates every field before anything is
restored, so a corrupt or foreign state changes nothing.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

from .._validation import finite, non_negative, non_negative_int, positive

CHECKPOINT_FILE = "safecontrol_controller.json"
"""The file ``on_save`` writes into each ``checkpoint-N`` folder."""
STATE_FORMAT_VERSION = 3
"""2 adds ``pending["completions/mean_length"]`` (a version-1 state loads with that list empty);
3 adds ``entropy_controller`` (a version-1 or -2 state loads as one without it)."""
MEAN_LENGTH = "completions/mean_length"
"""TRL's metric: the mean completion length of a rollout batch, over all processes."""
MEASURED = ("kl", "entropy", "reward", MEAN_LENGTH)
"""The TRL metrics the controller is fed from (the keys of ``pending``)."""
STATE_KEYS = (
    "format_version",
    "type",
    "global_step",
    "beta",
    "min_beta",
    "rollouts",
    "pending",
    "controller",
    "entropy_controller",
)
"""The keys of ``SafeBetaCallback.state_dict()`` (format 3; formats 1 and 2 lack the last)."""


class CallbackState(NamedTuple):
    """A validated state: what ``SafeBetaCallback.load_state_dict`` restores."""

    global_step: int
    rollouts: int
    pending: dict[str, list[float]]
    controller: Any
    """The KL controller's ``state_dict`` (the controller validates it)."""
    entropy_controller: Any
    """The entropy controller's ``state_dict``, or None."""


def checked_state(state_dict: Any, owner: str, has_entropy_controller: bool) -> CallbackState:
    """``state_dict`` validated field by field, or a ``ValueError`` naming the first bad one.

    Checked: the type (``owner``) and version; ``global_step`` and ``rollouts`` non-negative
    integers; ``beta`` finite, >= 0 (informational: the β that was set); ``min_beta`` finite,
    > 0; ``pending`` exactly the lists ``MEASURED`` of finite numbers (TRL's NaN rewards of
    unscorable batches are dropped on arrival; a version-1 state has no ``MEAN_LENGTH`` list
    and loads with it empty); ``entropy_controller`` null exactly when ``has_entropy_controller``
    is false (formats 1 and 2 have none). The controllers' own states are left to them.
    """
    if not isinstance(state_dict, dict) or state_dict.get("type") != owner:
        raise ValueError(f"not a {owner} state: {str(state_dict)[:80]!r}")
    version = state_dict.get("format_version")
    if type(version) is not int or version not in (1, 2, STATE_FORMAT_VERSION):
        raise ValueError(
            f"{owner} state format_version {version!r} is not supported (expected 1, 2 or "
            f"{STATE_FORMAT_VERSION})"
        )
    if version < 3:  # written before the entropy controller existed
        state_dict = {**state_dict, "entropy_controller": None}
    try:
        _check_keys("the state", state_dict, STATE_KEYS)
        step = non_negative_int("global_step", state_dict["global_step"])
        rollouts = non_negative_int("rollouts", state_dict["rollouts"])
        non_negative("beta", state_dict["beta"])
        positive("min_beta", state_dict["min_beta"])
        pending = _checked_pending(state_dict["pending"], version)
        entropy_state = state_dict["entropy_controller"]
        if (entropy_state is None) == has_entropy_controller:
            raise ValueError(
                "entropy_controller: the state holds "
                f"{'no' if entropy_state is None else 'an'} entropy controller state but "
                f"this callback has {'one' if has_entropy_controller else 'none'}"
            )
    except ValueError as exc:
        raise ValueError(f"{owner}.load_state_dict: {exc}") from None
    return CallbackState(step, rollouts, pending, state_dict["controller"], entropy_state)


def read_state_file(path: str | os.PathLike[str]) -> Any:
    """The JSON in ``path``; a ``ValueError`` naming the file when it is not JSON."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"controller state file {path} is corrupt: not JSON ({exc})") from None


def _check_keys(what: str, mapping: dict[str, Any], keys: tuple[str, ...]) -> None:
    """A ``ValueError`` listing missing and unknown keys unless ``mapping`` has exactly ``keys``."""
    missing = [key for key in keys if key not in mapping]
    unknown = sorted(str(key) for key in mapping if key not in keys)
    if missing or unknown:
        raise ValueError(
            f"{what} must have the keys {list(keys)}: missing {missing}, unknown {unknown}"
        )


def _checked_pending(pending: Any, version: int) -> dict[str, list[float]]:
    """``pending`` as fresh lists of finite floats, one per ``MEASURED`` key."""
    if not isinstance(pending, dict):
        raise ValueError(f"pending must be a dict, got {type(pending).__name__}")
    if version == 1:  # written before the mean length was collected
        _check_keys("pending", pending, MEASURED[:3])
        pending = {**pending, MEAN_LENGTH: []}
    _check_keys("pending", pending, MEASURED)
    checked = {}
    for key in MEASURED:
        values = pending[key]
        if not isinstance(values, list):
            raise ValueError(f"pending[{key!r}] must be a list, got {type(values).__name__}")
        checked[key] = [finite(f"pending[{key!r}][{i}]", v) for i, v in enumerate(values)]
    return checked
