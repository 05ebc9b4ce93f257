# Sourced by the quick-start scripts: a project-local virtual environment in .venv, (re)installed
# only when the requested extras or the package metadata change.
# Usage: source scripts/_env.sh EXTRAS   (e.g. "dev,torch")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-}"
VENV="$ROOT/.venv"
# torch is pinned to the CPU build that ships on this machine kind; an unpinned torch would pull
# a multi-GB CUDA build. The package metadata itself keeps a range (users bring their own build).
TORCH_PIN="torch==2.13.0"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
STAMP="$VENV/.installed-$(echo "$EXTRAS" | tr ',' '-')"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/_env.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "Installing safecontrol[$EXTRAS] into .venv ..." >&2
    PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    case ",$EXTRAS," in
        *,torch,*|*,trainer,*) PIP+=("$TORCH_PIN") ;;
    esac
    "${PIP[@]}" -e "$ROOT${EXTRAS:+[$EXTRAS]}"
    echo "$WANT" > "$STAMP"
fi
PY="$VENV/bin/python"
