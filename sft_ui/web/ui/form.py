"""The Train form's fields, generated from SFTConfig: one FieldSpec per field, and form values <-> config dicts."""

import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

import annotated_types as at
from pydantic.fields import FieldInfo

from sft_ui.config import SFTConfig, field_groups

COLLAPSED = ("LoRA", "Performance", "Advanced")  # form groups shown in a closed accordion
_WORDS = {"lora": "LoRA", "lr": "LR", "seq": "sequence", "eval": "eval"}


@dataclass(frozen=True)
class FieldSpec:
    """How one SFTConfig field appears in the form."""

    name: str
    kind: str  # "text", "int", "float", "choice", "bool", "list", "json" (a dict, as JSON text)
    label: str
    info: str
    default: Any
    choices: tuple[str, ...] = ()
    optional: bool = False


def _label(name: str) -> str:
    """'lora_target_modules' -> 'LoRA target modules'."""
    words = [_WORDS.get(w, w) for w in name.split("_")]
    first = words[0] if words[0][:1].isupper() else words[0].capitalize()
    return " ".join([first, *words[1:]])


def _bounds(field: FieldInfo) -> str:
    """The field's bounds as text, e.g. '1 ≤ x ≤ 100000'."""
    low = high = ""
    for item in field.metadata:
        if isinstance(item, at.Ge):
            low = f"{_num(item.ge)} ≤ "
        elif isinstance(item, at.Gt):
            low = f"{_num(item.gt)} < "
        elif isinstance(item, at.Le):
            high = f" ≤ {_num(item.le)}"
        elif isinstance(item, at.Lt):
            high = f" < {_num(item.lt)}"
    return f"{low}x{high}" if low or high else ""


def _num(value: Any) -> str:
    """A bound as people write it: 100,000 or 0.5."""
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def field_spec(name: str, field: FieldInfo) -> FieldSpec:
    """The form spec of one field, read from its annotation, default, bounds and description."""
    annotation = field.annotation
    args = typing.get_args(annotation)
    optional = isinstance(annotation, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else annotation
    default = field.get_default(call_default_factory=True)
    if optional:
        default = "" if default is None else str(default)
    info = field.description or ""
    choices: tuple[str, ...] = ()
    if typing.get_origin(base) is typing.Literal:
        kind, choices = "choice", tuple(typing.get_args(base))
    elif base is bool:
        kind = "bool"
    elif base is int or base is float:
        kind = base.__name__
        bounds = _bounds(field)
        info = f"{info} [{bounds}]" if bounds else info
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


def form_specs() -> dict[str, list[FieldSpec]]:
    """Every SFTConfig field's spec, grouped and ordered like config.field_groups()."""
    fields = SFTConfig.model_fields
    return {group: [field_spec(name, fields[name]) for name in names] for group, names in field_groups().items()}


def form_to_config(specs: list[FieldSpec], values: list[Any]) -> dict[str, Any]:
    """Form values -> a config dict (not yet validated: SFTConfig names whatever is wrong).

    Optional numbers come from text boxes (gr.Number cannot be empty): '' is None, other text goes to
    SFTConfig as typed, which parses it or says why not.
    """
    config: dict[str, Any] = {}
    for spec, value in zip(specs, values, strict=True):
        if spec.kind == "list":
            value = [part.strip() for part in str(value or "").replace("\n", ",").split(",") if part.strip()]
        elif spec.kind == "json":
            value = str(value or "").strip() or "{}"  # SFTConfig parses the JSON text and names what is wrong
        elif isinstance(value, str) and (spec.kind == "text" or spec.optional):
            value = value.strip()
            value = None if spec.optional and not value else value
        elif spec.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        config[spec.name] = value
    return config


def config_to_form(specs: list[FieldSpec], config: dict[str, Any]) -> list[Any]:
    """A config dict -> form values; fields it lacks take SFTConfig's defaults."""
    full = {**SFTConfig().model_dump(), **config}
    return [_form_value(spec, full[spec.name]) for spec in specs]


def _form_value(spec: FieldSpec, value: Any) -> Any:
    """One config value as its form component shows it."""
    if spec.kind == "list":
        return ", ".join(value)
    if spec.kind == "json":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if spec.optional:
        return "" if value is None else str(value)
    return value
