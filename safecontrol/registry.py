"""Every KL controller by name: one registry that the trainer, the benchmarks, the demo and the
framework integrations read (as optax's ``alias.py`` names its optimizers).

    >>> from safecontrol import registry
    >>> registry.names()  # doctest: +NORMALIZE_WHITESPACE
    ('adaptive-kl', 'fixed-kl', 'kl-budget', 'pid-lagrangian-kl', 'safe', 'schulman-kl')
    >>> controller = registry.make("pid-lagrangian-kl", target=0.2)

A registration is a name, a factory and its settings: a frozen dataclass whose every field has a
default and a one-line doc. For a factory whose keyword arguments are its settings (every class
here), the settings are derived from its signature and the ``Args:`` section of its docstring.
Adding a controller is one module and one ``register`` call; it then appears in the trainer's
``--algo``, the plant and overhead benchmarks and the conformance suite
(``safecontrol.testing.check_controller``) with no other edit.

The registry holds controllers only. How a loop applies a decision travels on the decision itself
(``max_preview_kl``: the per-step KL limit every loop must honour or refuse); a recipe of one loop
(the reference trainer's critic heads or the published SAFE code's detached penalty) lives with
that loop (``reference_trainer/recipes.py``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._validation import _show
from .contract import KL_UNITS, Controller

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
DEFAULT = "kl-budget"
"""The controller every entry point builds when none is named (the trainer's ``--algo``, the
TRL callback, ``KLCtrlAdapter``): of the controllers at their defaults, the best gold regret over
the frontier sweep (benchmarks/results/frontier.md)."""


@dataclass(frozen=True)
class Registration:
    """One registered controller."""

    name: str
    """Lower-case words joined by dashes, e.g. ``"pid-lagrangian-kl"``."""
    factory: Callable[..., Controller]
    """Called with the settings' fields as keyword arguments."""
    settings: type
    """A frozen dataclass of the factory's settings, each with a default and a doc."""
    docs: Mapping[str, str]
    """One line per setting."""
    summary: str
    """What the controller is, with its source (paper or anchor)."""

    def make(self, **overrides: Any) -> Controller:
        """The controller with its default settings, changed by ``overrides``."""
        return self.factory(**dataclasses.asdict(self.settings_with(**overrides)))

    def settings_with(self, **overrides: Any) -> Any:
        """The settings record; an unknown setting is a ``ValueError`` listing the known ones."""
        known = [f.name for f in dataclasses.fields(self.settings)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"{self.name}: unknown settings {unknown}; known settings: {known}")
        return self.settings(**overrides)

    def defaults(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings())


_REGISTRY: dict[str, Registration] = {}


