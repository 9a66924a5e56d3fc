"""The Jobs tab: the jobs table (cards on a phone), the selected job's panel (link, progress, evaluation, actions,
failure, plots, metrics, log, sample answers), and the wiring that keeps them current."""

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sft_ui.manager import JobManager
from sft_ui.status import JobStatus
from sft_ui.web.ui import job_detail, job_events, jobs_actions, jobs_panel, links, views
from sft_ui.web.ui.common import PRIVATE, QUIET

# The table's column widths (TABLE_HEADERS); the name column takes what is left and cuts a long name with an
# ellipsis (common.CSS, "Jobs"), its full text in the cell's title.
COLUMN_WIDTHS = ["150px", "110px", "80px", "80px", "200px", "130px"]
# A tap on a card selects its job (the select event carries the job id).
CARDS_JS = """
const pick = (event) => {
  const card = event.target.closest('[data-job]');
  if (card) trigger('select', {value: card.dataset.job, index: 0, selected: true});
};
element.addEventListener('click', pick);
element.addEventListener('keydown', (event) => { if (event.key === 'Enter') pick(event); });
// The table's cells cut long text with an ellipsis: each gets its full text as a title (shown on hover).
const titled = () => {
  const table = document.getElementById('jobs-table');
  if (!table) { setTimeout(titled, 500); return; }
  const mark = () => table.querySelectorAll('[role="gridcell"]').forEach((cell) => {
    const text = cell.innerText.trim();
    if (cell.title !== text) cell.title = text;
  });
  mark();
  new MutationObserver(mark).observe(table, {childList: true, subtree: true, characterData: true});
};
titled();
"""


@dataclass
class JobsTab:
    """What build_ui wires: the filter, table, cards, picker, link, message, the panel and its inputs."""

    status_filter: gr.Dropdown
    table: gr.Dataframe
    table_sig: gr.State  # the last table update's signature (jobs_panel.jobs_table)
    cards: gr.HTML
    job_pick: gr.Dropdown
    link: gr.Textbox
    message: gr.HTML
    actions: jobs_actions.Actions
    panel: list[Any]  # the panel's outputs in jobs_panel.PANEL order, then the metrics buffer
    plot_inputs: list[Any]  # the metrics buffer, the smoothing slider and the x axis choice

    @property
    def reuse(self) -> gr.Button:
        """Use as new config."""
        return self.actions.reuse

    @property
    def try_it(self) -> gr.Button:
        """Try in Playground."""
        return self.actions.try_it


def build(manager: JobManager, timer: gr.Timer) -> JobsTab:
    """The Jobs tab (call inside gr.Tabs) with its own events; the table's refresh is wired by build_ui."""
    with gr.Tab("Jobs", id="jobs"):
        metrics_buf = gr.State(views.MetricsBuffer())
        table_sig = gr.State("")
        with gr.Row():
            status_filter = gr.Dropdown(["all", *(s.value for s in JobStatus)], value="all", label="Show", scale=1,
                                        min_width=120, elem_id="status-filter")
            job_pick = gr.Dropdown([], value=None, label="Selected job", scale=3, min_width=200, elem_id="job-pick",
                                   info="Click a row of the table or pick a job here.")
        table = gr.Dataframe(headers=views.TABLE_HEADERS, value=[], interactive=False, max_height=360, wrap=False,
                             column_widths=COLUMN_WIDTHS, label="Jobs (newest first; click a row)",
                             elem_id="jobs-table")
        cards = gr.HTML(job_detail.job_cards_html([]), js_on_load=CARDS_JS, elem_id="jobs-cards")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                # No LaTeX: a "$$" in a job's name or error is text, not a formula.
                summary = gr.Markdown(jobs_panel.EMPTY_PANEL, latex_delimiters=[], elem_id="job-summary")
                link = gr.Textbox(label="Link to this job", interactive=False, max_lines=1, buttons=["copy"],
                                  elem_id="job-link")
                progress = gr.HTML(elem_id="job-progress-box")
                next_step = gr.HTML(elem_id="job-next-box")
                evaluation = gr.HTML(visible=False, elem_id="job-eval-box")
                error_box = gr.HTML(visible=False, elem_id="job-error")
                message = gr.HTML(elem_id="job-msg")
                actions = jobs_actions.build(manager, job_pick, message, metrics_buf, timer)
                loss_plot = gr.LinePlot(views.MetricsBuffer().loss_frame(), x="step", y="loss", color="series",
                                        color_map=views.LOSS_COLORS, colors_in_legend=["train"], title="Loss",
                                        height=280, elem_id="loss-plot")
                with gr.Row():
                    smoothing = gr.Slider(0, 0.99, value=0, step=0.01, label="Smoothing (EMA of the train loss)",
                                          elem_id="loss-smoothing")
                    x_axis = gr.Radio(["step", "elapsed"], value="step", label="x axis", elem_id="loss-x")
                lr_plot = gr.LinePlot(views.plot_frame([], "learning_rate"), x="step", y="learning_rate",
                                      title="Learning rate", height=200, elem_id="lr-plot")
            with gr.Column(scale=2, min_width=300):
                gr.Markdown("**Events** (newest first)")
                events_box = gr.HTML(job_events.timeline_html([]), elem_id="job-events-box")
                gr.Markdown("**Training steps** (the newest logged)")
                metrics = gr.HTML(job_detail.metrics_table_html([]), elem_id="job-metrics")
                with gr.Accordion("Raw log", open=False, elem_id="job-log-accordion"):
                    log_box = gr.Textbox(label="Log (tail; progress bars and raw metric lines left out)", lines=14,
                                         max_lines=14, autoscroll=True, interactive=False, elem_id="job-log")
                    log_download = gr.DownloadButton("Download the full log", size="sm", visible=False,
                                                     elem_id="log-download")
                result_box = gr.JSON(label="Result", visible=False, elem_id="job-result")
                with gr.Accordion("Config", open=False):
                    config_box = gr.JSON(label="Config", elem_id="job-config")
        samples = gr.HTML(visible=False, elem_id="job-samples-box")
    named = {"summary": summary, "progress": progress, "next_step": next_step, "error_box": error_box,
             "loss_plot": loss_plot, "lr_plot": lr_plot, "metrics": metrics, "log_box": log_box,
             "log_download": log_download, "result_box": result_box, "config_box": config_box,
             "evaluation": evaluation, "samples": samples, "events": events_box,
             **{name: getattr(actions, name) for name in jobs_actions.Actions.__dataclass_fields__}}
    panel = [named[name] for name in jobs_panel.PANEL] + [metrics_buf]
    part = JobsTab(status_filter, table, table_sig, cards, job_pick, link, message, actions, panel,
                   [metrics_buf, smoothing, x_axis])
    _wire_plot(part, smoothing, x_axis, loss_plot)
    table.select(pick_row, None, job_pick, **PRIVATE)
    cards.select(pick_card, None, job_pick, **PRIVATE)
    return part


