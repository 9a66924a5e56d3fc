"""The Train form's unsaved values in the browser (gr.BrowserState): written on every change, read at page load.

What comes back is checked field by field: a value the form cannot show (a removed field, a choice no longer
offered, a wrong type) is left at what the form has, so an old or tampered entry never breaks the page.
"""

import math
from typing import Any

import gradio as gr

from sft_ui.web.ui.form import FieldSpec

STORAGE_KEY = "sft-ui-train-form"
VERSION = 1
# Not a secret: the browser keeps only its own person's unsaved form. A fixed key keeps it across server restarts
# (BrowserState's default, a random key per start, would drop it at each one).
_KEY = "sft-ui-train-form-v1"


def browser_state() -> gr.BrowserState:
    """The component holding the form in the browser's localStorage (call inside the Blocks)."""
    return gr.BrowserState(None, storage_key=STORAGE_KEY, secret=_KEY)


def stored(specs: list[FieldSpec], values: tuple[Any, ...] | list[Any], preset: str | None) -> dict[str, Any]:
    """What the browser keeps: the form's values by field name and the preset picked."""
    return {"version": VERSION, "preset": preset, "values": {s.name: v for s, v in zip(specs, values, strict=True)}}


def restored(specs: list[FieldSpec], saved: Any) -> tuple[list[Any], str | None]:
    """(one value per spec, or None where the saved one is missing or unusable; the preset picked) from what the
    browser kept. Anything that is not what stored() wrote gives all None."""
    if not isinstance(saved, dict) or saved.get("version") != VERSION or not isinstance(saved.get("values"), dict):
        return [None] * len(specs), None
    values = saved["values"]
    preset = saved.get("preset")
    return [usable(spec, values.get(spec.name)) for spec in specs], preset if isinstance(preset, str) else None


def usable(spec: FieldSpec, value: Any) -> Any:
    """`value` when the field's component can show it, else None (the field keeps its value)."""
    if value is None or spec.blocked:
        return None
    if spec.kind == "bool":
        return value if isinstance(value, bool) else None
    if spec.kind == "choice":
        return value if value in spec.choices else None
    if spec.kind in ("int", "float") and not spec.optional:
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return value if number else None
    return value if isinstance(value, str) and len(value) <= 100_000 else None
