"""The speed benchmarks: what safecontrol's controllers and the reference trainer cost.

One module per benchmark, each a command (``python -m benchmarks.speed.<name>``; ``python -m
benchmarks.speed`` lists them), writing ``benchmarks/results/<name>.{json,md}``:

- ``overhead``: µs per controller ``update`` and its share of a trainer step;
- ``trainer_speed``: seconds per reference-trainer iteration by stage, beside TRL's GRPOTrainer;
- ``cost_curve`` (a package): how that cost grows with model size, length, dtype, micro-batches;
- ``entropy_from_logits``: the chunked entropy's memory and time against the full softmax;
- ``gpu_check``: the prepared check of the trainer on a GPU (``scripts/gpu_check.sh``).

Helpers: ``trl_peer`` (TRL's GRPOTrainer, the peer of trainer_speed and cost_curve) and
``step_clock`` (a transformers callback timing each optimizer step).
"""
