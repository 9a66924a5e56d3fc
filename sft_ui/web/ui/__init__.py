"""The Gradio UI (Train, Jobs, Compare tabs) over one JobManager; its named endpoints are in ui_api.py."""

import logging
from typing import Any

import gradio as gr
import pandas as pd
from pydantic import ValidationError

from sft_ui.escaping import escape
from sft_ui.manager import JobManager, NotFoundError, StateError
from sft_ui.presets import BUILTIN_PRESETS, preset_config
from sft_ui.store import StoreWriteError
from sft_ui.web.gradio_api import add_api, explain
from sft_ui.web.ui import artifacts as ui_artifacts
from sft_ui.web.ui import views

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
DEFAULT_PRESET = "builtin:" + next(iter(BUILTIN_PRESETS))
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
QUIET: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden", "concurrency_limit": None}


def build_ui(manager: JobManager) -> gr.Blocks:
    """The whole app page: Train (form, presets, preview, start), Jobs (table, live details), Compare."""
    groups = views.form_specs()
    specs = [spec for group in groups.values() for spec in group]
    fields: list[gr.components.Component] = []

    with gr.Blocks(title="SFT UI") as demo:
        gr.Markdown("# SFT UI\nFine-tune a causal language model with TRL. Pick a preset or fill the form, "
                    "click **Start training**, and watch the loss in **Jobs**.")
        restore_banner = gr.HTML(elem_id="restore-banner")
        timer = gr.Timer(REFRESH_SECONDS)
        metrics_buf = gr.State(views.MetricsBuffer())
        table_sig = gr.State("")
        compare_state = gr.State({})
        replace_name = gr.State("")

        with gr.Tabs(selected="train") as tabs:
            with gr.Tab("Train", id="train"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        for group, group_specs in groups.items():
                            if group in ("LoRA", "Performance", "Advanced"):
                                with gr.Accordion(group, open=False):
                                    fields.extend(_field_rows(group_specs))
                            else:
                                gr.Markdown(f"### {group}")
                                fields.extend(_field_rows(group_specs))
                    with gr.Column(scale=2):
                        start_btn = gr.Button("Start training", variant="primary", size="lg", elem_id="start-btn")
                        form_msg = gr.HTML(elem_id="form-msg")
                        with gr.Group():
                            preset = gr.Dropdown(_preset_choices([]), value=DEFAULT_PRESET, label="Presets",
                                                 info="Built-in presets and your saved configs.", elem_id="preset")
                            with gr.Row():
                                load_btn = gr.Button("Load", size="sm", elem_id="load-btn")
                                delete_btn = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-btn")
                            save_name = gr.Textbox(label="Save the form as", placeholder="a name", max_lines=1,
                                                   elem_id="save-name")
                            save_btn = gr.Button("Save as", size="sm", elem_id="save-btn")
                        preset_msg = gr.HTML(elem_id="preset-msg")
                        preview_btn = gr.Button("Preview data", elem_id="preview-btn")
                        preview_out = gr.HTML(elem_id="preview-out")

            with gr.Tab("Jobs", id="jobs"):
                with gr.Row():
                    status_filter = gr.Dropdown(["all", *views.ACTIVE, "completed", "failed", "stopped"], value="all",
                                                label="Show", scale=1, elem_id="status-filter")
                    job_pick = gr.Dropdown([], value=None, label="Selected job", scale=3, elem_id="job-pick",
                                           info="Click a row of the table or pick a job here.")
                table = gr.Dataframe(headers=views.TABLE_HEADERS, value=[], interactive=False, max_height=360,
                                     label="Jobs (newest first; click a row)", elem_id="jobs-table")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        # No LaTeX: a "$$" in a job's name or error is text, not a formula.
                        summary = gr.Markdown("Select a job to see its progress.", latex_delimiters=[],
                                              elem_id="job-summary")
                        progress = gr.HTML(elem_id="job-progress-box")
                        with gr.Row():
                            stop_btn = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop-btn")
                            reuse_btn = gr.Button("Use as new config", interactive=False, elem_id="reuse-btn")
                        job_msg = gr.HTML(elem_id="job-msg")
                        job_actions = ui_artifacts.job_actions()
                        error_box = gr.Markdown(visible=False, latex_delimiters=[], elem_id="job-error")
                        loss_plot = gr.LinePlot(_empty_loss(), x="step", y="loss", color="series", title="Loss",
                                                height=280, elem_id="loss-plot")
                        lr_plot = gr.LinePlot(views.plot_frame([], "learning_rate"), x="step",
                                              y="learning_rate", title="Learning rate", height=200, elem_id="lr-plot")
                    with gr.Column(scale=2):
                        result_box = gr.JSON(label="Result", visible=False, elem_id="job-result")
                        log_box = gr.Textbox(label="Log (tail)", lines=14, max_lines=14, autoscroll=True,
                                             interactive=False, elem_id="job-log")
                        with gr.Accordion("Config", open=False):
                            config_box = gr.JSON(label="Config", elem_id="job-config")

            with gr.Tab("Playground", id="playground") as playground_tab:
                playground = ui_artifacts.playground_tab()

            with gr.Tab("Compare", id="compare"):
                gr.Markdown("Pick jobs to overlay their training loss; running jobs update live.")
                compare_pick = gr.Dropdown([], value=[], multiselect=True, label="Jobs to compare",
                                           elem_id="compare-pick")
                compare_plot = gr.LinePlot(_empty_compare(), x="step", y="loss", color="job", title="Training loss",
                                           height=420, elem_id="compare-plot")

        add_api(manager)
        ui_artifacts.wire(manager, job_actions, playground, playground_tab, tabs, job_pick, job_msg, metrics_buf)

        # --- Train tab ---
        def form_config(values: tuple[Any, ...]) -> dict[str, Any]:
            """The form's values as a config dict."""
            return views.form_to_config(specs, list(values))

        def start(*values: Any) -> tuple[Any, ...]:
            """Create and start a job from the form; on success go to it in the Jobs tab."""
            try:
                job_id = manager.create_job(form_config(values))
                record = manager.start_job(job_id)
            except StoreWriteError as exc:
                return views.message_html(f"Not started: {exc.explain()}", "error"), gr.skip(), gr.skip()
            except (ValidationError, ValueError, TypeError) as exc:
                text = views.error_lines(explain(exc))
                return views.message_html(f"Not started. Fix these fields:\n{text}", "error"), gr.skip(), gr.skip()
            if record.get("queue_position"):
                text = f"Job {job_id} is queued (position {record['queue_position']}); it starts when a slot frees."
            else:
                text = f"Job {job_id} is {record['status']}."
            choices = [views.job_choice(r) for r in manager.list_jobs()]
            return views.message_html(text, "ok"), gr.Tabs(selected="jobs"), gr.Dropdown(choices=choices, value=job_id)

        def load_preset(value: str | None) -> list[Any]:
            """Fill the form from a built-in preset or a saved config."""
            try:
                name, config = _preset(manager, value)
            except (NotFoundError, KeyError, ValueError) as exc:
                return [gr.skip()] * len(specs) + [views.message_html(f"Cannot load: {exc}", "error"), gr.skip()]
            saved_name = name if (value or "").startswith("saved:") else ""
            return [*views.config_to_form(specs, config), views.message_html(f"Loaded “{name}”.", "ok"), saved_name]

        def save_preset(name: str, pending: str, *values: Any) -> tuple[Any, ...]:
            """Save the form under a name; an existing name is replaced on the second click."""
            name = (name or "").strip()
            if not name:
                return views.message_html("Type a name to save the form under.", "error"), gr.skip(), ""
            saved = manager.list_configs()
            exists = any(c["name"] == name for c in saved)
            if exists and pending != name:
                text = f"A saved config named “{name}” exists. Click Save as again to replace it."
                return views.message_html(text, "info"), gr.skip(), name
            try:
                config_id = manager.save_config(name, form_config(values))
            except StoreWriteError as exc:
                return views.message_html(exc.explain().capitalize(), "error"), gr.skip(), ""
            except (ValidationError, ValueError, TypeError) as exc:
                text = views.error_lines(explain(exc))
                return views.message_html(f"Not saved. Fix these fields:\n{text}", "error"), gr.skip(), ""
            verb = "Replaced" if exists else "Saved"
            choices = _preset_choices(manager.list_configs())
            return (views.message_html(f"{verb} “{name}”.", "ok"),
                    gr.Dropdown(choices=choices, value=f"saved:{config_id}"), "")

        def delete_preset(value: str | None) -> tuple[Any, ...]:
            """Delete the selected saved config."""
            if not value or not value.startswith("saved:"):
                return views.message_html("Only saved configs can be deleted; pick one first.", "error"), gr.skip()
            try:
                name = manager.get_config(value.removeprefix("saved:"))["name"]
                manager.delete_config(value.removeprefix("saved:"))
            except NotFoundError as exc:
                name, text = "", str(exc)
            else:
                text = f"Deleted “{name}”."
            choices = _preset_choices(manager.list_configs())
            return views.message_html(text, "ok" if name else "error"), gr.Dropdown(choices=choices,
                                                                                   value=DEFAULT_PRESET)

        def refresh_presets(value: str | None) -> gr.Dropdown:
            """The presets dropdown with the saved configs as they are now."""
            choices = _preset_choices(manager.list_configs())
            keep = value if value in {v for _, v in choices} else DEFAULT_PRESET
            return gr.Dropdown(choices=choices, value=keep)

        def preview(*values: Any) -> str:
            """The first rows of the data set as the model will see them, or why they cannot be read."""
            try:
                rows = manager.preview(form_config(values), n=3)
            except ValidationError as exc:
                text = views.error_lines(explain(exc))
                return views.message_html(f"Fix these fields first:\n{text}", "error")
            except Exception as exc:  # any data-set problem is shown to the person, not raised
                log.info("preview failed: %s", exc)
                return views.message_html(f"Cannot read the data set: {exc}", "error")
            return views.preview_html(rows)

        start_event = start_btn.click(start, fields, [form_msg, tabs, job_pick], **PRIVATE)
        load_btn.click(load_preset, preset, [*fields, preset_msg, save_name], **PRIVATE)
        save_btn.click(save_preset, [save_name, replace_name, *fields], [preset_msg, preset, replace_name], **PRIVATE)
        delete_btn.click(delete_preset, preset, [preset_msg, preset], **PRIVATE)
        preview_btn.click(preview, fields, preview_out, **PRIVATE)

        # --- Jobs tab ---
        def refresh_table(status: str, sig: str, force: bool = False) -> tuple[Any, ...]:
            """The jobs table (the newest page) and the job pickers; skipped when nothing changed since `sig`."""
            new = views.jobs_table(manager, status, "" if force else sig)
            if new is None:
                return gr.skip(), gr.skip(), gr.skip(), sig
            frame = gr.skip() if new.frame is None else gr.Dataframe(new.frame, label=new.label)
            picks = [gr.skip() if new.choices is None else gr.Dropdown(choices=new.choices) for _ in range(2)]
            return frame, *picks, new.sig

        def pick_row(evt: gr.SelectData) -> Any:
            """The job id of the clicked table row."""
            row = evt.row_value or []
            return row[1] if len(row) > 1 and row[1] else gr.skip()

        def show_job(job_id: str | None, buf: views.MetricsBuffer, tick: bool = False) -> list[Any]:
            """The selected job's panel; on a tick only what changed, reading new metric points only."""
            outputs = [summary, progress, stop_btn, reuse_btn, error_box, result_box, log_box, loss_plot, lr_plot,
                       config_box]
            if not job_id:
                if tick:
                    return [gr.skip()] * (len(outputs) + 1)
                return ["Select a job to see its progress.", "", gr.Button(interactive=False),
                        gr.Button(interactive=False), gr.Markdown(visible=False), gr.JSON(visible=False), "",
                        _empty_loss(), views.plot_frame([], "learning_rate"), None,
                        views.MetricsBuffer()]
            try:
                record = manager.get_job_status(job_id)
            except NotFoundError:
                gone = f"Job {escape(job_id)} no longer exists."
                return [gone, *([gr.skip()] * (len(outputs) - 1)), views.MetricsBuffer()]
            fresh = buf.job_id != job_id or not tick
            if fresh:
                buf = views.MetricsBuffer(job_id)
            active = record["status"] in views.ACTIVE
            if tick and not fresh and not active and buf.final_status == record["status"]:
                return [gr.skip()] * (len(outputs) + 1)
            new_points = buf.add(manager.get_metrics(job_id, since=buf.since(), max_points=views.MAX_PLOT_POINTS))
            buf.final_status = None if active else record["status"]
            error = record.get("error")
            result = record.get("result")
            return [
                views.summary_markdown(record),
                views.progress_html(record),
                gr.Button(interactive=active and not record.get("stop_requested")),
                gr.Button(interactive=True),
                gr.Markdown(views.error_markdown(error), visible=bool(error)),
                gr.JSON(result, visible=bool(result)),
                manager.get_log(job_id, max_bytes=6000),
                buf.loss_frame() if new_points or fresh else gr.skip(),
                buf.lr_frame() if new_points or fresh else gr.skip(),
                record.get("config") if fresh else gr.skip(),
                buf,
            ]

        def show_job_tick(job_id: str | None, buf: views.MetricsBuffer) -> list[Any]:
            """show_job for a timer tick."""
            return show_job(job_id, buf, tick=True)

        def stop(job_id: str | None) -> str:
            """Stop the selected job."""
            if not job_id:
                return views.message_html("Select a job first.", "error")
            try:
                record = manager.stop_job(job_id, wait=3.0)
            except (NotFoundError, StateError) as exc:
                return views.message_html(str(exc), "error")
            state = "stopped" if record["status"] == "stopped" else "stopping (it saves what it has first)"
            return views.message_html(f"Job {job_id} {state}.", "ok")

        def reuse(job_id: str | None) -> list[Any]:
            """Load the selected job's config into the form and go to the Train tab."""
            try:
                config = manager.get_job_status(job_id or "")["config"]
            except NotFoundError as exc:
                return [gr.skip()] * len(specs) + [views.message_html(str(exc), "error"), gr.skip()]
            text = f"Loaded the config of job {job_id}. Change what you like and click Start training."
            return [*views.config_to_form(specs, config), views.message_html(text, "info"), gr.Tabs(selected="train")]

        detail_outputs = [summary, progress, stop_btn, reuse_btn, error_box, result_box, log_box, loss_plot, lr_plot,
                          config_box, metrics_buf]
        table_outputs = [table, job_pick, compare_pick, table_sig]
        table.select(pick_row, None, job_pick, **PRIVATE)
        job_pick.change(show_job, [job_pick, metrics_buf], detail_outputs, **PRIVATE)
        status_filter.change(lambda s: refresh_table(s, "", True), status_filter, table_outputs, **PRIVATE)
        stop_btn.click(stop, job_pick, job_msg, **PRIVATE).then(
            show_job, [job_pick, metrics_buf], detail_outputs, **QUIET)
        reuse_btn.click(reuse, job_pick, [*fields, form_msg, tabs], **PRIVATE)
        start_event.then(lambda s: refresh_table(s, "", True), status_filter, table_outputs, **QUIET)

        # --- Compare tab ---
        def compare(job_ids: list[str] | None, state: dict[str, Any], tick: bool = False) -> tuple[Any, dict]:
            """The compare plot of the picked jobs; on a tick only when one of them moved."""
            records = []
            for job_id in job_ids or []:
                try:
                    records.append(manager.get_job_status(job_id))
                except NotFoundError:
                    continue
            sig = repr([(r["job_id"], r["status"], (r.get("progress") or {}).get("step")) for r in records])
            if tick and sig == state.get("sig") and not state.get("recolor"):
                return gr.skip(), state
            most = views.compare_points(len(records))
            curves = {views.job_choice(r)[0]: manager.get_metrics(r["job_id"], max_points=most) for r in records}
            frame, labels = views.compare_frame(curves), list(curves)
            if labels != state.get("legend") or state.get("recolor"):
                # gr.LinePlot fixes its colors when it builds its chart, and rebuilds it when colors_in_legend
                # changes, possibly before it takes the new data: so send the names once more afterwards.
                recolor = labels != state.get("legend")
                return gr.LinePlot(frame, colors_in_legend=labels), {"sig": sig, "legend": labels, "recolor": recolor}
            return frame, {"sig": sig, "legend": labels}

        def recolor(state: dict[str, Any]) -> tuple[Any, dict]:
            """Name the plot's series once more after a rebuild, so that every series gets its color."""
            if not state.get("recolor"):
                return gr.skip(), state
            return gr.LinePlot(colors_in_legend=state["legend"]), {**state, "recolor": False}

        compare_pick.change(compare, [compare_pick, compare_state], [compare_plot, compare_state], **PRIVATE).then(
            recolor, compare_state, [compare_plot, compare_state], **QUIET)

        # --- live refresh and page load ---
        timer.tick(lambda s, sig: refresh_table(s, sig), [status_filter, table_sig], table_outputs, **QUIET)
        timer.tick(show_job_tick, [job_pick, metrics_buf], detail_outputs, **QUIET)
        timer.tick(lambda ids, state: compare(ids, state, tick=True), [compare_pick, compare_state],
                   [compare_plot, compare_state], **QUIET)
        demo.load(lambda s: refresh_table(s, "", True), status_filter, table_outputs, **QUIET)
        demo.load(refresh_presets, preset, preset, **QUIET)
        demo.load(lambda: views.restore_banner(manager.database_status()["restored"]), None, restore_banner,
                  **QUIET)
    return demo


def _field_rows(specs: list[views.FieldSpec], per_row: int = 2) -> list[gr.components.Component]:
    """The form components of one group, `per_row` to a row."""
    made = []
    for start in range(0, len(specs), per_row):
        with gr.Row():
            made.extend(_field(spec) for spec in specs[start:start + per_row])
    return made


def _field(spec: views.FieldSpec) -> gr.components.Component:
    """One form component, its default, label and help text taken from SFTConfig."""
    common: dict[str, Any] = {"label": spec.label, "info": spec.info, "elem_id": f"cfg-{spec.name}"}
    if spec.kind == "bool":
        return gr.Checkbox(value=spec.default, **common)
    if spec.kind == "choice":
        return gr.Dropdown(list(spec.choices), value=spec.default, **common)
    if spec.kind in ("int", "float") and not spec.optional:
        return gr.Number(value=spec.default, step=views.number_step(spec), **common)
    # Text for optional numbers too: gr.Number shows None as 0 and sends 0.
    return gr.Textbox(value=spec.default, max_lines=1, placeholder="empty: none" if spec.optional else None, **common)


def _preset_choices(saved: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Dropdown choices: built-in presets, then saved configs."""
    builtin = [(f"{name} (built-in)", f"builtin:{name}") for name in BUILTIN_PRESETS]
    return builtin + [(f"{c['name']} (saved)", f"saved:{c['config_id']}") for c in saved]


def _preset(manager: JobManager, value: str | None) -> tuple[str, dict[str, Any]]:
    """(name, config) of a dropdown value."""
    if not value:
        raise ValueError("pick a preset first")
    if value.startswith("builtin:"):
        name = value.removeprefix("builtin:")
        return name, preset_config(name)
    found = manager.get_config(value.removeprefix("saved:"))
    return found["name"], found["config"]


def _empty_loss() -> pd.DataFrame:
    """A loss frame without points."""
    return views.MetricsBuffer().loss_frame()


def _empty_compare() -> pd.DataFrame:
    """A compare frame without points."""
    return views.plot_frame([], "loss", "job")
