#!/usr/bin/env bash
# The main job on the embedded default: the closed-loop demonstration on the surrogate RLHF plant,
# every controller side by side. Extra arguments go to `python -m safecontrol.demo`.
set -euo pipefail
source "$(dirname "$0")/_env.sh" ""
cd "$ROOT"
"$PY" -m safecontrol.demo "$@"
