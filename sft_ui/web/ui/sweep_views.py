"""Pure parts of sweeps in the UI (no manager calls): the Train tab's rows of varied fields read as a grid, the
Start button's label, and the Compare tab's sweep choices and ranking table."""

import math
from typing import Any

from sft_ui.escaping import escape
from sft_ui.sweep_plan import FIXED, MAX_FIELDS
from sft_ui.web.ui.eval_views import metric_name
from sft_ui.web.ui.form import TRAIN_FOR, FieldSpec
from sft_ui.web.ui.plain_errors import FieldError, number, shown

SWEEPABLE_KINDS = ("int", "float", "choice", "bool")
_TRUE, _FALSE = ("on", "true", "yes", "1"), ("off", "false", "no", "0")
_CELL = "padding:3px 6px;border-bottom:1px solid var(--border-color-primary);text-align:left;vertical-align:top"
_NUM = _CELL.replace("text-align:left", "text-align:right") + ";white-space:nowrap"


# --- the Train tab's sweep rows ---
def sweepable(specs: list[FieldSpec]) -> list[FieldSpec]:
    """The fields a sweep may vary from the form: numbers, choices and switches this machine can use."""
    return [s for s in specs if s.kind in SWEEPABLE_KINDS and not s.blocked and s.name not in FIXED
            and s.name != TRAIN_FOR]


def split_values(text: str | None) -> list[str]:
    """'1e-4, 3e-4,' -> ['1e-4', '3e-4']."""
    return [part.strip() for part in str(text or "").split(",") if part.strip()]


def values_hint(spec: FieldSpec) -> str:
    """What to type for a field's values (the sweep row's placeholder)."""
    if spec.kind == "choice":
        return f"some of: {', '.join(spec.choices)}"
    if spec.kind == "bool":
        return "on, off"
    default = spec.default if spec.default not in ("", None) else (1 if spec.kind == "int" else 0.001)
    example = float(default) if spec.kind == "float" else int(float(default))
    other = example * 2 if example else 1
    return f"comma-separated, e.g. {number(example)}, {number(other)}"


def parse_value(spec: FieldSpec, text: str) -> Any:
    """One typed value as the field takes it; ValueError saying why not."""
    if spec.kind == "choice":
        if text not in spec.choices:
            raise ValueError(f"is not one of {', '.join(spec.choices)}")
        return text
    if spec.kind == "bool":
        if text.lower() not in _TRUE + _FALSE:
            raise ValueError("must be on or off")
        return text.lower() in _TRUE
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a whole number" if spec.kind == "int" else "must be a number") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    if spec.kind == "int":
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def read_rows(specs: list[FieldSpec], rows: list[tuple[str | None, str | None]]) -> tuple[dict[str, list[Any]],
                                                                                         list[FieldError]]:
    """The sweep rows (field name, typed values) as a grid {field: [values]} and what is wrong with them, each
    message naming the row, the field and the value."""
    by_name = {s.name: s for s in sweepable(specs)}
    grid: dict[str, list[Any]] = {}
    errors = []
    for number_, (name, text) in enumerate(rows[:MAX_FIELDS], 1):
        typed = split_values(text)
        if not name:
            if typed:
                errors.append(FieldError(None, f"Sweep row {number_}: pick the field to vary with {text.strip()}"))
            continue
        spec = by_name.get(name)
        where = f"Sweep row {number_}, {spec.label if spec else name}"
        if spec is None:
            errors.append(FieldError(None, f"{where}: this field cannot be varied"))
        elif name in grid:
            errors.append(FieldError(None, f"{where}: the field is already varied in another row"))
        elif not typed:
            errors.append(FieldError(None, f"{where}: type its values, separated by commas"))
        else:
            values = []
            for text_value in typed:
                try:
                    value = parse_value(spec, text_value)
                except ValueError as exc:
                    errors.append(FieldError(None, f"{where}: {shown(text_value)} {exc}"))
                    continue
                if value in values:
                    errors.append(FieldError(None, f"{where}: {shown(text_value)} appears twice"))
                values.append(value)
            grid[name] = values
    return grid, errors


def grid_size(rows: list[tuple[str | None, str | None]]) -> int:
    """How many jobs the rows make: the product of the typed values' counts over the rows with a field and values
    (0: no sweep)."""
    counts = [len(split_values(text)) for name, text in rows if name and split_values(text)]
    return math.prod(counts) if counts else 0


def start_label(jobs: int) -> str:
    """The Start button's label: 'Start training' without a sweep, else 'Start 4 jobs'."""
    if jobs <= 0:
        return "Start training"
    return f"Start {jobs} job{'s' if jobs != 1 else ''}"


def rows_summary(specs: list[FieldSpec], rows: list[tuple[str | None, str | None]], most: int) -> str:
    """One line under the sweep rows: '2 × 2 = 4 jobs: ...' ('3 jobs: ...' for one field), with a warning past
    `most` ('' without a sweep)."""
    labels = {s.name: s.label for s in specs}
    used = [(labels.get(name, name), split_values(text)) for name, text in rows if name and split_values(text)]
    if not used:
        return ""
    jobs = math.prod(len(values) for _, values in used)
    product = " × ".join(str(len(values)) for _, values in used) + " = " if len(used) > 1 else ""
    text = f"{product}{jobs} job{'s' if jobs != 1 else ''}: " + "; ".join(
        f"{label} {', '.join(values)}" for label, values in used)
    if jobs > most:
        text += f". A sweep may have at most {most} jobs (SFT_UI_MAX_SWEEP_JOBS)."
    return f'<p id="sweep-count" style="margin:4px 0;font-size:0.9em">{escape(text)}</p>'


