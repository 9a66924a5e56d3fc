"""Errors at their field: a refused Start or Save marks each field it names (a red border, the message in the
field's help line) until that field changes or a later Start succeeds.

The marks live in a gr.State: field name -> the value the field held when it was marked.
"""

from collections.abc import Sequence
from typing import Any

import gradio as gr

from sft_ui.web.ui.form import FieldSpec
from sft_ui.web.ui.plain_errors import FieldError

ERROR_CLASS = "field-error"  # styled in common.CSS


def mark(message: str) -> Any:
    """The update that marks a field with `message` (plain words, without the label)."""
    return gr.update(info=f"⚠ {message}", elem_classes=[ERROR_CLASS])


def unmark(spec: FieldSpec) -> Any:
    """The update that gives a marked field its own help line back."""
    return gr.update(info=spec.info, elem_classes=[])


def marked(specs: list[FieldSpec], errors: Sequence[FieldError], values: Sequence[Any],
           marks: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
    """(one update per field, the new marks): the fields `errors` name are marked, the others that were marked
    are cleared, the rest are left alone."""
    messages: dict[str, list[str]] = {}
    for error in errors:
        if error.field is not None:
            messages.setdefault(error.field, []).append(error.message)
    old = marks or {}
    updates, new = [], {}
    for spec, value in zip(specs, values, strict=True):
        if spec.name in messages:
            updates.append(mark("; ".join(messages[spec.name])))
            new[spec.name] = value
        else:
            updates.append(unmark(spec) if spec.name in old else gr.skip())
    return updates, new


def clear_changed(specs: list[FieldSpec], values: Sequence[Any],
                  marks: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
    """(one update per field, the marks left): a marked field whose value changed since it was marked is cleared."""
    old = marks or {}
    updates, left = [], {}
    for spec, value in zip(specs, values, strict=True):
        if spec.name not in old:
            updates.append(gr.skip())
        elif old[spec.name] != value:
            updates.append(unmark(spec))
        else:
            updates.append(gr.skip())
            left[spec.name] = value
    return updates, left


def unfold(specs: list[FieldSpec], updates: Sequence[Any], folds: Sequence[set[str]]) -> list[Any]:
    """One update per folded group (`folds`: the field names of each): opened when `updates` mark a field of it,
    else left alone (a folded group's fields are not on the page, so a mark there would go unseen)."""
    marked = {spec.name for spec, update in zip(specs, updates, strict=True)
              if isinstance(update, dict) and update.get("elem_classes") == [ERROR_CLASS]}
    return [gr.update(open=True) if names & marked else gr.skip() for names in folds]
