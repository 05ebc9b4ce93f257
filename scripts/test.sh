#!/usr/bin/env bash
# The whole test suite: lint, then every test (unit, property-based, closed-loop, torch adapters).
# Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_env.sh" "dev,torch"
cd "$ROOT"
"$VENV/bin/ruff" check .
"$PY" -m pytest -n 2 "$@"
