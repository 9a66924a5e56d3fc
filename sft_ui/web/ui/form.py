"""The Train form's fields, generated from SFTConfig: one FieldSpec per field (essentials first, the rest by group),
and form values <-> config dicts."""

import json
import math
import types
import typing
from dataclasses import dataclass, replace
from typing import Any

import annotated_types as at
from pydantic.fields import FieldInfo

from sft_ui.config import SFTConfig, field_groups
from sft_ui.web.ui.machine import Machine
from sft_ui.web.ui.plain_errors import number, shown

ESSENTIALS_GROUP = "Essentials"
TRAIN_FOR, STEPS, EPOCHS = "train_for", "steps", "epochs"  # one choice in the form for max_steps or num_train_epochs
# Shown open at the top, in this order; every other field sits in a folded group (gr.Accordion) named by SFTConfig.
ESSENTIALS = ("base_model", "dataset_name", "dataset_format", "job_name", TRAIN_FOR, "max_steps", "num_train_epochs",
              "learning_rate", "use_lora", "lora_r")
_WORDS = {"lora": "LoRA", "lr": "LR", "seq": "sequence", "eval": "eval"}
_LABELS = {"num_train_epochs": "Epochs", "lora_r": "LoRA rank", "dataset_name": "Data set", "tf32": "TF32",
           "use_liger_kernel": "Liger kernels", "num_processes": "Processes"}
_INFO = {"max_steps": "Optimizer steps to train.", "num_train_epochs": "Passes over the data."}
LINES = ("sample_prompts",)  # list fields typed one item per line (an item may hold commas)


@dataclass(frozen=True)
class FieldSpec:
    """How one SFTConfig field appears in the form."""

    name: str
    kind: str  # "text", "int", "float", "choice", "bool", "list", "lines" (a list, one per line), "json" (a dict)
    label: str
    info: str
    default: Any
    choices: tuple[str, ...] = ()
    optional: bool = False
    blocked: str = ""  # why this machine cannot use the field: the form shows it disabled at its default


def _label(name: str) -> str:
    """'lora_target_modules' -> 'LoRA target modules' (a few fields have a plainer name)."""
    if name in _LABELS:
        return _LABELS[name]
    words = [_WORDS.get(w, w) for w in name.split("_")]
    first = words[0] if words[0][:1].isupper() else words[0].capitalize()
    return " ".join([first, *words[1:]])


def _bounds(field: FieldInfo) -> str:
    """The field's bounds as text, e.g. '1 ≤ x ≤ 100000'."""
    low = high = ""
    for item in field.metadata:
        if isinstance(item, at.Ge):
            low = f"{number(item.ge)} ≤ "
        elif isinstance(item, at.Gt):
            low = f"{number(item.gt)} < "
        elif isinstance(item, at.Le):
            high = f" ≤ {number(item.le)}"
        elif isinstance(item, at.Lt):
            high = f" < {number(item.lt)}"
    return f"{low}x{high}" if low or high else ""


