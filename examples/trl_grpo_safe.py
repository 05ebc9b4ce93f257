"""GRPO with TRL, its KL coefficient β driven by safecontrol's SAFE controller.

Runs offline by default: without ``--model`` it builds a tiny word-level tokenizer and a 2-layer
Llama (hidden 32, ~30 k parameters) in ``<output-dir>/tiny-model`` and trains it for a few dozen
steps on CPU in about a minute. Nothing is downloaded.

    pip install "safecontrol[trl]"
    python examples/trl_grpo_safe.py                         # tiny local model, SAFE controller
    python examples/trl_grpo_safe.py --controller fixed-kl --set coef=0.001   # constant β
    python examples/trl_grpo_safe.py --controller pid-lagrangian-kl --set target=0.2
    python examples/trl_grpo_safe.py --model PATH            # your causal LM + tokenizer folder
    python examples/trl_grpo_safe.py --resume                # continue from the last checkpoint

``--controller`` is any name of ``safecontrol.registry`` (a controller you register before
``main()`` runs appears too) and each ``--set NAME=VALUE`` changes one of its settings (the value
read as JSON, else as a string); ``--list`` prints every controller with its settings. KL targets
and thresholds are in TRL's unit, k3 per token, except for a ``per_sequence`` controller
(``adaptive-kl``), whose target is per completion.

The reward is a toy: the mean lexicon score of the completion's words (``LEXICON``, positive
words +1, negative −1), i.e. "make the continuation positive". Swap in your own reward function.
The integration itself is one line, ``SafeBetaCallback.attach(trainer, name, settings=...)``;
the rest of this file is setup. The β trajectory is printed at the end and logged as ``safe/beta``.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from safecontrol import registry
from safecontrol.integrations.trl import SafeBetaCallback

LEXICON = {
    **dict.fromkeys(["good", "great", "happy", "bright", "warm", "kind", "love"], 1.0),
    **dict.fromkeys(["bad", "awful", "sad", "dark", "cold", "cruel", "hate"], -1.0),
}
NEUTRAL = ["the", "a", "an", "is", "was", "very", "not", "and", "but", "it", "felt", "looked"]
NEUTRAL += ["day", "night", "sun", "rain", "town", "sea"]
PROMPTS = [
    "the day was",
    "the night is",
    "the sun looked",
    "the rain felt",
    "the town is",
    "the sea was",
    "it felt very",
    "the day is not",
]


def lexicon_reward(completions: list[str], **kwargs: object) -> list[float]:
    """Mean lexicon score of each completion's words, in [-1, 1]."""
    scores = []
    for text in completions:
        words = text.lower().split()
        scores.append(sum(LEXICON.get(w, 0.0) for w in words) / max(len(words), 1))
    return scores


def build_tiny_model(path: str, seed: int) -> str:
    """A word-level tokenizer over LEXICON + NEUTRAL and a randomly initialised 2-layer Llama."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if os.path.isfile(os.path.join(path, "config.json")):
        return path  # built before: reuse, so reruns and resumes see the same model
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    for word in [*LEXICON, *NEUTRAL]:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece()  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``["target=0.2", ...]`` as ``{"target": 0.2, ...}``; values read as JSON, else strings."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--set takes NAME=VALUE, got {pair!r}")
        try:
            settings[name] = json.loads(text)
        except json.JSONDecodeError:
            settings[name] = text
    return settings


def list_controllers() -> None:
    for name in registry.names():
        registration = registry.registration(name)
        print(f"{name}: {registration.summary}")
        for setting, default in registration.defaults().items():
            print(f"    {setting} = {default!r}: {registration.docs[setting]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="folder with a causal LM and its tokenizer (default: tiny)")
    parser.add_argument("--output-dir", default="trl_grpo_safe_out")
    parser.add_argument("--controller", choices=registry.names(), default="safe")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the controller (repeatable); the SAFE controller gets TRL's k3",
    )
    parser.add_argument("--list", action="store_true", help="list the controllers and settings")
    parser.add_argument(
        "--beta",
        type=float,
        default=0.001,
        help="GRPOConfig.beta: must be > 0 so TRL loads a reference model (the callback sets β)",
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--completion-length", type=int, default=8)
    parser.add_argument("--save-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="resume from the last checkpoint")
    args = parser.parse_args()
    if args.list:
        list_controllers()
        return
    settings = parse_settings(args.set)

    model = args.model or build_tiny_model(os.path.join(args.output_dir, "tiny-model"), args.seed)
    config = GRPOConfig(
        output_dir=args.output_dir,
        beta=args.beta,
        max_steps=args.steps,
        learning_rate=args.lr,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=args.completion_length,
        logging_steps=1,
        save_steps=args.save_steps,
        report_to=[],
        use_cpu=args.model is None,
        disable_tqdm=True,
        seed=args.seed,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=lexicon_reward,
        args=config,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
    )
    SafeBetaCallback.attach(trainer, args.controller, settings=settings)  # the integration
    trainer.train(resume_from_checkpoint=True if args.resume else None)

    print(f"\n{'step':>5} {'beta':>10} {'kl':>9} {'entropy':>8} {'reward':>7}  phase")
    for log in trainer.state.log_history:
        if "safe/beta" in log:
            phase = log.get("safe/phase", float("nan"))
            print(
                f"{log['step']:5d} {log['safe/beta']:10.4g} {log['kl']:9.4g} "
                f"{log['entropy']:8.4f} {log['reward']:7.3f}  {phase:g}"
            )


if __name__ == "__main__":
    main()
