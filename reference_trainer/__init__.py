"""The reference trainer: a readable PPO loop on Hugging Face causal LMs that embeds a
safecontrol controller (``python -m reference_trainer {prepare,train,report}``).

The algorithm: ``train.py`` (``Trainer.iteration``, step by step), ``losses.py``,
``policy_gradient.py``, ``rollout.py``, ``models.py``, ``evaluation.py``; where it runs:
``ranks.py``, ``device.py``; its configuration: ``config.py``, ``config_cli.py``, ``recipes.py``;
and three wings: ``tasks/`` (what the policy is scored on), ``prepare/`` (the offline default),
``run_dir/`` (what a run leaves behind). ``run.py`` drives a run in its directory.

A regular package (not a namespace package), so that its modules always come from this
directory, never from a second checkout that happens to be on the path.
"""
