"""Benchmarks of safecontrol's controllers: the surrogate plant sweep (``benchmarks.plant``), the
reference-trainer stability sweep (``benchmarks.stability``), the speed benchmarks
(``benchmarks.speed``: controller overhead, trainer speed, cost curve) and the README's Results
section (``benchmarks.readme_results``).

Run each from the repository root as a module, e.g. ``python -m benchmarks.plant --quick``; the
results they commit are in ``benchmarks/results/``.
"""
