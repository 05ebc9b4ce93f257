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

from .._state import counter_field
from .._validation import _show, measurement, non_negative, non_negative_int, positive

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


def checked_state(
    state_dict: Any,
    owner: str,
    has_entropy_controller: bool,
    min_beta: float,
    kl_estimator: str,
) -> CallbackState:
    """``state_dict`` validated field by field, or a ``ValueError`` naming the first bad one.

    Checked: the type (``owner``) and version; ``global_step`` a non-negative integer,
    ``rollouts`` one up to 2**53; ``beta`` finite, >= 0 (informational: the β that was set);
    ``min_beta`` equal to the loading callback's ``min_beta`` (β's floor is part of how the
    saved run was steered); ``pending`` exactly the lists ``MEASURED``, each value in the range
    of its TRL metric (``_pending_value``; TRL's NaN rewards of unscorable batches are dropped on
    arrival; a version-1 state has no ``MEAN_LENGTH`` list and loads with it empty), with no more
    rewards or lengths than ``rollouts`` (TRL logs one of each per rollout batch);
    ``controller`` a dict and ``entropy_controller`` one exactly when ``has_entropy_controller``
    (else null; formats 1 and 2 have none), their contents left to the controllers.
    ``kl_estimator`` is the trainer's (``k1`` may be negative).
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
        rollouts = counter_field("rollouts", state_dict["rollouts"])
        non_negative("beta", state_dict["beta"])
        saved_min_beta = positive("min_beta", state_dict["min_beta"])
        if saved_min_beta != min_beta:
            raise ValueError(
                f"min_beta {saved_min_beta!r} was saved, but this callback has "
                f"min_beta={min_beta!r}; build it with min_beta={saved_min_beta!r} to resume"
            )
        pending = _checked_pending(state_dict["pending"], version, rollouts, kl_estimator)
        for key in ("controller", "entropy_controller"):  # their contents: the controllers'
            if not isinstance(state_dict[key], dict | None):
                raise ValueError(
                    f"{key} must be a controller's state dict, got {_show(state_dict[key])}"
                )
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


def _checked_pending(
    pending: Any, version: int, rollouts: int, kl_estimator: str
) -> dict[str, list[float]]:
    """``pending`` as fresh lists of floats, one per ``MEASURED`` key, each value in its metric's
    range and no more rewards or lengths than ``rollouts``."""
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
        checked[key] = [
            _pending_value(key, f"pending[{key!r}][{i}]", v, kl_estimator)
            for i, v in enumerate(values)
        ]
    for key in ("reward", MEAN_LENGTH):
        if len(checked[key]) > rollouts:
            raise ValueError(
                f"pending[{key!r}] holds {len(checked[key])} values, more than rollouts "
                f"{rollouts} (TRL logs one per rollout batch)"
            )
    return checked


def _pending_value(key: str, label: str, value: Any, kl_estimator: str) -> float:
    """One collected value of the metric ``key`` in the range TRL's metric takes and the
    controllers accept: a number of magnitude at most ``MAX_MEASUREMENT``; the entropy >= 0
    (nats per token), a mean length > 0 (tokens), a k2/k3 KL >= 0 (k1 may be negative)."""
    x = measurement(label, value)
    if key == MEAN_LENGTH and x <= 0.0:
        raise ValueError(f"{label} must be > 0 (a mean completion length in tokens), got {x!r}")
    if key == "entropy" and x < 0.0:
        raise ValueError(f"{label} must be >= 0 (nats per token), got {x!r}")
    if key == "kl" and kl_estimator != "k1" and x < 0.0:
        raise ValueError(f"{label} must be >= 0 for the trainer's {kl_estimator} KL, got {x!r}")
    return x
