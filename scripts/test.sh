#!/usr/bin/env bash
# The whole test suite: lint and type check (ruff, mypy), then every test (unit, property-based,
# closed-loop, torch adapters, the reference trainer, the TRL and verl integrations), then the TRL
# tests once more on the oldest trl release the `trl` extra allows (1.0.0; the suite itself runs on
# the newest). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_env.sh" "dev,bench,torch,trainer,trl,verl,trackers"
cd "$ROOT"
ensure_corpus
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"  # strict, on safecontrol/ ([tool.mypy] in pyproject.toml)
"$PY" -m pytest -n 2 "$@"
bash "$ROOT/scripts/test_trl_versions.sh" 1.0.0
