"""Why a config was refused, in plain words and per form field: 'Learning rate must be greater than 0 (got -1)'
instead of 'learning_rate: Input should be greater than 0'."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

# Messages that read on from the label ("Learning rate must ..."); any other message follows a colon.
_VERBS = ("must", "is ", "has ", "needs ", "contains ", "cannot ", "does ")
_PARSING = {"int_parsing", "int_type", "int_from_float", "float_parsing", "float_type", "bool_parsing", "bool_type"}


@dataclass(frozen=True)
class FieldError:
    """One reason a config was refused: the SFTConfig field it is about (None: no single field) and the message
    in plain words, without the field's label ('must be greater than 0 (got -1)')."""

    field: str | None
    message: str

    def line(self, labels: Mapping[str, str]) -> str:
        """The message with the field's label in front: 'Learning rate must be greater than 0 (got -1)'."""
        if self.field is None:
            return self.message[:1].upper() + self.message[1:]
        label = labels.get(self.field, self.field)
        if self.message.lower().startswith(label.lower()):  # 'save steps (5) is larger than ...'
            return label + self.message[len(label):]
        return f"{label} {self.message}" if self.message.startswith(_VERBS) else f"{label}: {self.message}"


def number(value: Any) -> str:
    """A number as people write it: 100,000 or 0.5 or 1e-05."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def shown(value: Any) -> str:
    """A value the person gave, as the message quotes it: numbers plain, text in quotes and cut at 80 characters."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return number(value)
    text = str(value)
    return f"“{text[:80]}…”" if len(text) > 80 else f"“{text}”"


def plain_message(item: Mapping[str, Any]) -> str:
    """One pydantic error (an item of ValidationError.errors()) in plain words, with the value given."""
    kind, ctx, given = item.get("type", ""), item.get("ctx") or {}, item.get("input")
    if kind in _PARSING and given in ("", None):
        return "must be filled in"
    text = _constraint(kind, ctx)
    if text is None:
        text = str(item.get("msg", "is not valid")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return text[:1].lower() + text[1:] if text[1:2].islower() else text  # 'JSON ...' stays
    quiet = kind in ("missing", "string_too_short", "too_long", "extra_forbidden") or isinstance(given, dict | list)
    return text if quiet else f"{text} (got {shown(given)})"


def _constraint(kind: str, ctx: Mapping[str, Any]) -> str | None:
    """The message of a bound or type check, None for the others (value errors say what they mean)."""
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx['min_length']} characters"
    simple = {
        "greater_than": lambda: f"must be greater than {number(ctx['gt'])}",
        "greater_than_equal": lambda: f"must be at least {number(ctx['ge'])}",
        "less_than": lambda: f"must be less than {number(ctx['lt'])}",
        "less_than_equal": lambda: f"must be at most {number(ctx['le'])}",
        "string_too_long": lambda: f"must be at most {number(ctx['max_length'])} characters",
        "too_long": lambda: f"must have at most {number(ctx['max_length'])} entries",
        "int_parsing": lambda: "must be a whole number",
        "int_type": lambda: "must be a whole number",
        "int_from_float": lambda: "must be a whole number",
        "float_parsing": lambda: "must be a number",
        "float_type": lambda: "must be a number",
        "finite_number": lambda: "must be a finite number",
        "bool_parsing": lambda: "must be on or off",
        "bool_type": lambda: "must be on or off",
        "literal_error": lambda: f"must be one of {ctx.get('expected', 'the listed choices')}",
        "string_type": lambda: "must be text",
        "missing": lambda: "is required",
        "extra_forbidden": lambda: "is not an option of the config",
    }
    found = simple.get(kind)
    return found() if found else None


def field_errors(exc: Exception, fields: Mapping[str, str]) -> list[FieldError]:
    """Why `exc` refused a config, per field. `fields` maps SFTConfig field names to their labels: a message that
    names fields in code ('save_steps (5) is larger than max_steps (3)') gets their labels instead."""
    if isinstance(exc, ValidationError):
        return [_from_item(item, fields) for item in exc.errors()]
    text = str(exc).strip() or type(exc).__name__
    name, sep, rest = text.partition(": ")
    if sep and name in fields:
        return [FieldError(name, _labelled(rest.strip(), fields))]
    return [FieldError(_first_named(text, fields), _labelled(text, fields))]


def _from_item(item: Mapping[str, Any], fields: Mapping[str, str]) -> FieldError:
    """One pydantic error item as a FieldError; errors of the whole config go to the first field they name."""
    loc = [str(part) if isinstance(part, str) else f"entry {part + 1}" for part in item.get("loc", ())]
    message = _labelled(plain_message(item), fields)
    if not loc:
        return FieldError(_first_named(str(item.get("msg", "")), fields), message)
    if loc[0] not in fields:
        return FieldError(None, f"{loc[0]} {message}" if message.startswith(_VERBS) else f"{loc[0]}: {message}")
    return FieldError(loc[0], f"{', '.join(loc[1:])}: {message}" if loc[1:] else message)


def _first_named(text: str, fields: Mapping[str, str]) -> str | None:
    """The field whose code name comes first in `text`, if any."""
    found = [(match.start(), name) for name in fields if (match := re.search(rf"\b{re.escape(name)}\b", text))]
    return min(found)[1] if found else None


def _labelled(text: str, fields: Mapping[str, str]) -> str:
    """`text` with each field's code name replaced by its label (lower case within the sentence)."""
    for name, label in fields.items():
        if name in text:
            inline = label if label[1:2].isupper() else label[:1].lower() + label[1:]
            text = re.sub(rf"\b{re.escape(name)}\b", inline, text)
    return text