def plan_errors(exc: Exception, labels: dict[str, str]) -> list[FieldError]:
    """The sweep plan's refusal ('grid.lora_r: 8 appears twice; config.max_steps: ...') as form errors: a varied
    field's message names the sweep and the field's label, a shared field's goes to its form field."""
    errors = []
    for item in str(exc).split("; "):
        where, sep, rest = item.partition(": ")
        head, _, field = where.partition(".")
        if sep and head in ("grid", "random") and field in labels:
            errors.append(FieldError(None, f"Sweep, {labels[field]}: {rest}"))
        elif sep and head == "config" and field in labels:
            errors.append(FieldError(field, rest))
        else:
            errors.append(FieldError(None, item))
    return errors


# --- the Compare tab ---
def sweep_choice(summary: dict[str, Any]) -> tuple[str, str]:
    """(label, value) of a sweep in the Compare tab's picker: its name, size, varied fields and id."""
    jobs = len(summary.get("job_ids") or [])
    fields = ", ".join(summary.get("fields") or [])
    return f"{summary.get('name') or '(unnamed)'} · {jobs} jobs · {fields} · {summary['sweep_id']}", summary["sweep_id"]


def _fmt(value: Any) -> str:
    """A number with 4 significant digits, other values as text ('' when missing)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return f"{value:.4g}" if math.isfinite(value) else "nan"
    return "" if value is None else str(value)


def _score(score: dict[str, Any] | None) -> str:
    """'0.51 (base 0.00)' of a job's exact match ('' without a score)."""
    if not isinstance(score, dict) or not isinstance(score.get("exact_match"), int | float):
        return ""
    base = score.get("base_exact_match")
    return f"{score['exact_match']:.2f}" + (f" (base {base:.2f})" if isinstance(base, int | float) else "")


def ranking_html(sweep: dict[str, Any], labels: dict[str, str], swatches: dict[str, str] | None = None) -> str:
    """The sweep's jobs in its ranking order (GET /sweeps/{id}): rank, job, the varied values, status, best value of
    the metric and its step, final train loss, exact match; the best row marked. `swatches` maps a job id to the
    line that draws it in the plot."""
    fields = list(sweep.get("fields") or [])
    metric = metric_name(str(sweep.get("metric") or "eval_loss"))
    head = ["rank", "job", *(labels.get(f, f) for f in fields), "status", f"best {metric}", "final train loss",
            "exact match"]
    cells = "".join(f'<th style="{_CELL}">{escape(h)}</th>' for h in head)
    rows = []
    for job in sweep.get("jobs") or []:
        best = bool(job.get("best"))
        mark = ' <b class="sweep-best-mark" style="color:#16a34a">★ best</b>' if best else ""
        line = (swatches or {}).get(job["job_id"], "")
        point = job.get("point") or {}
        status = str(job.get("status", ""))
        if status == "running" and job.get("total_steps"):
            status += f" {job.get('step') or 0}/{job['total_steps']}"
        evaluated = job.get("best_eval") or {}
        value = f"{_fmt(evaluated.get('value'))} at step {evaluated.get('step')}" if evaluated else ""
        style = ' style="background:rgba(22,163,74,0.10)"' if best else ""
        rows.append(
            f'<tr data-job="{escape(job["job_id"])}" data-rank="{job.get("rank", "")}" '
            f'data-best="{"true" if best else "false"}"{style}>'
            f'<td style="{_NUM}" class="sweep-rank">{job.get("rank", "")}{mark}</td>'
            f'<td style="{_CELL};overflow-wrap:anywhere;min-width:120px">{line} {escape(job.get("name") or "")} '
            f'<code style="font-size:0.8em">{escape(job["job_id"])}</code></td>'
            + "".join(f'<td style="{_NUM}" class="sweep-value">{escape(_fmt(point.get(f)))}</td>' for f in fields)
            + f'<td style="{_CELL}" class="sweep-status">{escape(status)}</td>'
            f'<td style="{_NUM}" class="sweep-metric">{escape(value)}</td>'
            f'<td style="{_NUM}" class="sweep-loss">{escape(_fmt(job.get("final_loss")))}</td>'
            f'<td style="{_NUM}" class="sweep-score">{escape(_score(job.get("score")))}</td></tr>')
    if not rows:
        return '<p id="sweep-ranking-table">This sweep has no jobs left.</p>'
    return (f'<div style="overflow-x:auto;max-width:100%"><table id="sweep-ranking-table" '
            f'style="width:100%;border-collapse:collapse;font-size:0.9em"><thead><tr>{cells}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def ranking_caption(sweep: dict[str, Any]) -> str:
    """The line above the ranking: what ranks the jobs and which is best so far."""
    metric = metric_name(str(sweep.get("metric") or "eval_loss"))
    order = "lowest" if str(sweep.get("metric") or "eval_loss").endswith("loss") else "highest"
    best = next((job for job in sweep.get("jobs") or [] if job.get("best")), None)
    text = (f"Sweep {sweep.get('name') or ''} ({sweep['sweep_id']}): ranked by {metric}, {order} first; jobs without "
            "an evaluation follow by final train loss.")
    if best is not None:
        point = ", ".join(f"{k} = {_fmt(v)}" for k, v in (best.get("point") or {}).items())
        text += f" Best so far: {best.get('name')} ({point})."
    return f'<p id="sweep-caption" style="margin:4px 0">{escape(text)}</p>'
