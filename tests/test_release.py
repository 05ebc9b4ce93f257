"""Release hygiene: the README's API table is `safecontrol.__all__`, the version is written once,
the licence is an SPDX expression with its full text shipped, the changelog has the version."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import safecontrol

ROOT = Path(__file__).resolve().parents[1]
VERSION_FILE = ROOT / "safecontrol" / "_version.py"


def pyproject() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def table_cells(row: str) -> list[str]:
    """The cells of a markdown table row; ``\\|`` inside a cell is not a separator."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def public_api_table_names() -> list[str]:
    """The names in the first column of the first table under README's "## Public API": the
    leading identifier of each code span (``SafeController(config=…)`` names SafeController)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Public API\n") :]
    following = section.find("\n## ", 1)
    section = section if following < 0 else section[:following]
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[first + 2 :]:  # header and |---| rows
        if not line.startswith("|"):
            break
        rows.append(line)
    names = []
    for row in rows:
        for span in re.findall(r"`([^`]+)`", table_cells(row)[0]):
            match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", span)
            assert match, f"README Public API: {span!r} does not start with a name"
            names.append(match.group())
    return names


def test_readme_public_api_table_lists_exactly_safecontrol_all():
    names = public_api_table_names()
    duplicated = sorted({name for name in names if names.count(name) > 1})
    assert not duplicated, f"README Public API lists these twice: {duplicated}"
    missing = sorted(set(safecontrol.__all__) - set(names))
    extra = sorted(set(names) - set(safecontrol.__all__))
    assert not missing, f"in safecontrol.__all__ but not in README's Public API table: {missing}"
    assert not extra, f"in README's Public API table but not in safecontrol.__all__: {extra}"


def test_every_name_in_all_is_importable():
    for name in safecontrol.__all__:
        assert hasattr(safecontrol, name), name


def test_installed_version_is_the_package_version():
    assert importlib.metadata.version("safecontrol") == safecontrol.__version__


def test_version_is_written_once_in_version_file():
    project = pyproject()
    assert "version" not in project["project"], "pyproject.toml must not repeat the version"
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "safecontrol._version.__version__"
    assignment = re.compile(r"^__version__\s*=", re.M)
    assert assignment.search(VERSION_FILE.read_text())
    others = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "safecontrol").rglob("*.py")
        if path != VERSION_FILE and assignment.search(path.read_text())
    ]
    assert not others, f"__version__ assigned outside safecontrol/_version.py: {others}"


def test_license_is_an_spdx_expression_with_the_full_text_shipped():
    project = pyproject()["project"]
    assert project["license"] == "Apache-2.0"  # a string (PEP 639), not the deprecated table
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a notice
    metadata = importlib.metadata.metadata("safecontrol")
    assert metadata["License-Expression"] == "Apache-2.0"


def test_project_urls_are_absolute_http_urls():
    """PyPI refuses a Project-URL that is not an absolute http(s) URL (e.g. a bare file path)."""
    for label, url in pyproject()["project"].get("urls", {}).items():
        assert re.match(r"https?://[^/\s]+", url), f"project URL {label} = {url!r}"


def test_changelog_has_unreleased_and_this_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "\n## [Unreleased]\n" in text
    assert f"\n## [{safecontrol.__version__}] - " in text


def test_the_distribution_installs_no_benchmarks_package():
    """``benchmarks`` runs from a checkout; installed, a top-level package of that name would
    shadow any other project's."""
    from setuptools import find_packages

    include = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    found = find_packages(str(ROOT), include=include)
    assert "safecontrol" in found and "reference_trainer" in found
    assert not [name for name in found if name.split(".")[0] in ("benchmarks", "tests")]
