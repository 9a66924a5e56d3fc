"""SFTConfig: every option of one fine-tuning job, with its default, bounds and help text."""

from __future__ import annotations

import json
import math
import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sft_ui import settings

BUILTIN_MODEL = "builtin:tiny-gpt2"
BUILTIN_DATASET = "builtin:tasks"

DatasetFormat = Literal["auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text"]
Scheduler = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
PromptTemplate = Literal["auto", "chat", "alpaca", "plain"]
Truncation = Literal["cut", "drop"]
BestMetric = Literal["eval_loss", "eval_mean_token_accuracy"]
Tracker = Literal["tensorboard", "trackio", "wandb", "mlflow"]  # report_to (sft_ui.tracking)
AUTO_SAMPLES = "auto"  # sample_prompts: the first held-out rows instead of typed prompts
MAX_COLUMN_MAP = 32  # entries of column_map
MAX_SAMPLE_PROMPTS = 8  # each is answered at every sample step, between training steps
MAX_PROMPT_LENGTH = 4000


# Upper limits (settings, documented in README); read once at import.
MAX_STEPS = settings.limit("steps", 100_000)
MAX_BATCH_SIZE = settings.limit("batch_size", 512)
MAX_SEQ_LENGTH = settings.limit("seq_length", 32_768)
MAX_LORA_R = settings.limit("lora_r", 1024)
MAX_NAME_LENGTH = settings.limit("name_length", 200)
MAX_PROCESSES = settings.limit("processes", 8)

