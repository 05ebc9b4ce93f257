"""SAFE's published comparison reproduced on the reference trainer, with SAFE's ablations.

PPO with β = 0.05, Ziegler's adaptive KL, PID-Lagrangian and SAFE, in two regimes (lr 1e-3 and
1e-2) over 8 paired seeds, and five ablations of SAFE in the stress regime over 5 seeds, 150 PPO
iterations each on the offline default's reward; verdicts on the paper's claims (SPEC §1.5).

Layers, each importing only those before it: ``plan`` (what runs) ← ``records`` (one record per
run, from a run directory or a results JSON; ``codec`` reads typed records back from JSON) ←
``aggregate`` (typed per-group statistics and paired tests) ← ``words`` (the claims and ablation
readings, computed once) ← ``results`` (the stored file) ← ``render`` (markdown and plots) ←
``__main__`` (the command, ``python -m benchmarks.stability``); ``rerun`` compares a re-run group
with the stored results (``python -m benchmarks.stability.rerun``).

Why a study of its own and not a view of the frontier sweep (``benchmarks.frontier``): the two
share the trainer and the runner but not one run. The frontier asks "does a controller at its
defaults remove the search for β?" and judges every controller by the gold reward of three tasks
against the best fixed β in hindsight (100 iterations). This study asks "do the paper's claims
hold under the paper's own protocol?": its baselines are the published ones (β = 0.05 — not on
the frontier's grid —, Ziegler's controller with β0 = 0.05 and a 4.8-nat sequence target,
PID-Lagrangian with a 0.3 per-token target), on the default reward, at 150 iterations, and it
measures what the frontier does not: reward crashes, volatility, entropy collapse, time above the
KL limit, wall time, and which part of SAFE (gate, PID, phase detector, second critic, the
published code's detached penalty) does what. A view would need those runs in the frontier
sweep; until then the stability runs stay their own sweep.
"""
