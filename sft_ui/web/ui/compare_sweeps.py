"""The Compare tab's sweeps: a picker of sweeps beside the job picker; picking one overlays all its jobs' curves (the
job picker takes its jobs) and ranks them in a table that follows the running jobs on the page's timer."""

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sft_ui.config import SFTConfig
from sft_ui.manager import JobManager, NotFoundError
from sft_ui.status import ACTIVE
from sft_ui.web.ui import compare, form, sweep_views, views
from sft_ui.web.ui.common import PICKER_JOBS, PRIVATE, QUIET

LABELS = form.labels([form.field_spec(name, field) for name, field in SFTConfig.model_fields.items()])


@dataclass
class SweepPart:
    """The sweep picker, its ranking, its Stop button and message, and what the last refresh showed."""

    pick: gr.Dropdown
    ranking: gr.HTML
    stop: gr.Button
    message: gr.HTML
    state: gr.State  # {"revision", "choices", "sig", "active"}: what the tick compares with


def build_picker() -> gr.Dropdown:
    """The sweep picker (call inside the Compare tab's row, beside the job picker)."""
    return gr.Dropdown([], value=None, label="Sweep", scale=2, min_width=200, elem_id="compare-sweep",
                       info="Pick a sweep to compare all its jobs and rank them.")


def build(pick: gr.Dropdown) -> SweepPart:
    """The ranking, its Stop button and message (call inside the Compare tab, under the pickers)."""
    with gr.Row(equal_height=False):
        stop = gr.Button("Stop the sweep", variant="stop", size="sm", visible=False, scale=0, min_width=160,
                         elem_id="sweep-stop")
        message = gr.HTML(elem_id="sweep-msg")
    ranking = gr.HTML(elem_id="sweep-ranking")
    return SweepPart(pick, ranking, stop, message, gr.State({}))


def choices(manager: JobManager) -> list[tuple[str, str]]:
    """The sweep picker's choices, newest first."""
    return [sweep_views.sweep_choice(summary) for summary in manager.sweeps.list()]


def job_choices(manager: JobManager, job_ids: list[str]) -> list[tuple[str, str]]:
    """The job picker's choices (the newest jobs) with any of `job_ids` they lack added."""
    listed = [views.job_choice(r) for r in manager.list_jobs(limit=PICKER_JOBS)]
    known = {value for _, value in listed}
    for job_id in job_ids:
        if job_id not in known:
            try:
                listed.append(views.job_choice(manager.get_job_status(job_id)))
            except NotFoundError:
                continue
    return listed


def _sig(jobs: list[dict[str, Any]]) -> str:
    """What the ranking depends on that moves: each job's status and step."""
    return repr(sorted((j["job_id"], str(j["status"]), (j.get("progress") or {}).get("step", j.get("step")))
                       for j in jobs))


def _moved(manager: JobManager, state: dict[str, Any]) -> tuple[bool, bool]:
    """(whether a job of the sweep last ranked moved since, whether any is pending or running), from their
    records alone."""
    records = []
    for job_id in state.get("job_ids") or []:
        try:
            records.append(manager.get_job_status(job_id))
        except NotFoundError:
            continue  # deleted since
    return _sig(records) != state.get("sig"), any(r["status"] in ACTIVE for r in records)


def ranking(manager: JobManager, sweep_id: str | None, state: dict[str, Any], tick: bool) -> tuple[Any, ...]:
    """(ranking, Stop button, new state) of the picked sweep; on a tick nothing when no job of it moved."""
    if not sweep_id:
        return ("" if not tick else gr.skip()), gr.Button(visible=False), {**state, "sig": None, "active": False}
    revision = manager.changes()[0]
    if tick and state.get("sig"):
        if not state.get("active") and state.get("seen") == revision:
            return gr.skip(), gr.skip(), state  # every job ended and no record changed since
        moved, active = _moved(manager, state)
        if not moved:
            return gr.skip(), gr.skip(), {**state, "active": active, "seen": revision}
    try:
        sweep = manager.sweeps.get(sweep_id)
    except NotFoundError:
        text = views.message_html(f"Sweep {sweep_id} no longer exists.", "error")
        return text, gr.Button(visible=False), {**state, "sig": None, "active": False, "job_ids": None}
    present = {job["job_id"] for job in sweep["jobs"]}
    job_ids = [job_id for job_id in sweep["job_ids"] if job_id in present]  # point order, deleted jobs left out
    lines = {job_id: compare.swatch(i) for i, job_id in enumerate(job_ids)}
    html = sweep_views.ranking_caption(sweep) + sweep_views.ranking_html(sweep, LABELS, lines)
    active = any(job["status"] in ACTIVE for job in sweep["jobs"])
    new = {**state, "sig": _sig(sweep["jobs"]), "active": active, "seen": revision, "job_ids": job_ids}
    return html, gr.Button(visible=active), new


def wire(manager: JobManager, timer: gr.Timer, part: SweepPart, job_pick: gr.Dropdown) -> None:
    """Picking a sweep puts its jobs in the job picker (which draws them) and ranks them; the tick keeps the
    choices and the ranking current; Stop stops the sweep's jobs."""

    def picked(sweep_id: str | None, state: dict[str, Any]) -> tuple[Any, ...]:
        """The job picker with the sweep's jobs, in point order (so the colors follow the points), and the ranking."""
        html, stop, new = ranking(manager, sweep_id, {**state, "job_ids": None}, tick=False)
        job_ids = new.get("job_ids") or []
        if not sweep_id or not job_ids:
            return gr.skip(), html, stop, "", new
        return gr.Dropdown(choices=job_choices(manager, job_ids), value=job_ids), html, stop, "", new

    def tick(sweep_id: str | None, state: dict[str, Any]) -> tuple[Any, ...]:
        """New sweeps in the picker (after a job record changed) and the ranking while its jobs move."""
        revision = manager.changes()[0]
        options: Any = gr.skip()
        if state.get("revision") != revision:
            fresh = choices(manager)
            if fresh != state.get("choices"):
                options = gr.Dropdown(choices=fresh)
            state = {**state, "revision": revision, "choices": fresh}
        if not sweep_id:
            return options, gr.skip(), gr.skip(), state
        html, stop, state = ranking(manager, sweep_id, state, tick=True)
        return options, html, stop, state

    def stop(sweep_id: str | None) -> str:
        """Stop every pending and running job of the sweep."""
        if not sweep_id:
            return views.message_html("Pick a sweep first.", "error")
        try:
            stopped = manager.sweeps.stop(sweep_id)
        except NotFoundError as exc:
            return views.message_html(str(exc), "error")
        return views.message_html(f"Stopped {stopped} job{'s' if stopped != 1 else ''} of sweep {sweep_id}.", "ok")

    part.pick.change(picked, [part.pick, part.state], [job_pick, part.ranking, part.stop, part.message, part.state],
                     **PRIVATE)
    timer.tick(tick, [part.pick, part.state], [part.pick, part.ranking, part.stop, part.state], **QUIET)
    part.stop.click(stop, part.pick, part.message, **PRIVATE).then(
        lambda sweep_id, state: ranking(manager, sweep_id, state, tick=False), [part.pick, part.state],
        [part.ranking, part.stop, part.state], **QUIET)


def opened(manager: JobManager, sweep: dict[str, Any] | None) -> tuple[Any, Any]:
    """After a sweep was started in the Train tab: the Compare tab with it picked (nothing when none was)."""
    if not sweep:
        return gr.skip(), gr.skip()
    return gr.Tabs(selected="compare"), gr.Dropdown(choices=choices(manager), value=sweep["sweep_id"])
