"""The offline default, built before any run (``python -m reference_trainer prepare``): corpus,
tokenizer and a small causal LM pre-trained on it (``default_model``, ``corpus``, ``sft``), and the
check that a named model or reward model can load without a download (``sources``)."""
