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
# verl without its own dependencies (the `verl` extra lists those its KL path imports), and
# OpenRLHF without its own (flash-attn, deepspeed, vllm: no CPU build; the tests read only its KL
# controller module, which needs numpy).
VERL_PIN="verl==0.9.1"
OPENRLHF_PIN="openrlhf==0.11.2"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
STAMP="$VENV/.installed-$(echo "$EXTRAS" | tr ',' '-')"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/_env.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "Installing safecontrol[$EXTRAS] into .venv ..." >&2
    PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    case ",$EXTRAS," in
        *,torch,*|*,trainer,*|*,trl,*|*,verl,*) PIP+=("$TORCH_PIN") ;;
    esac
    "${PIP[@]}" -e "$ROOT${EXTRAS:+[$EXTRAS]}"
    case ",$EXTRAS," in
        *,verl,*) "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
                      --no-deps "$VERL_PIN" "$OPENRLHF_PIN" ;;
    esac
    echo "$WANT" > "$STAMP"
fi
PY="$VENV/bin/python"

# The offline corpus of the reference trainer (SPEC §6): Debian's fortunes and WordNet examples.
# Installed when missing and we may (root with apt-get); otherwise the trainer falls back to the
# corpus that ships with Python and says so.
ensure_corpus() {
    if [ -d /usr/share/games/fortunes ] && [ -f /usr/share/wordnet/data.noun ]; then
        return 0
    fi
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing the corpus (apt-get install fortunes wordnet-base) ..." >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq fortunes wordnet-base) >/dev/null 2>&1 ||
            echo "warning: could not install fortunes/wordnet-base; using the fallback corpus" >&2
    else
        echo "note: fortunes/wordnet-base missing (apt-get install fortunes wordnet-base);" \
             "using the fallback corpus" >&2
    fi
}
