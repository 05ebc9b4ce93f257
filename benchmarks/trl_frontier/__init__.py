"""Does kl-budget's result hold where users train? TRL's GRPOTrainer against a grid of fixed β.

Layers, each importing only those before it: ``plan`` (what runs) ← ``grpo_run`` (one GRPO run of
TRL's trainer, and the step limit's cost measured apart) ← ``aggregate`` (runs → typed per-regime
statistics) ← ``words`` (the sentences, computed once and stored in the results) ← ``render``
(markdown) ← ``__main__`` (the command, ``python -m benchmarks.trl_frontier``).
"""
