"""The Compare tab: several jobs' training loss in one plot, following running jobs live, beside a table of the runs
(full names, final and best losses, steps, runtime) and a table of the settings that differ between them."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import gradio as gr

from sft_ui.escaping import escape
from sft_ui.manager import JobManager, NotFoundError
from sft_ui.web.ui import compare_sweeps, views
from sft_ui.web.ui.common import PRIVATE, QUIET

# One color and one dash pattern per run, in pick order (vega's tableau10; dashes so that coinciding curves stay
# visible: a later run is drawn thinner and dashed over an earlier one).
COLORS = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
          "#bab0ac")
DASHES = ("none", "8 4", "2 3", "10 3 2 3", "4 4")
WIDTHS = (4.0, 3.0, 2.5, 2.0, 1.5)
SAME_FOR_EACH = ("job_name",)  # config fields left out of the differences: each job's name is in the runs table
_CELL = "padding:3px 8px;border-bottom:1px solid var(--border-color-primary);text-align:left;vertical-align:top"
_NUM = _CELL.replace("text-align:left", "text-align:right") + ";white-space:nowrap"
_TABLE = "width:100%;border-collapse:collapse;font-size:0.9em"


@dataclass
class CompareTab:
    """What build_ui wires across tabs: the job picker (the jobs table's refresh sets its choices) and the sweep
    picker (a sweep started in the Train tab is opened in it)."""

    pick: gr.Dropdown
    sweep: gr.Dropdown | None = None


def build(manager: JobManager, timer: gr.Timer) -> CompareTab:
    """The Compare tab (call inside gr.Tabs) with its own events, redrawn on a tick of `timer` when a job moved."""
    with gr.Tab("Compare", id="compare"):
        gr.Markdown("Pick jobs, or a sweep, to overlay their training loss; running jobs update live. The table "
                    "beside the plot is its legend; below it, the settings in which the picked jobs differ.")
        with gr.Row(equal_height=False):
            pick = gr.Dropdown([], value=[], multiselect=True, label="Jobs to compare", scale=3, min_width=240,
                               elem_id="compare-pick")
            sweep_pick = compare_sweeps.build_picker()
        sweep_part = compare_sweeps.build(sweep_pick)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                plot = gr.LinePlot(views.plot_frame([], "loss", "job"), x="step", y="loss", color="job",
                                   title="Training loss", height=420, colors_in_legend=[], elem_id="compare-plot")
            with gr.Column(scale=2, min_width=300):
                runs = gr.HTML(elem_id="compare-runs")
        differing = gr.HTML(elem_id="compare-settings")
        state = gr.State({})

    def compare_tick(job_ids: list[str] | None, last: dict[str, Any]) -> tuple[Any, ...]:
        """compare for a timer tick."""
        return compare(manager, job_ids, last, tick=True)

    outputs = [plot, runs, differing, state]
    pick.change(lambda job_ids, last: compare(manager, job_ids, last), [pick, state], outputs,
                **PRIVATE).then(recolor, state, [plot, state], **QUIET)
    timer.tick(compare_tick, [pick, state], outputs, **QUIET)
    compare_sweeps.wire(manager, timer, sweep_part, pick)
    return CompareTab(pick, sweep_pick)


def compare(manager: JobManager, job_ids: list[str] | None, state: dict[str, Any],
            tick: bool = False) -> tuple[Any, ...]:
    """The plot, the runs table and the differing settings of the picked jobs, and the new state; on a tick only
    when one of them moved."""
    records = []
    for job_id in job_ids or []:
        try:
            records.append(manager.get_job_status(job_id))
        except NotFoundError:
            continue
    sig = repr([(r["job_id"], r["status"], (r.get("progress") or {}).get("step")) for r in records])
    if tick and sig == state.get("sig") and not state.get("recolor"):
        return gr.skip(), gr.skip(), gr.skip(), state
    points = {r["job_id"]: manager.get_metrics(r["job_id"]) for r in records}
    curves = {views.job_choice(r)[0]: points[r["job_id"]] for r in records}
    frame, labels = views.compare_frame(curves), list(curves)
    tables = runs_html(records, points), settings_html(records)
    colors = {name: COLORS[i % len(COLORS)] for i, name in enumerate(labels)}
    if labels != state.get("legend") or state.get("recolor"):
        # gr.LinePlot fixes its colors when it builds its chart, and rebuilds it when colors_in_legend changes,
        # possibly before it takes the new data: so send the colors once more afterwards (recolor).
        again = labels != state.get("legend")
        plot = gr.LinePlot(frame, color_map=colors, colors_in_legend=[])
        return plot, *tables, {"sig": sig, "legend": labels, "colors": colors, "recolor": again}
    return frame, *tables, {"sig": sig, "legend": labels, "colors": colors}


def recolor(state: dict[str, Any]) -> tuple[Any, dict]:
    """Rebuild the plot once more after a rebuild, so that every series gets its color."""
    if not state.get("recolor"):
        return gr.skip(), state
    return gr.LinePlot(color_map=state["colors"], colors_in_legend=[]), {**state, "recolor": False}


def summary(record: dict[str, Any], points: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's final training loss (its last logged one), best eval loss, steps and runtime in seconds."""
    losses = [p["loss"] for p in points if isinstance(p.get("loss"), int | float)]
    evals = [p["eval_loss"] for p in points if isinstance(p.get("eval_loss"), int | float)]
    result = record.get("result") or {}
    steps = (record.get("progress") or {}).get("step") or result.get("steps")
    return {"final_loss": losses[-1] if losses else None, "best_eval_loss": min(evals) if evals else None,
            "steps": steps, "runtime": result.get("runtime_seconds", _elapsed(record))}


def _elapsed(record: dict[str, Any]) -> float | None:
    """Seconds from the job's start to its end (or to now while it runs); None before it started."""
    try:
        began = datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))
        ended = record.get("finished_at")
        end = datetime.fromisoformat(ended.replace("Z", "+00:00")) if ended else datetime.now(UTC)
    except (KeyError, AttributeError, ValueError):
        return None
    return max(0.0, (end - began).total_seconds())


