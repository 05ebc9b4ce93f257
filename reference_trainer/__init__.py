"""The reference trainer: a readable PPO loop on Hugging Face causal LMs that embeds a
safecontrol controller (``python -m reference_trainer {prepare,train,report}``).

A regular package (not a namespace package), so that its modules always come from this
directory, never from a second checkout that happens to be on the path.
"""