def register(
    name: str,
    factory: Callable[..., Controller],
    summary: str,
    settings: type | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Registration:
    """Register ``factory`` under ``name``; returns the registration.

    Args:
        name: lower-case words joined by dashes; a name already taken is an error.
        factory: builds the controller from keyword settings; one is built with the default
            settings here, and must keep ``safecontrol.contract.Controller`` (``kl_unit`` one
            of ``KL_UNITS``).
        summary: one line, with the source.
        settings: a frozen dataclass of the settings with documented fields; ``None`` derives
            one from ``factory``'s keyword parameters and its docstring's ``Args:`` section.
        defaults: defaults for the derived settings (required for parameters without one).
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be lower-case words joined by dashes, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"a controller named {name!r} is already registered")
    if not callable(factory):
        raise ValueError(f"factory must be callable, got {factory!r}")
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError(f"summary must be a non-empty string, got {summary!r}")
    if defaults is not None and not isinstance(defaults, Mapping):
        raise ValueError(
            f"{name}: defaults must be a mapping of parameter names, got {_show(defaults)}"
        )
    if settings is None:
        settings, docs = _settings_from_signature(name, factory, dict(defaults or {}))
    else:
        if defaults:
            raise ValueError("defaults are for derived settings; give them in the dataclass")
        docs = _settings_docs(name, settings)
    registration = Registration(name, factory, settings, docs, summary.strip())
    # One controller built with the defaults now: a factory that makes no Controller would
    # otherwise be found out only where it is first used (the trainer, a benchmark, a framework).
    try:
        made = registration.make()
    except Exception as exc:
        raise ValueError(f"{name}: the factory fails with its default settings: {exc!r}") from exc
    if not isinstance(made, Controller):
        missing = [member for member in CONTRACT_MEMBERS if not hasattr(made, member)]
        raise ValueError(
            f"{name}: the factory must make a safecontrol.contract.Controller "
            f"({', '.join(CONTRACT_MEMBERS)}); it made {type(made).__name__} {_show(made)}, "
            f"which lacks {missing}"
        )
    if made.kl_unit not in KL_UNITS:
        raise ValueError(f"{name}: kl_unit must be one of {KL_UNITS}, got {made.kl_unit!r}")
    _REGISTRY[name] = registration
    return registration


def unregister(name: str) -> None:
    """Remove a registration (for a test's own controller)."""
    registration(name)
    del _REGISTRY[name]


def names() -> tuple[str, ...]:
    """Every registered name, sorted."""
    return tuple(sorted(_REGISTRY))


def registration(name: str) -> Registration:
    """The registration of ``name``; an unknown name is a ``ValueError`` listing the known."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown controller {name!r}; registered: {list(names())}") from None


def make(name: str, **settings: Any) -> Controller:
    """The controller ``name`` with its default settings changed by ``settings``."""
    return registration(name).make(**settings)


CONTRACT_MEMBERS = ("decision", "update", "state_dict", "load_state_dict", "reset", "kl_unit")
"""What ``safecontrol.contract.Controller`` asks of an object, named in ``resolve``'s errors."""


def resolve(
    controller: Controller | str,
    settings: Mapping[str, Any] | None = None,
    default_settings: Mapping[str, Any] | None = None,
) -> Controller:
    """What an integration was given as its controller: a registry name, made with ``settings``
    (over ``default_settings`` for the settings the controller has), or an object keeping
    ``safecontrol.contract.Controller`` (then ``settings`` must be ``None``). Anything else is a
    ``ValueError`` naming what is wrong (the members an object lacks, a bad ``kl_unit``)."""
    if isinstance(controller, str):
        chosen = registration(controller)  # unknown: a ValueError listing the known
        if settings is not None and not isinstance(settings, Mapping):
            raise ValueError(f"settings must be a mapping of setting names, got {settings!r}")
        defaults = chosen.defaults()
        given = {k: v for k, v in (default_settings or {}).items() if k in defaults}
        return chosen.make(**{**given, **(settings or {})})
    if settings is not None:
        raise ValueError(
            f"settings are for a controller given by registry name; got settings with a "
            f"{type(controller).__name__} instance, which is already configured"
        )
    if not isinstance(controller, Controller):
        missing = [name for name in CONTRACT_MEMBERS if not hasattr(controller, name)]
        raise ValueError(
            "controller must be a registry name or keep safecontrol.contract.Controller "
            f"({', '.join(CONTRACT_MEMBERS)}); {type(controller).__name__} lacks {missing}"
        )
    if controller.kl_unit not in KL_UNITS:
        raise ValueError(
            f"{type(controller).__name__}.kl_unit must be one of {KL_UNITS}, "
            f"got {controller.kl_unit!r}"
        )
    return controller


# ------------------------------------------------------------------ settings from a signature
def _settings_from_signature(
    name: str, factory: Callable[..., Any], defaults: dict[str, Any]
) -> tuple[type, dict[str, str]]:
    parameters = [
        p
        for p in inspect.signature(factory).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    unknown = sorted(set(defaults) - {p.name for p in parameters})
    if unknown:
        raise ValueError(f"{name}: defaults for unknown parameters {unknown}")
    docs = _args_section(inspect.getdoc(factory) or "")
    fields = []
    for p in parameters:
        if p.name in defaults:
            default = defaults[p.name]
        elif p.default is not p.empty:
            default = p.default
        else:
            raise ValueError(f"{name}: parameter {p.name!r} has no default; pass defaults=")
        if p.name not in docs:
            raise ValueError(f"{name}: parameter {p.name!r} is not documented under Args:")
        fields.append((p.name, Any, dataclasses.field(default=default)))
    settings = dataclasses.make_dataclass(f"{_camel(name)}Settings", fields, frozen=True)
    settings.__module__ = __name__
    settings.__doc__ = f"Settings of the {name!r} controller (from {factory.__qualname__})."
    return settings, {p.name: docs[p.name] for p in parameters}


def _settings_docs(name: str, settings: type) -> dict[str, str]:
    if not (dataclasses.is_dataclass(settings) and isinstance(settings, type)):
        raise ValueError(f"{name}: settings must be a dataclass type, got {settings!r}")
    from .field_docs import field_docs

    docs = field_docs(settings)
    for f in dataclasses.fields(settings):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{name}: setting {f.name!r} has no default")
        if f.name not in docs:
            raise ValueError(f"{name}: setting {f.name!r} of {settings.__name__} has no doc")
    return docs


def _args_section(doc: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style ``Args:`` section (continuation lines joined)."""
    docs: dict[str, str] = {}
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration:
        return docs
    indent, current = None, None
    for line in lines[start + 1 :]:
        if not line.strip():
            if current is not None:
                break
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            indent = width
        if width < indent:
            break
        entry = re.match(r"^(\w+)(?: \([^)]*\))?: (.*)$", line.strip())
        if width == indent and entry:
            current = entry.group(1)
            docs[current] = entry.group(2)
        elif current is not None:
            docs[current] += " " + line.strip()
    return docs


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


# ------------------------------------------------------------------ the built-in controllers
def _register_builtins() -> None:
    from .budget_kl import BudgetKL
    from .classic import AdaptiveKL, FixedKL, PPOAdaptiveKL
    from .pid_lagrangian import PIDLagrangianKL
    from .safe_config import SafeConfig

    register(
        "fixed-kl",
        FixedKL,
        "A constant β: PPO's KL penalty (Ziegler et al. 2019; β = 0.05, SPEC §6).",
        defaults={"coef": 0.05},
    )
    register(
        "adaptive-kl",
        AdaptiveKL,
        "Ziegler et al. 2019's proportional controller on the per-sequence KL (TRL's, verl's "
        "AdaptiveKLController).",
    )
    register(
        "schulman-kl",
        PPOAdaptiveKL,
        "The PPO paper's ×2 / ÷2 adaptive β (Schulman et al. 2017, §4).",
    )
    register(
        "pid-lagrangian-kl",
        PIDLagrangianKL,
        "A PID Lagrange multiplier on KL ≤ target (Stooke et al. 2020).",
    )
    register(
        "kl-budget",
        BudgetKL,
        "Holds a KL budget without a β to choose: a PI Lagrange multiplier on KL ≤ budget, the "
        "budget a share of the initial entropy, and a step limit (safecontrol.budget_kl).",
    )
    register(
        "safe",
        _safe,
        "SAFE (arXiv 2602.04651): entropy-gated dead-band penalty, PID-moved threshold, "
        "preview step scaling; the published constants.",
        settings=SafeConfig,
    )


def _safe(**settings: Any) -> Controller:
    from .safe import SafeController
    from .safe_config import SafeConfig

    return SafeController(SafeConfig(**settings))


_register_builtins()
