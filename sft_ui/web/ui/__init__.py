"""The Gradio UI: build_ui composes the tabs (one module each, wiring its own events) and wires what crosses them."""

from typing import Any

import gradio as gr

from sft_ui.manager import JobManager, NotFoundError
from sft_ui.playground import Playground
from sft_ui.web.gradio_api import add_api
from sft_ui.web.ui import compare, compare_sweeps, form, jobs, train, views
from sft_ui.web.ui import data as data_tab
from sft_ui.web.ui import models as models_tab
from sft_ui.web.ui import playground as playground_tab
from sft_ui.web.ui import resources as resources_tab
from sft_ui.web.ui.common import PICKER_JOBS, PRIVATE, QUIET, REFRESH_SECONDS

__all__ = ["build_ui"]


def build_ui(manager: JobManager, playground: Playground) -> gr.Blocks:
    """The whole page over `manager` and its `playground`: Train, Data, Models, Jobs, Playground, Compare,
    Resources, and the named API."""
    # Gradio keeps a copy of every upload in its cache; the library holds its own, so drop Gradio's after an hour.
    with gr.Blocks(title="SFT UI", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# SFT UI\nFine-tune a causal language model with TRL. Pick a preset or fill the form, "
                    "click **Start training**, and watch the loss in **Jobs**.")
        restore_banner = gr.HTML(elem_id="restore-banner")
        timer = gr.Timer(REFRESH_SECONDS)
        with gr.Tabs(selected="train") as tabs:
            train_part = train.build(demo, manager, timer)
            data_part = data_tab.build(demo, manager)
            models_part = models_tab.build(demo, manager, timer)
            jobs_part = jobs.build(manager, timer)
            playground_part = playground_tab.build(demo, manager, playground)
            compare_part = compare.build(manager, timer)
            resources_tab.build(manager, playground, timer)
        add_api(manager, playground)
        _wire_table(demo, manager, timer, tabs, train_part, jobs_part, compare_part)
        _wire_across(manager, tabs, train_part, jobs_part, playground_part)
        _wire_data(manager, tabs, train_part, data_part)
        _wire_models(manager, train_part, models_part)
        demo.load(lambda: views.restore_banner(manager.database_status()["restored"]), None, restore_banner,
                  **QUIET)
    return demo


def _wire_table(demo: gr.Blocks, manager: JobManager, timer: gr.Timer, tabs: gr.Tabs, train_part: train.TrainTab,
                jobs_part: jobs.JobsTab, compare_part: compare.CompareTab) -> None:
    """Start (Train -> Jobs, or Compare for a sweep), and the jobs table with both job pickers and the selected
    job: at page load (the address's tab and job), on a filter change, on a pick, and on each tick when a job
    changed."""

    def open_job(job: dict[str, Any] | None) -> tuple[Any, ...]:
        """After Start (train.py runs it): the Jobs tab with the new job selected; nothing when Start was refused."""
        if not job:
            return gr.skip(), gr.skip()
        choices = [views.job_pick_choice(r) for r in manager.list_jobs(limit=PICKER_JOBS)]
        return gr.Tabs(selected="jobs"), gr.Dropdown(choices=choices, value=job["job_id"])

    train_part.started.then(open_job, train_part.job, [tabs, jobs_part.job_pick], **QUIET)
    # A sweep started instead: the Compare tab with it picked (its jobs overlaid and ranked).
    train_part.started.then(lambda sweep: compare_sweeps.opened(manager, sweep), train_part.sweep,
                            [tabs, compare_part.sweep], **QUIET)
    jobs.wire_refresh(demo, manager, timer, jobs_part, compare_part.pick, tabs)


def _wire_across(manager: JobManager, tabs: gr.Tabs, train_part: train.TrainTab, jobs_part: jobs.JobsTab,
                 playground_part: playground_tab.PlaygroundTab) -> None:
    """Jobs -> Train (Use as new config) and Jobs -> Playground (Try in Playground)."""

    def reuse(job_id: str | None) -> list[Any]:
        """Load the selected job's config into the form and go to the Train tab."""
        try:
            config = manager.get_job_status(job_id or "")["config"]
        except NotFoundError as exc:
            return [gr.skip()] * len(train_part.specs) + [views.message_html(str(exc), "error"), gr.skip()]
        text = f"Loaded the config of job {job_id}. Change what you like and click Start training."
        return [*form.config_to_form(train_part.specs, config), views.message_html(text, "info"),
                gr.Tabs(selected="train")]

    def try_it(job_id: str | None) -> tuple[Any, Any, Any]:
        """Open the Playground on the selected job."""
        choices = playground_tab.choices(manager)
        if not job_id or job_id not in {value for _, value in choices}:
            return views.message_html("this job has no saved model to try yet", "error"), gr.skip(), gr.skip()
        return "", gr.Tabs(selected="playground"), gr.Dropdown(choices=choices, value=job_id)

    jobs_part.reuse.click(reuse, jobs_part.job_pick, [*train_part.fields, train_part.message, tabs], **PRIVATE)
    jobs_part.try_it.click(try_it, jobs_part.job_pick, [jobs_part.message, tabs, playground_part.pick], **PRIVATE)


def _wire_data(manager: JobManager, tabs: gr.Tabs, train_part: train.TrainTab, data_part: data_tab.DataTab) -> None:
    """Data -> Train: an uploaded file is selected in the form's dataset_name and previewed at once."""
    dataset_name = train_part.field("dataset_name")
    uploaded = gr.State(False)

    def upload(path: str | None) -> tuple[Any, ...]:
        """Keep the file; on success put its path in the form and go to the Train tab."""
        text, entry = data_tab.save_upload(manager, path)
        table, pick = data_tab.refresh(manager, entry["name"] if entry else None)
        if entry is None:
            return text, table, pick, gr.skip(), gr.skip(), gr.skip(), False
        return (text, table, pick, entry["path"], train.library_choices(manager, entry["path"]),
                gr.Tabs(selected="train"), True)

    def preview(ok: bool, *values: Any) -> Any:
        """The Train tab's preview of the file just uploaded."""
        return train.preview(manager, train_part.specs, values) if ok else gr.skip()

    outputs = [data_part.message, data_part.table, data_part.pick, dataset_name, train_part.dataset_pick, tabs,
               uploaded]
    done = data_part.upload.upload(upload, data_part.upload, outputs, **PRIVATE)
    done.then(preview, [uploaded, *train_part.fields], train_part.preview_out, **PRIVATE)
    data_part.table.change(lambda value: train.library_choices(manager, value), dataset_name,
                           train_part.dataset_pick, **QUIET)


def _wire_models(manager: JobManager, train_part: train.TrainTab, models_part: models_tab.ModelsTab) -> None:
    """Models -> Train: when the library changes (an import ends, a delete), the model picker and the presets follow."""

    def follow(base_model: str, preset: str | None) -> tuple[Any, Any]:
        """The Train tab's model picker and presets as the library is now."""
        return models_tab.model_choices(manager, base_model), train.refresh_presets(manager, preset)

    models_part.table.change(follow, [train_part.field("base_model"), train_part.preset],
                             [train_part.model_pick, train_part.preset], **QUIET)