# A lone surrogate cannot be encoded as UTF-8 (the database, JSON answers); Cc control characters
# (C0, DEL, C1) break names, paths and logs. Prompts may hold newlines and tabs.
_BAD_TEXT = re.compile(r"[\ud800-\udfff\x00-\x1f\x7f-\x9f]")
_BAD_MULTILINE = re.compile(r"[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def check_text(value: Any, field: str = "", multiline: bool = False) -> Any:
    """`value` as given, or ValueError '<field>: contains ...' for a lone surrogate or a control character.

    `multiline` allows newline, carriage return and tab; a value that is not a str is left to the type checks.
    """
    found = (_BAD_MULTILINE if multiline else _BAD_TEXT).search(value) if isinstance(value, str) else None
    if found is None:
        return value
    code = ord(found.group())
    if 0xD800 <= code <= 0xDFFF:
        problem = f"contains a lone surrogate (\\u{code:04x}) at position {found.start()}: text must be valid Unicode"
    else:
        problem = f"contains a control character U+{code:04X} at position {found.start()}"
    raise ValueError(f"{field}: {problem}" if field else problem)


# Request-model text types (pydantic names the field in its error).
Text = Annotated[str, BeforeValidator(check_text)]
MultilineText = Annotated[str, BeforeValidator(lambda value: check_text(value, multiline=True))]


class SFTConfig(BaseModel):
    """One supervised fine-tuning job. `SFTConfig()` trains the built-in demo on a CPU."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    job_name: str = Field(
        "", max_length=MAX_NAME_LENGTH, description="A name to find the job by; empty uses the model and data set.",
        json_schema_extra={"group": "Job"},
    )

    base_model: str = Field(
        BUILTIN_MODEL,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Hub id, local model folder under the data root, or builtin:tiny-gpt2.",
        json_schema_extra={"group": "Model and data"},
    )
    dataset_name: str = Field(
        BUILTIN_DATASET,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Hub id, local .json/.jsonl/.csv/.parquet/.txt file under the data root, or builtin:tasks.",
        json_schema_extra={"group": "Model and data"},
    )
    dataset_format: DatasetFormat = Field(
        "auto", description="Row format; auto detects it from the columns.",
        json_schema_extra={"group": "Model and data"},
    )
    dataset_split: str = Field(
        "train", min_length=1, max_length=100, description="Split of the data set to train on.",
        json_schema_extra={"group": "Model and data"},
    )
    max_samples: int | None = Field(
        None, ge=1, le=10_000_000, description="Use at most this many rows (empty: all).",
        json_schema_extra={"group": "Model and data"},
    )
    max_seq_length: int = Field(
        256, ge=16, le=MAX_SEQ_LENGTH, description="Longest sequence in tokens; longer rows are truncated.",
        json_schema_extra={"group": "Model and data"},
    )

    max_steps: int | None = Field(
        200, ge=1, le=MAX_STEPS, description="Optimizer steps to train; empty trains num_train_epochs instead.",
        json_schema_extra={"group": "Training"},
    )
    num_train_epochs: float = Field(
        1.0, gt=0.0, le=1000.0, description="Passes over the data, used when max_steps is empty.",
        json_schema_extra={"group": "Training"},
    )
    learning_rate: float = Field(
        1e-3, gt=0.0, le=1.0, description="Peak learning rate.",
        json_schema_extra={"group": "Training"},
    )
    batch_size: int = Field(
        8, ge=1, le=MAX_BATCH_SIZE, description="Rows per device per step.",
        json_schema_extra={"group": "Training"},
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=1024, description="Steps whose gradients add up before one optimizer update.",
        json_schema_extra={"group": "Training"},
    )
    warmup_ratio: float = Field(
        0.0, ge=0.0, le=0.5, description="Fraction of steps spent warming the learning rate up.",
        json_schema_extra={"group": "Training"},
    )
    lr_scheduler_type: Scheduler = Field(
        "linear", description="How the learning rate changes over training.",
        json_schema_extra={"group": "Training"},
    )
    weight_decay: float = Field(
        0.0, ge=0.0, le=1.0, description="AdamW weight decay.",
        json_schema_extra={"group": "Training"},
    )
    seed: int = Field(
        42, ge=0, le=2**31 - 1, description="Random seed for data order and initialisation.",
        json_schema_extra={"group": "Training"},
    )
    logging_steps: int = Field(
        1, ge=1, le=10_000, description="Record loss every this many steps.",
        json_schema_extra={"group": "Training"},
    )
    save_steps: int = Field(
        0, ge=0, le=MAX_STEPS, description="Save a checkpoint every this many steps (0: only at the end).",
        json_schema_extra={"group": "Training"},
    )
    keep_checkpoints: int = Field(
        3, ge=1, le=100, description="Checkpoints kept on disk (the best one is never deleted)",
        json_schema_extra={"group": "Training"},
    )
    output_dir: str = Field(
        "outputs",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Folder under the data root; each job writes to <output_dir>/<job_id>.",
        json_schema_extra={"group": "Training"},
    )

    eval_split: float = Field(
        0.0, ge=0.0, le=0.5, description="Fraction of training rows held out for evaluation (0: none).",
        json_schema_extra={"group": "Evaluation"},
    )
    eval_dataset: str = Field(
        "", max_length=MAX_NAME_LENGTH,
        description="A second data set to evaluate on, named like dataset_name (empty: eval_split).",
        json_schema_extra={"group": "Evaluation"},
    )
    eval_dataset_split: str = Field(
        "test", min_length=1, max_length=100, description="Split of eval_dataset (hub and built-in data sets).",
        json_schema_extra={"group": "Evaluation"},
    )
    eval_steps: int = Field(
        0, ge=0, le=MAX_STEPS, description="Evaluate every this many steps (0: ten times per run).",
        json_schema_extra={"group": "Evaluation"},
    )
    metric_for_best: BestMetric = Field(
        "eval_loss", description="What makes a checkpoint the best: eval loss (lower) or token accuracy (higher).",
        json_schema_extra={"group": "Evaluation"},
    )
    early_stopping_patience: int = Field(
        0, ge=0, le=1000, description="Stop after this many evaluations without improvement (0: never).",
        json_schema_extra={"group": "Evaluation"},
    )
    early_stopping_threshold: float = Field(
        0.0, ge=0.0, le=100.0, description="How much the metric must improve for an evaluation to count as better.",
        json_schema_extra={"group": "Evaluation"},
    )
    keep_best_model: bool = Field(
        False, description="Save at each evaluation and keep the best as the job's model (on with early stopping).",
        json_schema_extra={"group": "Evaluation"},
    )
    eval_max_rows: int = Field(
        100, ge=0, le=10_000, description="Held-out rows (the eval set, or the built-in data's test split) whose "
        "greedy answers are scored at the end, tuned against base, by exact match and token F1 (0: no score).",
        json_schema_extra={"group": "Evaluation"},
    )
    sample_prompts: list[str] = Field(
        default_factory=list, max_length=MAX_SAMPLE_PROMPTS,
        description='Prompts the model answers while it trains, one per line; "auto": the first held-out rows.',
        json_schema_extra={"group": "Evaluation"},
    )
    sample_steps: int = Field(
        0, ge=0, le=MAX_STEPS, description="Answer the sample prompts every this many steps (0: ten times per run).",
        json_schema_extra={"group": "Evaluation"},
    )
    sample_max_new_tokens: int = Field(
        32, ge=1, le=1024, description="Longest sample answer and scored answer, in tokens.",
        json_schema_extra={"group": "Evaluation"},
    )

    use_lora: bool = Field(
        True, description="Train a LoRA adapter instead of all weights.",
        json_schema_extra={"group": "LoRA"},
    )
    lora_r: int = Field(16, ge=1, le=MAX_LORA_R, description="LoRA rank.", json_schema_extra={"group": "LoRA"})
    lora_alpha: int = Field(
        32, ge=1, le=4 * MAX_LORA_R, description="LoRA scaling numerator (scale = alpha / r).",
        json_schema_extra={"group": "LoRA"},
    )
    lora_dropout: float = Field(
        0.05, ge=0.0, le=0.9, description="Dropout on the LoRA branch.",
        json_schema_extra={"group": "LoRA"},
    )
    lora_target_modules: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Module names to adapt; empty picks them for the architecture.",
        json_schema_extra={"group": "LoRA"},
    )

    packing: bool = Field(
        False, description="Pack several rows into each max_seq_length sequence (no padding, fewer steps per epoch).",
        json_schema_extra={"group": "Performance"},
    )
    padding_free: bool = Field(
        False, description="Flatten each batch into one sequence without pad tokens (same rows per step, less work).",
        json_schema_extra={"group": "Performance"},
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations to save memory (slower).",
        json_schema_extra={"group": "Performance"},
    )
    precision: Precision = Field(
        "auto", description="auto: bf16/fp16 on a GPU that has it, fp32 on CPU.",
        json_schema_extra={"group": "Performance"},
    )
    tf32: bool = Field(
        True, description="Use TF32 matrix maths on GPUs that have it (Ampere or newer); ignored elsewhere.",
        json_schema_extra={"group": "Performance"},
    )
    use_liger_kernel: bool = Field(
        False, description="Liger's fused Triton kernels (needs a GPU and the liger-kernel package; else ignored).",
        json_schema_extra={"group": "Performance"},
    )
    dataloader_num_workers: int = Field(
        0, ge=0, le=64, description="Processes that prepare batches beside training (0: in the training process).",
        json_schema_extra={"group": "Performance"},
    )
    num_processes: int = Field(
        1, ge=1, le=MAX_PROCESSES, description="Data-parallel processes (one per GPU) launched with accelerate.",
        json_schema_extra={"group": "Performance"},
    )

    completion_only_loss: bool = Field(
        True, description="Compute the loss on the response only (instruction formats).",
        json_schema_extra={"group": "Advanced"},
    )
    prompt_template: PromptTemplate = Field(
        "auto", description="How alpaca and prompt/completion rows are written: chat (the model's chat template), "
        "alpaca (### Instruction:), plain; auto: chat when the model ships a chat template.",
        json_schema_extra={"group": "Advanced"},
    )
    column_map: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_COLUMN_MAP,
        description='Rename your columns (or turn keys) to a format\'s names, e.g. {"question": "instruction", '
        '"answer": "output"} or {"speaker": "role", "text": "content"}.',
        json_schema_extra={"group": "Advanced"},
    )
    truncation: Truncation = Field(
        "cut", description="Rows longer than max_seq_length: cut them, or drop them (counted as dropped).",
        json_schema_extra={"group": "Advanced"},
    )
    report_to: list[Tracker] = Field(
        default_factory=list, max_length=4,
        description="Experiment trackers that log the run: tensorboard (event files in the job dir), trackio (a "
        "local project under the data dir), wandb and mlflow (when installed, with their usual environment variables).",
        json_schema_extra={"group": "Tracking"},
    )

    @field_validator("*", mode="before")
    @classmethod
    def _clean_text(cls, value: Any, info: ValidationInfo) -> Any:
        """Every text field and list item: no lone surrogate, no control character (before any other check).

        Sample prompts, like the playground's, may hold newlines and tabs."""
        multiline = info.field_name == "sample_prompts"
        if isinstance(value, list):
            for i, item in enumerate(value):
                check_text(item, f"item {i}", multiline)
        return check_text(value, multiline=multiline)

    @field_validator("column_map", mode="before")
    @classmethod
    def _column_map(cls, value: Any) -> Any:
        """A dict (or its JSON text, as the form sends it) of non-empty names without control characters."""
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError('must be a JSON object of column names, e.g. {"question": "instruction"}') from None
        if not isinstance(value, dict):
            raise ValueError('must be an object of column names, e.g. {"question": "instruction"}')
        for key, name in value.items():
            for item in (key, name):
                if not isinstance(item, str) or not item.strip() or len(item) > 100:
                    raise ValueError(f"names must be non-empty strings of at most 100 characters, got {item!r:.80}")
                check_text(item, f"{key!r:.40}")
        if len(set(value.values())) < len(value):
            raise ValueError("two columns map to the same name")
        return value

    @field_validator("sample_prompts", mode="before")
    @classmethod
    def _sample_prompts(cls, value: Any) -> Any:
        """A list of prompts, or text with one per line (as the form sends it); "auto" alone means held-out rows."""
        if isinstance(value, str):
            value = [line for line in value.splitlines() if line.strip()]
        if not isinstance(value, list):
            return value
        for i, prompt in enumerate(value):
            if isinstance(prompt, str) and not prompt.strip():
                raise ValueError(f"item {i}: an empty prompt")
            if isinstance(prompt, str) and len(prompt) > MAX_PROMPT_LENGTH:
                raise ValueError(f"item {i}: longer than {MAX_PROMPT_LENGTH} characters")
        if AUTO_SAMPLES in value and len(value) > 1:
            raise ValueError(f'"{AUTO_SAMPLES}" stands alone: it picks the first held-out rows')
        return value

    @field_validator("base_model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if any(c.isspace() for c in value):
            raise ValueError("must not contain spaces: a Hub id (owner/name), a folder under the data root or "
                             f"{BUILTIN_MODEL}")
        return value

    @field_validator("output_dir")
    @classmethod
    def _relative_dir(cls, value: str) -> str:
        path = PurePosixPath(value.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or ":" in value:
            raise ValueError("must be a relative folder inside the data root")
        if any(len(part.encode()) > 255 for part in path.parts):
            raise ValueError("each folder name must be at most 255 bytes")
        return value

    @field_validator("lora_target_modules")
    @classmethod
    def _module_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.strip(".") or len(name) > 100 or not all(c.isalnum() or c in "._-" for c in name):
                raise ValueError(f"not a module name: {name!r}")  # '.' and '..' are folders, not modules
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SFTConfig:
        if self.save_steps and self.max_steps is not None and self.save_steps > self.max_steps:
            raise ValueError(f"save_steps ({self.save_steps}) is larger than max_steps ({self.max_steps})")
        if self.eval_split > 0 and self.eval_dataset.strip():
            raise ValueError("eval_split and eval_dataset: choose one source of held-out rows (set eval_split to 0)")
        evaluates = self.eval_split > 0 or bool(self.eval_dataset.strip())
        for name, on in (("early_stopping_patience", self.early_stopping_patience > 0),
                         ("keep_best_model", self.keep_best_model)):
            if on and not evaluates:
                raise ValueError(f"{name}: needs evaluations: set eval_split above 0 or name an eval_dataset")
        if self.sample_prompts == [AUTO_SAMPLES] and not self.has_held_out:
            raise ValueError('sample_prompts: "auto" needs held-out rows: set eval_split above 0 or name an '
                             "eval_dataset (or type the prompts)")
        for field in ("eval_steps", "sample_steps"):
            steps = getattr(self, field)
            if steps and self.max_steps is not None and steps > self.max_steps:
                raise ValueError(f"{field} ({steps}) is larger than max_steps ({self.max_steps})")
        return self

    @property
    def has_held_out(self) -> bool:
        """Whether the run has rows to evaluate on: eval_split, eval_dataset, or the built-in data set's test split."""
        builtin = self.dataset_name.strip() == BUILTIN_DATASET and self.dataset_split == "train"
        return self.eval_split > 0 or bool(self.eval_dataset.strip()) or builtin

    @property
    def display_name(self) -> str:
        """The job name, or 'model on data set' when none was given."""
        return self.job_name or f"{self.base_model} on {self.dataset_name}"


def field_groups() -> dict[str, list[str]]:
    """Field names by form group (each field's `json_schema_extra["group"]`), groups in the order fields appear."""
    groups: dict[str, list[str]] = {}
    for name, field in SFTConfig.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not isinstance(extra.get("group"), str):
            raise TypeError(f"SFTConfig.{name} has no form group: add json_schema_extra={{'group': ...}}")
        groups.setdefault(str(extra["group"]), []).append(name)
    return groups


def describe_errors(error: ValidationError) -> str:
    """One line per invalid field: 'field: message (got value)'."""
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "config"
        msg = item["msg"].removeprefix("Value error, ")
        got = item.get("input")
        suffix = "" if isinstance(got, dict) or item["type"] == "missing" else f" (got {got!r:.80})"
        lines.append(f"{field}: {msg}{suffix}")
    return "; ".join(lines)


def parse_config(data: Any) -> SFTConfig:
    """Validate a dict (or an SFTConfig) into an SFTConfig; raises ValidationError naming the field."""
    if isinstance(data, SFTConfig):
        return data
    if not isinstance(data, dict):
        raise TypeError(f"config must be an object, got {type(data).__name__}")
    return SFTConfig(**data)


def whole_number(value: Any, field: str) -> int | None:
    """A step number given as an int, a whole float or a numeric string; ValueError naming `field` otherwise."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 30:
        return int(value)
    raise ValueError(f"{field}: must be a whole number (a step), got {value!r:.80}")