def _wire_plot(part: JobsTab, smoothing: gr.Slider, x_axis: gr.Radio, loss_plot: gr.LinePlot) -> None:
    """Smoothing and the x axis redraw the loss plot from the metrics already read."""

    def redraw(buf: views.MetricsBuffer, weight: float, x: str) -> tuple[Any, Any]:
        """The loss plot as the slider and the axis choice now say."""
        return jobs_panel.plot_update(buf, weight, x, new_points=True), buf

    for control in (smoothing, x_axis):
        control.change(redraw, part.plot_inputs, [loss_plot, part.panel[-1]], **QUIET).then(
            jobs_panel.plot_again, part.plot_inputs[:2], [loss_plot, part.panel[-1]], **QUIET)


def wire_refresh(demo: gr.Blocks, manager: JobManager, timer: gr.Timer, part: JobsTab, compare_pick: gr.Dropdown,
                 tabs: gr.Tabs) -> None:
    """The table and the panel: at page load (opening the address's tab and job), when a job is picked or the
    filter changes, and on each tick (only what changed); Stop, then the panel at once."""
    with_pickers = [part.table, part.job_pick, compare_pick, part.table_sig, part.cards, *part.panel]
    without = [part.table, part.table_sig, part.cards, *part.panel]
    inputs = [part.status_filter, part.table_sig, part.job_pick, *part.plot_inputs]

    def tick(status: str, sig: str, job_id: str | None, buf: views.MetricsBuffer, weight: float,
             x: str) -> list[Any]:
        """A timer tick: nothing is sent for what did not change."""
        return jobs_panel.refresh(manager, status, sig, job_id, buf, weight, x, tick=True, pickers=True)

    def picked(status: str, sig: str, job_id: str | None, buf: views.MetricsBuffer, weight: float,
               x: str) -> list[Any]:
        """The picked job's panel, with the table when a record changed."""
        return jobs_panel.refresh(manager, status, sig, job_id, buf, weight, x, tick=False, pickers=False)

    def filtered(status: str, _sig: str, job_id: str | None, buf: views.MetricsBuffer, weight: float,
                 x: str) -> list[Any]:
        """The table read anew for the filter."""
        return jobs_panel.refresh(manager, status, "", job_id, buf, weight, x, tick=True, pickers=True)

    def load(status: str, request: gr.Request) -> list[Any]:
        """The table and pickers, and the tab and job the page's address names."""
        tab, job_id, text = links.opened(manager, links.query_of(request), links.tab_ids(tabs))
        update = jobs_panel.jobs_table(manager, status, "")
        outputs = jobs_panel.table_outputs(update, job_id, pickers=True)
        if job_id is not None and update is not None:
            choices = update.pick_choices or []
            if job_id not in {value for _, value in choices}:  # older than the picker's newest jobs
                choices = [*choices, views.job_pick_choice(manager.get_job_status(job_id))]
            outputs[1] = gr.Dropdown(choices=choices, value=job_id)
        return [*outputs, gr.Tabs(selected=tab) if tab else gr.skip(),
                views.message_html(text, "error") if text else gr.skip()]

    timer.tick(tick, inputs, with_pickers, **QUIET)
    loss_plot = part.panel[jobs_panel.PANEL.index("loss_plot")]
    part.job_pick.change(picked, inputs, without, **PRIVATE).then(
        jobs_panel.plot_again, part.plot_inputs[:2], [loss_plot, part.panel[-1]], **QUIET)
    part.status_filter.change(filtered, inputs, with_pickers, **PRIVATE)
    demo.load(load, part.status_filter, [*with_pickers[:5], tabs, part.message], **QUIET)
    part.actions.stop.click(lambda job_id: jobs_actions.stop(manager, job_id), part.job_pick, part.message,
                            **PRIVATE).then(picked, inputs, without, **QUIET)
    links.wire(tabs, part.job_pick, part.link)


def pick_row(evt: gr.SelectData) -> Any:
    """The job id of the clicked table row."""
    row = evt.row_value or []
    index = views.TABLE_HEADERS.index("id")
    return row[index] if len(row) > index and row[index] else gr.skip()


def pick_card(evt: gr.SelectData) -> Any:
    """The job id of the tapped card."""
    return evt.value if isinstance(evt.value, str) and evt.value else gr.skip()
