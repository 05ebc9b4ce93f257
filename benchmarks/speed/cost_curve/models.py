"""The cost curve's models: GPT-2 of a ``Shape`` with random weights (weights do not change the
cost), the prepared default's tokenizer and prompts, cached as a prepared-style directory."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from benchmarks.speed.cost_curve.plan import N_POSITIONS, BuiltModel, Shape


def model_data_dir(cache: Path, shape: Shape) -> Path:
    """A data_dir whose prepared "default" is this shape's model: ``TrainConfig(model=...)`` and
    ``measure_trl_grpo(data_dir=...)`` (which loads ``PrepareConfig(data_dir).directory()``) then
    load the same directory."""
    return cache / shape.name


def build_model(cache: Path, shape: Shape, source: Path, seed: int = 0) -> tuple[Path, int]:
    """(directory, parameter count) of ``shape`` with ``source``'s tokenizer and prompts, built
    once (random init) and reused while its manifest matches."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from reference_trainer.config import PrepareConfig
    from reference_trainer.prepare import default_model as prepared

    directory = PrepareConfig(data_dir=str(model_data_dir(cache, shape))).directory()
    wanted = {"shape": asdict(shape), "n_positions": N_POSITIONS, "seed": seed}
    if prepared.is_prepared(directory):
        manifest = json.loads((directory / prepared.MANIFEST).read_text())
        if manifest.get("cost_curve") == wanted:
            return directory, int(manifest["parameters"])
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(source / "tokenizer", directory / "tokenizer")
    shutil.copy(source / prepared.PROMPTS, directory / prepared.PROMPTS)
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=N_POSITIONS,
            n_embd=shape.n_embd,
            n_layer=shape.n_layer,
            n_head=shape.n_head,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    model.save_pretrained(directory / "model")
    parameters = sum(p.numel() for p in model.parameters())  # tied embeddings counted once
    manifest = {"format": prepared.FORMAT_VERSION, "parameters": parameters, "cost_curve": wanted}
    # Written last: a build cut short leaves no manifest, so is_prepared refuses it next time.
    (directory / prepared.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return directory, parameters


def built_model(cache: Path, shape: Shape, source: Path) -> BuiltModel:
    """``shape`` built (or found in ``cache``) and described."""
    directory, parameters = build_model(cache, shape, source)
    return BuiltModel(
        **asdict(shape),
        n_positions=N_POSITIONS,
        parameters=parameters,
        directory=str(directory),
        data_dir=str(model_data_dir(cache, shape)),
    )
