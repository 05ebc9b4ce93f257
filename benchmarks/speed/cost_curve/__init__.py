"""How the reference trainer's cost grows with model size: seconds per iteration, peak memory and
where the time goes, beside a bare ``model.generate`` and TRL's GRPOTrainer.

GPT-2 models of four sizes (0.34 M to 32.6 M parameters, random init: weights do not change the
cost) share the prepared default's tokenizer and prompts; each is cached as a prepared-style
directory under ``<data-dir>/cost_curve/``. Every configuration (model size × response length 16 /
48 × float32 / bfloat16, and micro-batch sizes 0 / 16 / 8 / 4 at the largest size) runs in a
fresh subprocess, so its peak RSS (``ru_maxrss``; on CUDA also ``max_memory_allocated``) is its own:
``--warmup`` iterations, then the median of ``--iterations`` timed ones (``--largest-iterations``
for the largest model), 32 prompts, kl-budget, VADER reward, ``min_new_tokens = max_new_tokens`` so
that every response has exactly the length; the step limiter's own forwards are counted.
After each iteration the same process times a bare ``model.generate`` of the iteration's 32 prompts
with the trainer's sampling settings: the floor of a trainer that samples with HF generate. TRL's
GRPOTrainer (``benchmarks.speed.trl_peer.measure_trl_grpo``: 32 completions of at most 16 tokens)
runs on the same models in the same run; its tokens/s are compared with the trainer's at length 16.
The analysis fits the exponent of cost in parameters and writes ``cost_curve.{json,md,png}`` under
``--out``.

    python -m benchmarks.speed.cost_curve            # ~15 minutes on 2 quiet cores
    python -m benchmarks.speed.cost_curve --quick    # tiny models, 1 iteration: a smoke test
    python -m benchmarks.speed.cost_curve --render   # the md and png again from the json

Modules, each importing only those above it: ``plan`` (shapes, plan, jobs), ``models`` (building
them), ``measure`` (one configuration in its own process), ``provenance`` (machine, trainer
source), ``aggregate`` (the typed analysis), ``render`` (the files), ``__main__`` (the command).
"""
