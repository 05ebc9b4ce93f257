#!/usr/bin/env bash
# One prepared check of the reference trainer on a machine with a GPU, well under 8 minutes: a
# ~100 M-parameter GPT-2 built from a config (random init, a tokenizer trained on the Python
# reference that ships with CPython: no download), a few kl-budget iterations in bfloat16 on CUDA
# with tokens/s and peak memory, and the first iteration's decision beside the same iteration on
# the CPU in float32 (benchmarks/speed/gpu_check.py). Extra arguments go to the check and override
# the defaults; CI runs the same script tiny on the CPU so that it cannot rot:
#   bash scripts/gpu_check.sh --device cpu --dtype float32 --size tiny --iterations 1
# It deliberately does not source _env.sh: a GPU machine has its own torch build and may have no
# network, so nothing is installed. Python: $PYTHON, else the project's .venv, else python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then
    PY="$ROOT/.venv/bin/python"
else
    PY=python3
fi
export PYTHONUNBUFFERED=1
# Everything is local: a hub lookup would only wait on a network that may not be there.
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec "$PY" -m benchmarks.speed.gpu_check --device cuda --dtype bfloat16 --size 100m --iterations 3 "$@"
