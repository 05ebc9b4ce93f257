"""``python -m benchmarks.speed``: the speed benchmarks, one line each (the first line of each
benchmark's docstring, read without importing it: some import torch)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("overhead", "trainer_speed", "cost_curve", "entropy_from_logits", "gpu_check")
"""The runnable modules, in the order the list shows them."""


def summary(name: str) -> str:
    """The first line of the benchmark's docstring (a package's ``__init__``'s)."""
    path = HERE / name / "__init__.py" if (HERE / name).is_dir() else HERE / f"{name}.py"
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    return docstring.split("\n\n", 1)[0].replace("\n", " ")


def listing() -> str:
    width = max(len(name) for name in BENCHMARKS)
    lines = ["python -m benchmarks.speed.<name>, with --help for its flags:", ""]
    lines += [f"  {name:<{width}}  {summary(name)}" for name in BENCHMARKS]
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(listing())
    return 0


if __name__ == "__main__":
    sys.exit(main())
