"""One training run: model + tokenizer + data + TRL's SFTTrainer (+ PEFT LoRA)."""

from __future__ import annotations

import gc
import math
import os
import time
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import TrainerCallback

from sft_ui import data, jobdir, tracking
from sft_ui.config import AUTO_SAMPLES, SFTConfig
from sft_ui.worker import evaluation

# LoRA targets per architecture; anything else gets PEFT's "all-linear".
LORA_TARGETS: dict[str, list[str]] = {
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "falcon": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
    **{
        name: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        for name in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2", "smollm3")
    },
}

# Vocabulary columns per tile of TRL's fused LM head on a CPU (TRL: 32768). Without Triton its fold makes about eight
# fp32 temporaries of each [tokens, tile] block: SmolLM2-135M (49k vocabulary), LoRA, batch 4 x 256 peaked at 5.0 GB
# RSS, 4.2 GB with 4096, same losses, steps no slower (medians 4.6 vs 5.9 s; bench/worker_memory.py --rows long).
CPU_LM_HEAD_TILE = 4096


class Reporter(Protocol):
    """How a run talks to whoever started it (worker.__main__.StatusReporter)."""

    def should_stop(self) -> bool: ...
    def phase(self, name: str, **fields: Any) -> None: ...
    def progress(self, **fields: Any) -> None: ...
    def log_metrics(self, point: dict[str, Any]) -> None: ...
    def write_samples(self, lines: list[dict[str, Any]]) -> None: ...
    def event(self, type: str, message: str, level: str = "info", **data: Any) -> None: ...  # noqa: A002