def fmt_seconds(seconds: float | None) -> str:
    """A duration: '8.4 s' under a minute, else '3m 05s' ('' when unknown)."""
    if seconds is None:
        return ""
    return f"{seconds:.1f} s" if seconds < 60 else views.fmt_eta(seconds)


def swatch(index: int) -> str:
    """A short line in run `index`'s color, width and dash, as the plot draws it."""
    dash = DASHES[index % len(DASHES)]
    return (f'<svg width="36" height="10" aria-hidden="true"><line x1="1" y1="5" x2="35" y2="5" '
            f'stroke="{COLORS[index % len(COLORS)]}" stroke-width="{WIDTHS[min(index, len(WIDTHS) - 1)]}" '
            f'stroke-dasharray="{dash}"/></svg>')


def line_css(job_ids: list[str]) -> str:
    """The plot's lines in their runs' widths and dashes (gr.LinePlot has no dash setting; its SVG paths are
    labelled with the series name, which ends with the job id)."""
    rules = [f'#compare-plot path[aria-roledescription="line mark"][aria-label*="{job_id}"] '
             f"{{ stroke-width: {WIDTHS[min(i, len(WIDTHS) - 1)]}px; stroke-dasharray: {DASHES[i % len(DASHES)]}; }}"
             for i, job_id in enumerate(job_ids) if job_id.isalnum()]
    return f"<style>{' '.join(rules)}</style>" if rules else ""


def runs_html(records: list[dict[str, Any]], points: dict[str, list[dict[str, Any]]]) -> str:
    """The runs table (the plot's legend): per run, its line and full name over its final loss, best eval loss,
    steps and runtime (two rows, so that a long name has the table's whole width, on a phone too)."""
    if not records:
        return "<p>Pick two or more jobs to compare them.</p>"
    head = "".join(f'<th style="{_NUM};white-space:normal">{h}</th>'
                   for h in ("final loss", "best eval loss", "steps", "runtime"))
    runs = []
    for i, r in enumerate(records):
        s = summary(r, points.get(r["job_id"], []))
        runs.append(f'<tbody data-job="{escape(r["job_id"])}"><tr><td colspan="4" style="padding:6px 8px 0">'
                    f'{swatch(i)} <b style="overflow-wrap:anywhere">{escape(r.get("name") or "(unnamed)")}</b> '
                    f'<code>{escape(r["job_id"])}</code> · {escape(r["status"])}</td></tr><tr>'
                    f'<td style="{_NUM}" class="final-loss">{views.fmt_loss(s["final_loss"])}</td>'
                    f'<td style="{_NUM}" class="best-eval">{views.fmt_loss(s["best_eval_loss"])}</td>'
                    f'<td style="{_NUM}" class="steps">{"" if s["steps"] is None else s["steps"]}</td>'
                    f'<td style="{_NUM}" class="runtime">{fmt_seconds(s["runtime"])}</td></tr></tbody>')
    return (f'{line_css([r["job_id"] for r in records])}<table id="compare-runs-table" style="{_TABLE}">'
            f'<thead><tr>{head}</tr></thead>{"".join(runs)}</table>')


def differences(configs: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """(field, each config's value) of the config fields whose values are not all equal (a missing field counts as
    None), in the order first seen; job_name is left out."""
    fields: dict[str, None] = {}
    for config in configs:
        fields.update(dict.fromkeys(config))
    found = []
    for field in fields:
        values = [config.get(field) for config in configs]
        if field not in SAME_FOR_EACH and any(value != values[0] for value in values[1:]):
            found.append((field, values))
    return found


def fmt_setting(value: Any) -> str:
    """A config value as a person reads it: text as is, the rest as JSON ('—' when missing)."""
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def settings_html(records: list[dict[str, Any]]) -> str:
    """A table of the settings that differ between the picked jobs, one column per job."""
    if len(records) < 2:
        return ""
    found = differences([r.get("config") or {} for r in records])
    if not found:
        return "<p id=\"compare-same\">The picked jobs have the same settings.</p>"
    head = "".join(f'<th style="{_CELL}">{swatch(i)}<br>{escape(r.get("name") or r["job_id"])}</th>'
                   for i, r in enumerate(records))
    rows = "".join(f'<tr data-setting="{escape(field)}"><th style="{_CELL}"><code>{escape(field)}</code></th>'
                   + "".join(f'<td style="{_CELL};word-break:break-word">{escape(fmt_setting(v))}</td>'
                             for v in values) + "</tr>" for field, values in found)
    return (f"<h4 style=\"margin:8px 0 4px\">Settings that differ</h4><div style=\"overflow-x:auto\">"
            f'<table id="compare-settings-table" style="{_TABLE}"><thead><tr><th style="{_CELL}">setting</th>'
            f"{head}</tr></thead><tbody>{rows}</tbody></table></div>")
