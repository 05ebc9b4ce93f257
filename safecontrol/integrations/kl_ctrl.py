"""Any safecontrol controller in the ``kl_ctrl`` shape of verl, OpenRLHF, SkyRL and trlx.

Those frameworks hold an object with ``.value`` (β) and ``.update(current_kl, n_steps)`` (once
per rollout batch) and know nothing else about it. ``KLCtrlAdapter`` is that object for any
``safecontrol.contract.Controller`` (an instance, or a ``safecontrol.registry`` name)::

    kl_ctrl = KLCtrlAdapter("kl-budget")                  # or KLCtrlAdapter(controller)
    kl_ctrl.observe(entropy=0.9, reward=0.3)              # optional side channel, before update
    beta = kl_ctrl.value                                  # the framework reads β ...
    kl_ctrl.update(current_kl=0.012, n_steps=256)         # ... and updates once per batch
    json.dumps(kl_ctrl.state_dict())                      # strict JSON; load_state_dict restores

``value`` is ``controller.decision.coef``: dP/dKL at the KL the controller saw, the β of the
linear penalty β·KL these frameworks apply. ``update`` calls ``controller.update(kl=current_kl,
n_steps=n_steps, entropy=…, reward=…, tokens_per_sequence=…)`` with the side channel's values
(keyword arguments of ``update`` win over ``observe``'s; both are consumed by an accepted update).

Units (``safecontrol.contract``). ``current_kl`` must be the batch-mean KL *per response token*:
verl's ``apply_kl_penalty`` passes the mean over sequences of each sequence's masked mean token
KL (per token; every sequence weighs the same, so it equals the token-weighted mean only when all
responses have one length); OpenRLHF's and trlx's reward-side controllers are given a per-token
mean too. A ``per_sequence`` controller (Ziegler's ``adaptive-kl``) needs the batch-mean
response length to convert: give ``tokens_per_sequence`` per batch (``observe``/``update``) or
fix it at construction (it then wins over every batch's); without one the update is refused
rather than fed a KL in the wrong unit.
verl's own ``AdaptiveKLController`` compares its ``target_kl`` with the per-token KL directly,
so ``adaptive-kl`` with ``target=target_kl`` and a fixed ``tokens_per_sequence=1.0`` (a per-token
target) is exactly verl's rule, except that β stays inside ``coef_limits`` (default 1e-6..1e6).

A rejected call (a ``ValueError`` naming the argument) changes nothing: not the controller, not
the side channel. Imports no framework.

Step limit. A decision with a finite ``max_preview_kl`` (``kl-budget``'s, SAFE's) asks the loop to
limit each optimizer step; verl's and OpenRLHF's KL controller slot carries only β, so these loops
cannot honour it. The adapter does not drop it silently: it warns once (naming the controller and
the limit, and that the step is not limited) and ``unhonoured_max_preview_kl`` gives the limit for
logging. A loop that does apply the limit passes ``step_limit_honoured=True``.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from typing import Any

from .. import registry
from .._validation import MAX_MEASUREMENT, _show, as_float, positive
from ..contract import Controller, Decision

STATE_FORMAT_VERSION = 1
SIDE_CHANNEL = ("entropy", "reward", "tokens_per_sequence")
"""What ``observe`` carries into the next ``update``."""
NONFINITE_TEXT = ("nan", "inf", "-inf")
"""How ``state_dict`` writes a NaN or infinite side-channel value, which strict JSON cannot hold:
``observe`` keeps them for the controller, whose ``on_nonfinite`` skips or refuses the batch."""
_STATE_KEYS = ("format_version", "type", "tokens_per_sequence", "pending", "controller")


class KLCtrlAdapter:
    """``.value`` / ``.update(current_kl, n_steps)`` over a ``safecontrol.contract.Controller``.

    Args:
        controller: a ``Controller`` instance, or a registry name (default
            ``safecontrol.registry.DEFAULT``, kl-budget).
        settings: the registry settings, only with a name (``registry.make(name, **settings)``).
        tokens_per_sequence: a fixed response length (> 0) that converts every update, whatever
            length a batch gives (validated only); ``1.0`` states a per-sequence controller's
            targets per token. ``None`` (default): each batch's length, which a
            ``per_sequence`` controller then requires.
        step_limit_honoured: ``True`` when the loop applies the decision's ``max_preview_kl`` to
            its optimizer steps itself; ``False`` (default; verl's and OpenRLHF's slot): a finite
            limit is warned about once and reported by ``unhonoured_max_preview_kl``.
    """

    def __init__(
        self,
        controller: Controller | str = registry.DEFAULT,
        settings: Mapping[str, Any] | None = None,
        *,
        tokens_per_sequence: float | None = None,
        step_limit_honoured: bool = False,
    ) -> None:
        self.controller = registry.resolve(controller, settings)
        self.name = controller if isinstance(controller, str) else type(controller).__name__
        """The registry name, or the controller's class name: what the warnings name."""
        self.tokens_per_sequence = (
            None
            if tokens_per_sequence is None
            else positive("tokens_per_sequence", tokens_per_sequence)
        )
        self.step_limit_honoured = bool(step_limit_honoured)
        self._pending: dict[str, float] = {}
        self._warned_step_limit = False
        self._check_step_limit()

    # ------------------------------------------------------------------ the framework's shape
    @property
    def value(self) -> float:
        """β: the current decision's ``coef``."""
        return float(self.decision.coef)

    @property
    def decision(self) -> Decision:
        return self.controller.decision

    @property
    def unhonoured_max_preview_kl(self) -> float | None:
        """The decision's finite ``max_preview_kl`` that this loop does not apply (log it);
        ``None`` when the decision has no limit or ``step_limit_honoured``."""
        limit = float(self.decision.max_preview_kl)
        return None if self.step_limit_honoured or not math.isfinite(limit) else limit

    def _check_step_limit(self) -> None:
        """Warn once per adapter when a decision asks for a step limit the loop does not apply."""
        limit = self.unhonoured_max_preview_kl
        if limit is None or self._warned_step_limit:
            return
        self._warned_step_limit = True
        warnings.warn(
            f"KLCtrlAdapter: controller {self.name!r} asks to limit each optimizer step to "
            f"max_preview_kl={limit:.6g} nats per token, and this loop's KL controller slot "
            "carries only β: the step is not limited (unhonoured_max_preview_kl reports the "
            "limit for logging; a loop that applies it passes step_limit_honoured=True)",
            UserWarning,
            stacklevel=3,
        )

    def observe(
        self,
        *,
        entropy: Any = None,
        reward: Any = None,
        tokens_per_sequence: Any = None,
    ) -> None:
        """Keep batch statistics for the next ``update``: ``entropy`` (nats per token),
        ``reward`` (batch mean), ``tokens_per_sequence`` (batch-mean response length, > 0).
        ``None`` leaves a value as it was; a later ``observe`` overwrites."""
        given = _side_channel(
            entropy=entropy, reward=reward, tokens_per_sequence=tokens_per_sequence
        )
        self._pending.update(given)

    def update(
        self,
        current_kl: Any,
        n_steps: Any = None,
        *,
        entropy: Any = None,
        reward: Any = None,
        tokens_per_sequence: Any = None,
    ) -> Decision:
        """One controller update from the framework's per-token ``current_kl`` and the batch's
        ``n_steps`` (sequences); the side channel fills what the keywords leave ``None``.
        Returns the decision; ``value`` is its ``coef``."""
        given = _side_channel(
            entropy=entropy, reward=reward, tokens_per_sequence=tokens_per_sequence
        )
        values: dict[str, Any] = {**self._pending, **given}
        if self.tokens_per_sequence is not None:  # fixed: the unit of the targets, per batch too
            values["tokens_per_sequence"] = self.tokens_per_sequence
        if self.controller.kl_unit == "per_sequence" and "tokens_per_sequence" not in values:
            raise ValueError(
                f"{type(self.controller).__name__} targets the KL per sequence and current_kl is "
                "per token: give tokens_per_sequence (observe, update, or the adapter's "
                "constructor), the batch-mean response length, got None"
            )
        decision = self.controller.update(kl=current_kl, n_steps=n_steps, **values)
        self._pending = {}
        self._check_step_limit()
        return decision

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Strict JSON: the controller's state dict and the side channel not yet used (a NaN or
        infinite value in it as its ``NONFINITE_TEXT`` string)."""
        return {
            "format_version": STATE_FORMAT_VERSION,
            "type": type(self).__name__,
            "tokens_per_sequence": self.tokens_per_sequence,
            "pending": {
                key: value if math.isfinite(value) else repr(value)
                for key, value in self._pending.items()
            },
            "controller": copy.deepcopy(self.controller.state_dict()),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s snapshot. Every field is checked (the type, version and
        keys; ``tokens_per_sequence`` equal to this adapter's; ``pending`` only side-channel
        numbers, or ``NONFINITE_TEXT`` strings; ``controller`` a dict, which the controller
        checks); on a ``ValueError`` nothing changes."""
        name = type(self).__name__
        kind = state_dict.get("type") if isinstance(state_dict, dict) else None
        if not isinstance(kind, str) or kind != name:
            raise ValueError(f"not a {name} state: {_show(state_dict)}")
        try:  # each field by its own rule, so that a refusal names it
            version = state_dict.get("format_version")
            if type(version) is not int or version != STATE_FORMAT_VERSION:
                raise ValueError(
                    f"format_version must be {STATE_FORMAT_VERSION}, got {_show(version)}"
                )
            if sorted(state_dict) != sorted(_STATE_KEYS):
                raise ValueError(
                    f"the state must have keys {sorted(_STATE_KEYS)}, got {sorted(state_dict)}"
                )
            saved_length = state_dict["tokens_per_sequence"]
            if type(saved_length) not in (float, int, type(None)) or (
                saved_length != self.tokens_per_sequence
            ):
                raise ValueError(
                    f"tokens_per_sequence {state_dict['tokens_per_sequence']!r} was saved by an "
                    f"adapter configured otherwise (this one: {self.tokens_per_sequence!r})"
                )
            if not isinstance(state_dict["controller"], dict):  # its contents: the controller's
                raise ValueError(
                    f"controller must be a controller's state dict, got "
                    f"{_show(state_dict['controller'])}"
                )
            pending = state_dict["pending"]
            if not isinstance(pending, dict) or not set(pending) <= set(SIDE_CHANNEL):
                raise ValueError(
                    f"pending must map some of {SIDE_CHANNEL} to numbers, got {_show(pending)}"
                )
            pending = _side_channel(
                **{key: _pending_value(key, value) for key, value in pending.items()}
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}.load_state_dict: {exc}") from None
        self.controller.load_state_dict(
            copy.deepcopy(state_dict["controller"])
        )  # refused: unchanged
        self._pending = pending

    def reset(self) -> None:
        """The controller's initial decision and an empty side channel."""
        self.controller.reset()
        self._pending = {}


