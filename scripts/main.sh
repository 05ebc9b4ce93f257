#!/usr/bin/env bash
# The main job on the embedded default: prepare the offline default (tokenizer, small causal LM,
# supervised pre-training; cached) and train it with the reference trainer under kl-budget (the
# controller that needs no β: a KL budget and an entropy floor set by the initial entropy, and a
# per-step KL limit; of the controllers at their defaults, the best mean gold regret over the
# frontier's six cells,
# benchmarks/results/frontier.md) on the sentiment
# task (VADER proxy, gold logged beside it; every 25 iterations both are measured on 512 held-out
# prompts, and the report gives the gold's drawdown from its best evaluation), then write the
# report. Running it again resumes or
# re-reports the same run. Extra arguments go to `train` (e.g. --set steps=50). The controller comparison on the surrogate plant is
# `python -m safecontrol.testing.demo`.
set -euo pipefail
source "$(dirname "$0")/_env.sh" "trainer"
cd "$ROOT"
ensure_corpus
RUN_DIR="${RUN_DIR:-runs/kl-budget-default}"
"$PY" -m reference_trainer prepare
RESUME=()
[ -f "$RUN_DIR/config.json" ] && RESUME=(--resume)
"$PY" -m reference_trainer train --algo kl-budget --set task=sentiment --set eval_every=25 --run-dir "$RUN_DIR" --report "${RESUME[@]}" "$@"
echo "Report: $RUN_DIR/report (summary.md, *.png)"
