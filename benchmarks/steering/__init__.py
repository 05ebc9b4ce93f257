"""Does steering the KL budget beat the best fixed β on held-out gold, at 100 and 300 iterations?

Layers, each importing only those before it: ``plan`` (what runs) ← ``aggregate`` (runs, or the
per-run records of a results JSON → typed per-cell statistics) ← ``render`` (markdown) ←
``__main__`` (the command, ``python -m benchmarks.steering``). The study states no answer in
words: its page is tables, and the README's sentence about it is the pilot's reading.

``signals`` (``python -m benchmarks.steering.signals``) reads the same runs for another question:
which gold-free signal foretells a fall of the held-out gold (what a steering controller would
have to read).
"""