def _pending_value(key: str, value: Any) -> Any:
    """A saved side-channel value as ``state_dict`` writes it, for ``_side_channel``: a number,
    or a ``NONFINITE_TEXT`` string for NaN or inf (a float NaN or inf is not strict JSON)."""
    if isinstance(value, str) and value in NONFINITE_TEXT:
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(
            f"pending {key} must be a finite number or one of {NONFINITE_TEXT}, got {value!r}"
        )
    return value


def _side_channel(**values: Any) -> dict[str, float]:
    """The given (non-``None``) side-channel values as floats: ``tokens_per_sequence`` finite and
    > 0; ``entropy`` and ``reward`` of magnitude at most ``MAX_MEASUREMENT``, entropy not negative.
    NaN and inf pass: whether to skip or refuse them is the controller's policy (``on_nonfinite``).
    """
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        if name == "tokens_per_sequence":
            out[name] = positive(name, value)
            continue
        x = as_float(name, value)
        if math.isfinite(x) and not -MAX_MEASUREMENT <= x <= MAX_MEASUREMENT:
            raise ValueError(f"{name} must have magnitude <= {MAX_MEASUREMENT:g}, got {x!r}")
        if name == "entropy" and x < 0.0:
            raise ValueError(f"entropy must be >= 0 (nats), got {x!r}")
        out[name] = x
    return out
