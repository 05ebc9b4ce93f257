"""Every controller on the surrogate RLHF plant (``safecontrol.testing``): how often KL runs away,
entropy collapses and reward crashes, over hundreds of seeds and plant settings.

Layers, each importing only those before it: ``plan`` (settings, controllers, event definitions)
← ``records`` (one record per run: from the plant, or read back from a results JSON) ←
``aggregate`` (typed rates, means and paired comparisons) ← ``words`` (the verdicts, computed
once) ← ``report`` (the results file's content and its JSON) ← ``render`` (markdown and the plot)
← ``__main__`` (the command, ``python -m benchmarks.plant``). ``steering`` compares kl-budget with
and without its steered budget on the same settings (``python -m benchmarks.plant.steering``).
"""
