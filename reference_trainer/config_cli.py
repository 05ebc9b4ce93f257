"""The configs from the command line: ``--set key=value`` strings parsed by each field's type,
an optional saved base (``--resume``), and the field list ``--help`` prints."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any, TypeVar, get_type_hints

from safecontrol import registry
from safecontrol.field_docs import field_docs

from . import recipes
from .config import TrainConfig, as_dict

C = TypeVar("C")


def describe_fields(cls: type) -> str:
    """``name = default`` and its doc for every field: the epilog of ``--help``."""
    docs = field_docs(cls)
    defaults = as_dict(cls())
    lines = [f"{cls.__name__} fields (--set KEY=VALUE):"]
    for f in fields(cls):
        lines.append(f"  {f.name} = {json.dumps(defaults[f.name])}")
        lines.append(f"      {docs.get(f.name, '(undocumented)')}")
    if cls is TrainConfig:
        lines.append("\nControllers (--algo NAME, --set controller_settings='{...}'):")
        for name in recipes.names():
            controller = recipes.recipe(name).controller
            registration = registry.registration(controller)
            lines.append(f"  {name}: {recipes.summary(name)}")
            if controller != name:
                lines.append(f"      (the settings of {controller})")
                continue
            for key, value in registration.defaults().items():
                lines.append(f"      {key} = {value!r}: {registration.docs[key]}")
    return "\n".join(lines)


def _parse(kind: Any, name: str, text: str) -> Any:
    """A command-line string as the field's type (JSON for dicts and booleans)."""
    try:
        if kind is bool:
            return {"true": True, "false": False, "1": True, "0": False}[text.lower()]
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
        return json.loads(text)
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f"{name}: cannot parse {text!r} as {getattr(kind, '__name__', kind)}"
        ) from exc


def build(
    cls: type[C],
    overrides: dict[str, Any] | None = None,
    strings: bool = False,
    base: dict[str, Any] | None = None,
) -> C:
    """``cls`` with ``overrides`` applied over ``base`` (typed values, e.g. a saved
    ``config.json``; default: the field defaults); unknown keys are an error naming them.

    With ``strings=True`` the overrides are command-line strings, parsed by the field's type.
    """
    overrides = dict(overrides or {})
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted((set(overrides) | set(base or {})) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; known keys: {sorted(known)}")
    if strings:
        kinds = {name: hints[name] for name in overrides}
        overrides = {
            k: _parse(kinds[k] if kinds[k] in (bool, int, float, str) else dict, k, v)
            for k, v in overrides.items()
        }
    return cls(**{**(base or {}), **overrides})


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``["lr=1e-3", "algo=ppo"]`` → ``{"lr": "1e-3", "algo": "ppo"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out