class ReportCallback(TrainerCallback):
    """Sends each log line and the progress to the reporter; stops between steps when asked."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.started = time.monotonic()
        self.first_step = 0  # the step training began at: 0, or the checkpoint's when resumed
        self.last_loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.started = time.monotonic()
        self.first_step = state.global_step
        self.reporter.phase("training", total_steps=state.max_steps, step=state.global_step)
        if stop_everywhere(self.reporter.should_stop()):
            control.should_training_stop = True

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        elapsed = time.monotonic() - self.started
        step = state.global_step
        done = step - self.first_step
        eta = elapsed / done * (state.max_steps - step) if done > 0 else None
        self.reporter.progress(step=step, total_steps=state.max_steps, epoch=round(state.epoch or 0.0, 4),
                               eta_seconds=round(eta, 1) if eta is not None else None)
        if stop_everywhere(self.reporter.should_stop()):
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        if not logs or "train_runtime" in logs:
            return
        point = {"step": state.global_step, **{k: _number(v) for k, v in logs.items()},
                 "time": round(time.monotonic() - self.started, 3)}
        if "loss" in point:
            self.last_loss = point["loss"]
        self.reporter.log_metrics(point)

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        name = f"checkpoint-{state.global_step}"  # its folder under the job dir; a "path" key would make
        # gradio_client try to download it
        self.reporter.event("checkpoint", f"Checkpoint saved at step {state.global_step}", step=state.global_step,
                            checkpoint=name, folder=f"{jobdir.CHECKPOINTS}/{name}")

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # type: ignore[no-untyped-def]
        found = {k: _number(v) for k, v in (metrics or {}).items() if k.startswith("eval_") and "runtime" not in k
                 and "per_second" not in k}
        loss = found.get("eval_loss")
        self.reporter.event("evaluation", f"Evaluation at step {state.global_step}: eval loss "
                            f"{loss if loss is not None else 'not measured'}", step=state.global_step, **found)


def stop_everywhere(local: bool) -> bool:
    """True when any training process was asked to stop, so that all of them stop after the same step."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return local
    # One tiny all-reduce per step: a process that stopped alone would leave the others waiting forever.
    device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([1 if local else 0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


def _number(value: Any) -> Any:
    """A logged value rounded; NaN and infinities (a diverged loss) become None, which JSON can carry."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    return round(float(value), 6) if math.isfinite(value) else None


def pick_precision(requested: str) -> tuple[bool, bool, str]:
    """(bf16, fp16, note): what the hardware supports; a CPU falls back to fp32."""
    cuda = torch.cuda.is_available()
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    if requested == "auto":
        return (bf16_ok, cuda and not bf16_ok, "")
    if requested == "bf16" and not bf16_ok:
        return (False, cuda, "precision: bf16 is not supported here; using " + ("fp16" if cuda else "fp32"))
    if requested == "fp16" and not cuda:
        return (False, False, "precision: fp16 needs a GPU; using fp32")
    return (requested == "bf16", requested == "fp16", "")


def pick_fast_paths(config: SFTConfig, half: bool) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(TRL arguments, model loading arguments, notes): tf32, Liger and flash attention where this machine has them.

    `half` says whether the model loads in bf16/fp16 (flash attention needs one of them).
    """
    from importlib.util import find_spec

    cuda = torch.cuda.is_available()
    notes = []
    tf32 = bool(config.tf32 and cuda and torch.cuda.get_device_capability()[0] >= 8)
    liger = config.use_liger_kernel and cuda and find_spec("liger_kernel") is not None
    if config.use_liger_kernel and not liger:
        why = "needs a GPU" if not cuda else "needs the liger-kernel package (pip install liger-kernel)"
        notes.append(f"use_liger_kernel: {why}; training without it")
    loading: dict[str, Any] = {}
    if (config.padding_free or config.packing) and cuda:
        # Flash attention's variable-length kernel attends within each row; sdpa masks the whole flattened batch,
        # which costs (all tokens)^2 and can make padding-free slower than padding (bench/RESULTS.md).
        if half and find_spec("flash_attn") is not None:
            loading["attn_implementation"] = "flash_attention_2"
        else:
            notes.append("padding_free: flash attention is not available (pip install flash-attn, bf16/fp16), so "
                         "attention spans the whole flattened batch; padding-free may be slower than padding here")
    return {"tf32": tf32 or None, "use_liger_kernel": liger}, loading, notes


def check_packed_attention(model: Any) -> None:
    """Raise unless the model keeps rows that share a padding-free sequence from attending to each other.

    Two flattened sequences that differ only in their first row must give the same outputs for the second.
    """
    device = next(model.parameters()).device
    vocab = model.config.get_text_config().vocab_size
    first_a, first_b = torch.arange(3, 9) % vocab, torch.arange(20, 26) % vocab
    second = torch.arange(40, 45) % vocab
    positions = torch.cat([torch.arange(6), torch.arange(5)]).unsqueeze(0).to(device)
    outputs = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for first in (first_a, first_b):
            ids = torch.cat([first, second]).unsqueeze(0).to(device)
            outputs.append(model(input_ids=ids, position_ids=positions, use_cache=False).logits[0, 6:].float())
    model.train(was_training)
    scale = outputs[0].abs().max().item() or 1.0
    if (outputs[0] - outputs[1]).abs().max().item() > 1e-3 * scale:
        kind = getattr(model.config, "model_type", "this model")
        raise ValueError(f"padding_free: {kind}'s attention ({model.config._attn_implementation}) lets rows that "
                         "share a padding-free sequence see each other; turn padding_free and packing off")


def narrow_lm_head_tiles() -> None:
    """Make TRL's fused LM head score at most CPU_LM_HEAD_TILE vocabulary columns at a time (read on every call)."""
    import trl.trainer.utils as trl_utils

    if getattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", 0) > CPU_LM_HEAD_TILE:
        trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = CPU_LM_HEAD_TILE


def truncate_rows(dataset: Any, length: int) -> Any:
    """Cut every token column of a tokenized data set to `length` (TRL leaves padding-free rows uncut)."""
    tokens = ("input_ids", "labels", "completion_mask", "assistant_masks", "attention_mask", "token_type_ids")
    columns = [c for c in dataset.column_names if c in tokens]
    return dataset.map(lambda row: {c: row[c][:length] for c in columns}, desc="truncating")


def _max_length(config: SFTConfig, model: Any) -> int:
    """max_seq_length, capped at the positions the model has (a longer one would crash the step)."""
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    return min(config.max_seq_length, positions) if positions else config.max_seq_length


def lora_targets(model: Any, requested: list[str]) -> list[str] | str:
    """The modules LoRA adapts: the requested ones, else the architecture's usual set."""
    if requested:
        return requested
    return LORA_TARGETS.get(getattr(model.config, "model_type", ""), "all-linear")


def run(config: SFTConfig, job_dir: Path, data_root: Path, cache_dir: Path, reporter: Reporter,
        resume_from: Path | None = None) -> dict[str, Any]:
    """Train `config` and save into `job_dir` (continuing from checkpoint `resume_from`); returns the result."""
    from peft import LoraConfig
    from trl import SFTTrainer

    began = time.monotonic()
    # The imports made millions of objects that live as long as the process; without this, the full
    # collection accelerate runs when training begins spends ~0.5 s walking them.
    gc.freeze()
    bf16, fp16, note = pick_precision(config.precision)
    fast, loading, notes = pick_fast_paths(config, half=bf16 or fp16)
    notes = [note, *notes] if note else notes
    for line in notes:
        print(f"[sft-ui] {line}", flush=True)
        reporter.event("warning", line, "warning")

    tracked, trackers = tracking.trainer_setup(config.report_to, job_dir, data_root)  # a missing one fails here
    reporter.phase("loading_model")
    tokenizer = data.load_tokenizer(config.base_model, data_root, cache_dir)
    model = data.load_model(config.base_model, data_root, cache_dir,
                            dtype=torch.bfloat16 if bf16 else (torch.float16 if fp16 else torch.float32), **loading)
    if config.padding_free or config.packing:
        check_packed_attention(model)
    if reporter.should_stop():
        return {"stopped_early": True, "steps": 0}

    max_length = _max_length(config, model)
    if max_length < config.max_seq_length:
        notes.append(f"max_seq_length {config.max_seq_length} is more than the model's {max_length} positions: "
                     f"rows are counted and cut (or dropped) at {max_length}")
        print(f"[sft-ui] {notes[-1]}", flush=True)
        reporter.event("warning", notes[-1], "warning")
    reporter.phase("loading_data")
    shape: dict[str, Any] = {}
    # The rows are measured against the length training really uses, so truncated/dropped counts are true.
    counted = config.model_copy(update={"max_seq_length": max_length})
    train_set, eval_set, trl_kwargs = data.prepare(counted, data_root, tokenizer, shape, cache_dir=cache_dir)
    for line in data.describe(shape):
        print(f"[sft-ui] {line}", flush=True)
    report_rows(reporter, shape)
    if reporter.should_stop():
        return {"stopped_early": True, "steps": 0}

    cut_after = config.padding_free and not config.packing
    plan = evaluation_plan(config, eval_set is not None)
    args = trl_config(config, job_dir, plan, None if cut_after else max_length, {**fast, **trl_kwargs, **tracked}, bf16,
                      fp16)
    peft_config = None
    if config.use_lora:
        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                                 target_modules=lora_targets(model, config.lora_target_modules), task_type="CAUSAL_LM")
    if not torch.cuda.is_available():
        narrow_lm_head_tiles()
    callback = ReportCallback(reporter)
    held_out = eval_set if eval_set is not None else builtin_held_out(counted, data_root, tokenizer)
    watchers = evaluation.Watchers(config, plan, tokenizer, shape.get("prompt_style", "plain"), held_out, reporter)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                         processing_class=tokenizer, peft_config=peft_config,
                         callbacks=[callback, *watchers.all(), *trackers])
    if cut_after:
        trainer.train_dataset = truncate_rows(trainer.train_dataset, max_length)
        if trainer.eval_dataset is not None:
            trainer.eval_dataset = truncate_rows(trainer.eval_dataset, max_length)
    if resume_from is not None:
        print(f"[sft-ui] resuming from {resume_from.name}", flush=True)
    if resume_from is not None and finished_at(resume_from, trainer.args.max_steps):
        output = load_finished(trainer, resume_from)
    else:
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    stopped = reporter.should_stop()

    reporter.phase("saving")
    model_dir = job_dir / jobdir.MODEL
    trainer.save_model(str(model_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(model_dir))
    evaluated = watchers.report(plan.keep_best and trainer.state.best_model_checkpoint is not None,
                                (trainer.state.global_step, trainer.state.max_steps))
    if config.eval_max_rows and held_out is not None and not stopped and trainer.is_world_process_zero():
        reporter.phase("scoring")
        evaluated["score"] = evaluation.final_score(trainer.model, tokenizer, held_out, config, data_root, cache_dir)
        print(f"[sft-ui] score: {evaluated['score']['summary']}", flush=True)
    return {
        "output_dir": str(model_dir),
        "saved": "lora_adapter" if config.use_lora else "full_model",
        "steps": trainer.state.global_step,
        "final_loss": callback.last_loss,
        "train_loss": round(float(output.training_loss), 6),
        "train_runtime_seconds": round(float(output.metrics.get("train_runtime", 0.0)), 2),
        "runtime_seconds": round(time.monotonic() - began, 2),
        "train_rows": len(train_set),
        "stopped_early": stopped,
        "num_processes": trainer.args.world_size,
        **({"notes": notes} if notes else {}),
        **evaluated,  # eval_loss, perplexity, best, early_stop, score, samples, evaluations and their cost
        # dataset_format and prompt_style (how the playground writes prompts for this model), columns and
        # column_map, rows (read, used, dropped, truncated), tokens and warnings
        **shape,
    }


def report_rows(reporter: Reporter, shape: dict[str, Any]) -> None:
    """The data's row counts as an event, and each of its warnings (rows dropped or truncated) as one."""
    rows = shape.get("rows") or {}
    if rows:
        dropped = rows.get("dropped") or {}  # {reason: count}
        count = sum(dropped.values()) if isinstance(dropped, dict) else dropped
        reporter.event("data", f"Data: {rows.get('used')} rows used of {rows.get('read')} read, {count} dropped, "
                       f"{rows.get('truncated') or 0} truncated", rows=rows)
    for text in shape.get("warnings", []):
        reporter.event("warning", f"Data: {text}", "warning")


def finished_at(checkpoint: Path, max_steps: int) -> bool:
    """Whether `checkpoint` was saved at the run's last step (a job stopped during it)."""
    step = checkpoint.name.removeprefix("checkpoint-")
    return max_steps > 0 and step.isdigit() and int(step) >= max_steps


def load_finished(trainer: Any, checkpoint: Path) -> Any:
    """The checkpoint's weights and state, untrained further: resumed at max_steps, transformers' loop would still
    train one step past it (a 12-step job ended at step 13)."""
    from transformers import TrainerState
    from transformers.trainer_utils import TrainOutput

    trainer._load_from_checkpoint(str(checkpoint))
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    print(f"[sft-ui] {checkpoint.name} is the last step: nothing left to train", flush=True)
    return TrainOutput(trainer.state.global_step, losses[-1] if losses else float("nan"), {"train_runtime": 0.0})


def builtin_held_out(config: SFTConfig, data_root: Path, tokenizer: Any) -> Any:
    """The built-in data set's other split, converted, when training on it without an eval set (for the score
    and "auto" sample prompts); else None."""
    source = data.builtin_held_out(config)
    wanted = config.eval_max_rows > 0 or config.sample_prompts == [AUTO_SAMPLES]
    return data.held_out_rows(config, source, data_root, tokenizer)[0] if source is not None and wanted else None


def evaluation_plan(config: SFTConfig, evaluate: bool) -> evaluation.Plan:
    """When to evaluate and save, and whether the best checkpoint becomes the job's model."""
    every: int | float = config.eval_steps or 0.1  # a float below 1 is a fraction of the steps: ten evaluations
    keep = evaluate and (config.keep_best_model or config.early_stopping_patience > 0)
    return evaluation.Plan(evaluate, every, keep, config.metric_for_best)


def trl_config(config: SFTConfig, job_dir: Path, plan: evaluation.Plan, max_length: int | None,
               extra: dict[str, Any], bf16: bool, fp16: bool) -> Any:
    """TRL's own SFTConfig for `config` (`max_length` None: TRL must not cut; padding-free rows are cut after
    tokenizing, since TRL refuses max_length with padding_free but no packing). `extra`: fast paths, data kwargs."""
    import trl

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    # transformers keeps the best checkpoint only among saved ones, so keeping it saves at every evaluation.
    saving: dict[str, Any] = {"save_strategy": "steps" if config.save_steps else "no",
                              "save_steps": config.save_steps or 500}
    if plan.keep_best:
        saving = {"save_strategy": "steps", "save_steps": plan.every, "load_best_model_at_end": True}
    return trl.SFTConfig(
        output_dir=str(job_dir / jobdir.CHECKPOINTS),
        max_steps=config.max_steps or -1,
        num_train_epochs=config.num_train_epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a fraction of the steps
        lr_scheduler_type=config.lr_scheduler_type,
        weight_decay=config.weight_decay,
        seed=config.seed,
        logging_steps=config.logging_steps,
        save_total_limit=config.keep_checkpoints,  # transformers never deletes the best with load_best
        eval_strategy="steps" if plan.evaluate else "no",
        eval_steps=plan.every if plan.evaluate else None,
        metric_for_best_model=plan.metric if plan.evaluate else None,
        greater_is_better=plan.metric != "eval_loss" if plan.evaluate else None,
        **saving,
        max_length=max_length,
        packing=config.packing,
        padding_free=config.padding_free,
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=bf16,
        fp16=fp16,
        dataloader_num_workers=config.dataloader_num_workers,
        ddp_find_unused_parameters=False if distributed else None,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        **extra,
    )
