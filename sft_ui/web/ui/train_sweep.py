"""The Train tab's Sweep control: up to three rows of a field and its comma-separated values. With a row filled, Start
reads "Start N jobs" and creates one queued job per combination (manager.sweeps), ranked in the Compare tab."""

import itertools
from dataclasses import dataclass
from typing import Any

import gradio as gr
from pydantic import ValidationError

from sft_ui import settings
from sft_ui.config import SFTConfig
from sft_ui.sweep_plan import MAX_FIELDS
from sft_ui.web.ui import form, sweep_views, views
from sft_ui.web.ui.common import QUIET
from sft_ui.web.ui.plain_errors import FieldError, field_errors, shown

NONE = ("(none)", "")  # the field dropdown's first choice: this row varies nothing


@dataclass
class SweepControl:
    """The rows' field dropdowns and value boxes, and the line that counts the jobs."""

    fields: list[gr.Dropdown]
    values: list[gr.Textbox]
    summary: gr.HTML

    @property
    def inputs(self) -> list[Any]:
        """The rows as event inputs: field 1, values 1, field 2, values 2, ..."""
        return [component for pair in zip(self.fields, self.values, strict=True) for component in pair]


def rows_of(values: tuple[Any, ...] | list[Any]) -> list[tuple[str | None, str | None]]:
    """The event inputs of SweepControl.inputs as (field, values) rows."""
    return [(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]


def wanted(rows: list[tuple[str | None, str | None]]) -> bool:
    """Whether the person asked for a sweep: a row has a field or typed values."""
    return any(name or sweep_views.split_values(text) for name, text in rows)


def build(specs: list[form.FieldSpec]) -> SweepControl:
    """The Sweep accordion (call inside the Train tab's column), folded."""
    choices = [NONE, *((spec.label, spec.name) for spec in sweep_views.sweepable(specs))]
    fields, values = [], []
    with gr.Accordion(f"Sweep: vary up to {MAX_FIELDS} fields", open=False, elem_id="sweep-box"):
        gr.Markdown("Each combination of the values below becomes one job of the form's settings. The jobs queue and "
                    "run as slots free; the Compare tab ranks them by **Metric for best** (Evaluation group).",
                    elem_id="sweep-help")
        for row in range(MAX_FIELDS):
            with gr.Row(equal_height=True):
                fields.append(gr.Dropdown(choices, value="", label=f"Field {row + 1}", scale=1, min_width=140,
                                          elem_id=f"sweep-field-{row}"))
                values.append(gr.Textbox(label="Values", max_lines=1, scale=1, min_width=140,
                                         placeholder="comma-separated", elem_id=f"sweep-values-{row}"))
        summary = gr.HTML(elem_id="sweep-summary")
    return SweepControl(fields, values, summary)


def wire(control: SweepControl, specs: list[form.FieldSpec], start: gr.Button) -> None:
    """A picked field's row shows what to type; any change recounts the jobs in Start's label and the summary."""
    by_name = {spec.name: spec for spec in specs}

    def hint(name: str | None) -> Any:
        """The values box's placeholder for the field picked."""
        spec = by_name.get(name or "")
        return gr.Textbox(placeholder=sweep_views.values_hint(spec) if spec else "comma-separated")

    def count(*values: Any) -> tuple[Any, str]:
        """Start's label and the line counting the jobs."""
        rows = rows_of(values)
        return (gr.Button(sweep_views.start_label(sweep_views.grid_size(rows))),
                sweep_views.rows_summary(specs, rows, settings.max_sweep_jobs()))

    for field, box in zip(control.fields, control.values, strict=True):
        field.change(hint, field, box, **QUIET)
    gr.on([c.change for c in control.inputs], count, control.inputs, [start, control.summary],
          trigger_mode="always_last", **QUIET)


def point_errors(specs: list[form.FieldSpec], config: dict[str, Any], grid: dict[str, list[Any]]) -> list[FieldError]:
    """What SFTConfig refuses at any point of the grid: a varied field's message names the sweep, the field and the
    value; any other goes to its form field. Each message once."""
    labels = form.labels(specs)
    found: dict[tuple[str | None, str], FieldError] = {}
    for combination in itertools.product(*grid.values()):
        point = dict(zip(grid, combination, strict=True))
        try:
            SFTConfig(**{**config, **point})
        except (ValidationError, ValueError, TypeError) as exc:
            for error in field_errors(exc, labels):
                if error.field in point:
                    label = labels.get(error.field, error.field)
                    error = FieldError(None, f"Sweep, {label} = {shown(point[error.field])}: {error.message}")
                found.setdefault((error.field, error.message), error)
    return list(found.values())


def started_message(view: dict[str, Any]) -> str:
    """The message under Start after a sweep was created."""
    jobs = view.get("jobs") or []
    return views.message_html(f"Sweep {view['sweep_id']} started: {len(jobs)} jobs queued, ranked live in the Compare "
                              "tab (opened for you).", "ok")
