"""Each package uses another only through its public names: the trainer, the benchmarks and the
examples import no module or name of ``safecontrol`` (or of each other) that starts with an
underscore, so that what they lean on is what a user may lean on too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("safecontrol", "reference_trainer", "benchmarks")
USERS = ("reference_trainer", "benchmarks", "examples")


def is_private(name: str) -> bool:
    """``_x``, not a dunder such as ``__main__``."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_reaches(path: Path, own: str) -> list[str]:
    """``module`` or ``module:name`` of every import of another package's private part."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            pairs = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            pairs = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in pairs:
            parts = module.split(".")
            if parts[0] not in PACKAGES or parts[0] == own:
                continue
            if any(is_private(p) for p in parts[1:]) or is_private(name or ""):
                found.append(module if name is None else f"{module}:{name}")
    return found


@pytest.mark.parametrize("user", USERS)
def test_no_package_imports_another_s_private_names(user: str) -> None:
    files = sorted((ROOT / user).rglob("*.py"))
    assert files
    reaches = {str(f.relative_to(ROOT)): r for f in files if (r := private_reaches(f, user))}
    assert not reaches, reaches


def test_the_check_sees_a_private_module_and_a_private_name(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from safecontrol._state import require\n"
        "from safecontrol.classic import _batch_shape\n"
        "import safecontrol.atomic_files\n"
        "from benchmarks.steering.__main__ import main\n"
        "from ._local import x\n"
    )
    assert private_reaches(source, "benchmarks") == [
        "safecontrol._state:require",
        "safecontrol.classic:_batch_shape",
    ]
