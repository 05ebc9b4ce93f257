"""One rank of a two-process TRL GRPO run with kl-budget's step limit binding (launched by
tests/integrations/test_trl_distributed.py under ``torchrun --nproc_per_node 2``, gloo on CPU).

Usage: trl_distributed_worker.py MODEL_DIR OUTPUT_DIR MAX_STEPS CONTROLLER [resume]

Each rank writes ``rank<r>.json``: per optimizer step the global step, β, the step scale and step
KL the callback logged, and a checksum of its policy weights after the step.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from integrations.trl_tiny import make_trainer

from safecontrol.integrations.trl import SafeBetaCallback


class Record(TrainerCallback):
    def __init__(self, trainer, callback) -> None:
        self.trainer, self.callback, self.steps = trainer, callback, []

    def on_step_end(self, args, state, control, **kwargs):
        limit = self.callback.step_limit
        weights = sum(float(p.detach().double().sum()) for p in self.trainer.model.parameters())
        self.steps.append(
            {
                "step": state.global_step,
                "beta": self.trainer.beta,
                "step_scale": limit.scale,
                "step_kl": limit.step_kl,
                "weights": weights,
            }
        )


def main() -> None:
    model_dir, output_dir, max_steps, controller = sys.argv[1:5]
    resume = len(sys.argv) > 5
    trainer = make_trainer(
        model_dir,
        output_dir,
        max_steps=int(max_steps),
        save_strategy="steps",
        save_steps=2,
        ddp_backend="gloo",
    )
    settings = {"step_ratio": 1e-4} if controller == "kl-budget" else {}
    callback = SafeBetaCallback.attach(trainer, controller, settings=settings)
    record = Record(trainer, callback)
    trainer.add_callback(record)
    trainer.train(resume_from_checkpoint=True if resume else None)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    name = f"rank{rank}{'-resumed' if resume else ''}.json"
    (Path(output_dir) / name).write_text(json.dumps(record.steps))


if __name__ == "__main__":
    main()