def field_spec(name: str, field: FieldInfo) -> FieldSpec:
    """The form spec of one field, read from its annotation, default, bounds and description."""
    annotation = field.annotation
    args = typing.get_args(annotation)
    optional = isinstance(annotation, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else annotation
    default = field.get_default(call_default_factory=True)
    if optional:
        default = "" if default is None else str(default)
    info = _INFO.get(name, field.description or "")
    choices: tuple[str, ...] = ()
    if typing.get_origin(base) is typing.Literal:
        kind, choices = "choice", tuple(typing.get_args(base))
    elif base is bool:
        kind = "bool"
    elif base is int or base is float:
        kind = base.__name__
        bounds = _bounds(field)
        info = f"{info} [{bounds}]" if bounds else info
    elif typing.get_origin(base) is list and name in LINES:
        kind, default = "lines", "\n".join(default)
    elif typing.get_origin(base) is list:
        kind, default = "list", ", ".join(default)
        info = f"{info} Comma-separated."
    elif typing.get_origin(base) is dict:
        kind, default = "json", json.dumps(default)
        info = f"{info} JSON."
    else:
        kind = "text"
    return FieldSpec(name, kind, _label(name), info, default, choices, optional)


def number_step(spec: FieldSpec) -> float:
    """The spinner step of a number field: 1 for ints, the default's order of magnitude for floats."""
    if spec.kind == "int":
        return 1
    default = float(spec.default or 0)
    return 10 ** math.floor(math.log10(default)) if default > 0 else 0.01


def form_specs(machine: Machine | None = None) -> dict[str, list[FieldSpec]]:
    """Every SFTConfig field's spec plus the steps-or-epochs choice: the essentials first, then the other fields
    by group like config.field_groups(); `machine` blocks or narrows what it cannot use."""
    fields = SFTConfig.model_fields
    specs = {name: field_spec(name, fields[name]) for name in fields}
    # max_steps is None only when training epochs: that is the steps-or-epochs choice, so the field is a number.
    specs["max_steps"] = replace(specs["max_steps"], kind="int", optional=False, default=fields["max_steps"].default)
    specs[TRAIN_FOR] = FieldSpec(TRAIN_FOR, "choice", "Train for", "A number of optimizer steps, or of passes over "
                                 "the data.", STEPS, (STEPS, EPOCHS))
    if machine is not None:
        specs = {name: _fit(spec, machine) for name, spec in specs.items()}
    groups = {ESSENTIALS_GROUP: [specs[name] for name in ESSENTIALS]}
    for group, names in field_groups().items():
        rest = [specs[name] for name in names if name not in ESSENTIALS]
        if rest:
            groups[group] = rest
    return groups


def _fit(spec: FieldSpec, machine: Machine) -> FieldSpec:
    """The spec as this machine can use it: blocked with the reason, or with fewer choices."""
    reason = machine.blocked().get(spec.name)
    if reason:
        return replace(spec, blocked=reason, info=f"{spec.info} {reason}".strip())
    if spec.name == "precision" and machine.precisions(spec.choices) != spec.choices:
        return replace(spec, choices=machine.precisions(spec.choices),
                       info=f"{spec.info} bf16 and fp16 need a GPU; this machine has none.")
    return spec


def labels(specs: list[FieldSpec]) -> dict[str, str]:
    """SFTConfig field name -> its label in the form."""
    return {spec.name: spec.label for spec in specs if spec.name != TRAIN_FOR}


def form_to_config(specs: list[FieldSpec], values: list[Any]) -> dict[str, Any]:
    """Form values -> a config dict (not yet validated: SFTConfig names whatever is wrong).

    Optional numbers come from text boxes (gr.Number cannot be empty): '' is None, other text goes to
    SFTConfig as typed, which parses it or says why not. Training for epochs sends max_steps None; training for
    steps sends num_train_epochs at its default (SFTConfig ignores it then), and an empty max_steps as ''.
    """
    config: dict[str, Any] = {}
    mode = STEPS
    for spec, value in zip(specs, values, strict=True):
        if spec.name == TRAIN_FOR:
            mode = value
            continue
        if spec.kind == "list":
            value = [part.strip() for part in str(value or "").replace("\n", ",").split(",") if part.strip()]
        elif spec.kind == "lines":
            value = [line.strip() for line in str(value or "").splitlines() if line.strip()]
        elif spec.kind == "json":
            value = str(value or "").strip() or "{}"  # SFTConfig parses the JSON text and names what is wrong
        elif isinstance(value, str) and (spec.kind == "text" or spec.optional):
            value = value.strip()
            value = None if spec.optional and not value else value
        elif spec.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        config[spec.name] = value
    if "max_steps" in config and mode == EPOCHS:
        config["max_steps"] = None
    elif "max_steps" in config:
        config["max_steps"] = "" if config["max_steps"] is None else config["max_steps"]
        config["num_train_epochs"] = SFTConfig.model_fields["num_train_epochs"].default
    return config


def config_to_form(specs: list[FieldSpec], config: dict[str, Any]) -> list[Any]:
    """A config dict -> form values; fields it lacks take SFTConfig's defaults, and what this machine cannot use
    (a blocked field, a choice not offered) takes the field's default."""
    full = {**SFTConfig().model_dump(), **config}
    full[TRAIN_FOR] = EPOCHS if full.get("max_steps", 0) is None else STEPS
    return [_form_value(spec, full[spec.name]) for spec in specs]


def not_offered(specs: list[FieldSpec], config: dict[str, Any]) -> list[str]:
    """What config_to_form replaced because this machine cannot use it, one sentence each."""
    notes = []
    for spec in specs:
        value = config.get(spec.name, spec.default)
        if (spec.blocked and value != spec.default) or (spec.kind == "choice" and value not in spec.choices):
            notes.append(f"{spec.label} {shown(value)} cannot be used on this machine: the form uses "
                         f"{shown(spec.default)}.")
    return notes


def _form_value(spec: FieldSpec, value: Any) -> Any:
    """One config value as its form component shows it."""
    if spec.blocked or (spec.kind == "choice" and value not in spec.choices) or (value is None and not spec.optional):
        return spec.default
    if spec.kind == "list":
        return ", ".join(value)
    if spec.kind == "lines":
        return "\n".join(value)
    if spec.kind == "json":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if spec.optional:
        return "" if value is None else str(value)
    return value
