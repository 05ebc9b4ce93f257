#!/usr/bin/env bash
# The TRL integration tests against other trl releases than the one scripts/test.sh installs (the
# newest the `trl` extra allows). Each release gets a virtual environment of its own under
# .venv/trl-versions/VERSION that sees .venv's packages (torch, transformers, accelerate, datasets
# stay as installed there) and adds only that trl, installed without its dependencies.
# Usage: bash scripts/test_trl_versions.sh [VERSION ...]
#   default: 1.0.0 (the oldest release the extra allows) and 1.12.0 (the last whose Liger loss
#   freezes GRPO's beta; the first whose KL is token-weighted across processes is 1.9).
set -euo pipefail
source "$(dirname "$0")/_env.sh" "dev,trl"
cd "$ROOT"
[ "$#" -gt 0 ] || set -- 1.0.0 1.12.0
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
for version in "$@"; do
    venv="$VENV/trl-versions/$version"
    if [ ! -x "$venv/bin/python" ]; then
        "$PY" -m venv "$venv"
        venv_site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
        # After the venv's own site-packages, so that its trl shadows .venv's.
        echo "import site; site.addsitedir('$SITE')" > "$venv_site/zz_safecontrol_venv.pth"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
            "trl==$version"
    fi
    echo "== trl $("$venv/bin/python" -c 'import trl; print(trl.__version__)')" >&2
    "$venv/bin/python" -m pytest -q -n 0 tests/integrations/test_trl_*.py
done
