"""A plain TRL script: the baseline that bench/overhead.py times sft-ui against (transformers/datasets/peft/trl only).

    python bench/plain_trl.py MODEL_DIR ROWS.jsonl OUT_DIR [--steps 200] [--full] [--stamps STAMPS.json]
                              [--batch-size 8] [--max-length 256] [--lora-targets c_attn,c_proj,c_fc] [--trl-defaults]

Trains MODEL_DIR on the prompt/completion rows of ROWS.jsonl with the settings sft-ui uses for its default config
(sft_ui/worker/training.py: batch 8, max length 256, lr 1e-3, linear schedule, seed 42, loss on the completion only, no
gradient checkpointing, fp32 on a CPU, LoRA r 16 / alpha 32 / dropout 0.05 on c_attn, c_proj, c_fc), saves the
model, and writes wall-clock time stamps of each phase, TRL's train_runtime, train_loss and the process's peak
resident memory (VmHWM) to STAMPS.json. --trl-defaults leaves bf16 and gradient_checkpointing to TRL's SFTConfig
defaults (both on in TRL 1.16) instead of sft-ui's choice (off on a CPU).
"""

from __future__ import annotations

import time

STAMPS: dict[str, float] = {"script_start": time.time()}  # before the heavy imports

import argparse  # noqa: E402 - the stamp above must come first
import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

STAMPS["imported"] = time.time()


class TrainBegin(TrainerCallback):
    """Stamps the moment the training loop starts (the same point where sft-ui reports its `training` phase)."""

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        STAMPS["train_begin"] = time.time()


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) in MiB; 0 where /proc is missing."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0.0)


def main() -> None:
    """Train, save, write the stamps."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("rows")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--full", action="store_true", help="train all weights instead of a LoRA adapter")
    parser.add_argument("--stamps", type=Path)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lora-targets", default="c_attn,c_proj,c_fc", help="comma-separated module names")
    parser.add_argument("--trl-defaults", action="store_true", help="TRL's own bf16 and gradient checkpointing")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()  # sft-ui's precision "auto"
    fp16 = cuda and not bf16
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    dtype = torch.bfloat16 if bf16 else (torch.float16 if fp16 else torch.float32)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype)
    STAMPS["model_loaded"] = time.time()

    with open(args.rows, encoding="utf-8") as fh:
        train_set = Dataset.from_list([json.loads(line) for line in fh])
    STAMPS["data_loaded"] = time.time()

    precision = (
        {}
        if args.trl_defaults
        else {
            "gradient_checkpointing": False,  # TRL's default is True; sft-ui's is off
            "bf16": bf16,
            "fp16": fp16,
        }
    )
    config = SFTConfig(
        output_dir=str(args.out_dir / "checkpoints"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=1e-3,
        lr_scheduler_type="linear",
        seed=42,
        logging_steps=1,
        save_strategy="no",
        max_length=args.max_length,
        completion_only_loss=True,
        use_cpu=not cuda,
        report_to=[],
        disable_tqdm=True,
        **precision,
    )
    peft_config = None
    if not args.full:
        peft_config = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules=args.lora_targets.split(","), task_type="CAUSAL_LM"
        )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=train_set,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[TrainBegin()],
    )
    STAMPS["trainer_ready"] = time.time()
    output = trainer.train()
    STAMPS["trained"] = time.time()
    trainer.save_model(str(args.out_dir / "model"))
    tokenizer.save_pretrained(str(args.out_dir / "model"))
    STAMPS["saved"] = time.time()

    report: dict[str, Any] = {
        "stamps": STAMPS,
        "train_runtime": float(output.metrics["train_runtime"]),
        "train_loss": float(output.training_loss),
        "steps": trainer.state.global_step,
        "train_rows": len(train_set),
        "bf16": config.bf16,
        "gradient_checkpointing": config.gradient_checkpointing,
        "peak_rss_mb": peak_rss_mb(),
    }
    if args.stamps:
        args.stamps.write_text(json.dumps(report), encoding="utf-8")
    else:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
