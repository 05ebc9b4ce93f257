"""Are two training runs the same, decision for decision? (the bit-for-bit reproduction check)

Compares the ``metrics.jsonl`` of two run directories step by step, ignoring wall-clock fields
(``seconds_*``, ``tokens_per_second``): every other value must be equal bit for bit. Prints the
fields that differ (and at which first step) and the fields only one run logs; exits 0 when the
common fields agree at every step.

    python -m benchmarks.compare_runs runs/old/stress/ppo/seed0 runs/new/stress/ppo/seed0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reference_trainer.run_dir.files import read_step_records

TIMING = ("seconds_", "tokens_per_second")


def compare(a: Path, b: Path) -> dict[str, Any]:
    rows_a = read_step_records(a / "metrics.jsonl")
    rows_b = read_step_records(b / "metrics.jsonl")
    keys_a = {k for row in rows_a for k in row if not k.startswith(TIMING)}
    keys_b = {k for row in rows_b for k in row if not k.startswith(TIMING)}
    first: dict[str, int] = {}
    for row_a, row_b in zip(rows_a, rows_b, strict=False):
        for key in sorted(keys_a & keys_b):
            if key not in first and row_a.get(key) != row_b.get(key):
                first[key] = row_a["step"]
    return {
        "steps": [len(rows_a), len(rows_b)],
        "differing": first,
        "only_first": sorted(keys_a - keys_b),
        "only_second": sorted(keys_b - keys_a),
        "identical": not first and len(rows_a) == len(rows_b),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_runs", description=__doc__)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    try:
        result = compare(args.first, args.second)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"steps {result['steps'][0]} / {result['steps'][1]}")
    for key, step in result["differing"].items():
        print(f"differs: {key} (first at step {step})")
    if result["only_first"] or result["only_second"]:
        print(
            f"only in the first: {result['only_first']}; "
            f"only in the second: {result['only_second']}"
        )
    print("identical" if result["identical"] else "DIFFERENT")
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
