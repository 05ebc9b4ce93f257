"""Every controller against the reward–KL frontier of tuned fixed β, judged by gold.

Layers, each importing only those before it: ``plan`` (what runs) ← ``records`` (one record per
run, from a run directory or a results JSON) ← ``aggregate`` (typed per-cell statistics, with
``cells``, ``choices`` and ``lr_curve``) ← ``plot_style`` and ``lr_report`` (the gold-against-lr
curves' sentence, table and plot) ← ``words`` (the answers, computed once) ← ``render`` (markdown
and plots) ← ``__main__`` (the command, ``python -m benchmarks.frontier``).
"""
