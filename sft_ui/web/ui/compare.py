"""The Compare tab: several jobs' training loss in one plot, following running jobs live."""

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sft_ui.manager import JobManager, NotFoundError
from sft_ui.web.ui import views
from sft_ui.web.ui.common import PRIVATE, QUIET


@dataclass
class CompareTab:
    """What build_ui wires across tabs: the job picker (the jobs table's refresh sets its choices)."""

    pick: gr.Dropdown


def build(manager: JobManager, timer: gr.Timer) -> CompareTab:
    """The Compare tab (call inside gr.Tabs) with its own events, redrawn on a tick of `timer` when a job moved."""
    with gr.Tab("Compare", id="compare"):
        gr.Markdown("Pick jobs to overlay their training loss; running jobs update live.")
        pick = gr.Dropdown([], value=[], multiselect=True, label="Jobs to compare", elem_id="compare-pick")
        plot = gr.LinePlot(views.plot_frame([], "loss", "job"), x="step", y="loss", color="job",
                           title="Training loss", height=420, elem_id="compare-plot")
        state = gr.State({})

    def compare_tick(job_ids: list[str] | None, last: dict[str, Any]) -> tuple[Any, dict]:
        """compare for a timer tick."""
        return compare(manager, job_ids, last, tick=True)

    pick.change(lambda job_ids, last: compare(manager, job_ids, last), [pick, state], [plot, state],
                **PRIVATE).then(recolor, state, [plot, state], **QUIET)
    timer.tick(compare_tick, [pick, state], [plot, state], **QUIET)
    return CompareTab(pick)


def compare(manager: JobManager, job_ids: list[str] | None, state: dict[str, Any],
            tick: bool = False) -> tuple[Any, dict]:
    """The compare plot of the picked jobs and the new state; on a tick only when one of them moved."""
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
        again = labels != state.get("legend")
        return gr.LinePlot(frame, colors_in_legend=labels), {"sig": sig, "legend": labels, "recolor": again}
    return frame, {"sig": sig, "legend": labels}


def recolor(state: dict[str, Any]) -> tuple[Any, dict]:
    """Name the plot's series once more after a rebuild, so that every series gets its color."""
    if not state.get("recolor"):
        return gr.skip(), state
    return gr.LinePlot(colors_in_legend=state["legend"]), {**state, "recolor": False}
