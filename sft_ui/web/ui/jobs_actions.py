"""The selected job's actions: Stop, Resume, Try, Prepare zip, Merge, Push and Use as new config, each enabled only
where it can work on the job as it is now, and the handlers behind them."""

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr

from sft_ui import artifacts, jobdir, resume
from sft_ui.manager import JobManager, NotFoundError, StateError
from sft_ui.status import ACTIVE, JobStatus
from sft_ui.web.ui import checkpoints_view, views
from sft_ui.web.ui.common import PRIVATE, QUIET


@dataclass
class Actions:
    """The buttons whose state follows the selected job (in this order in the panel's outputs)."""

    stop: gr.Button
    resume: gr.Button
    try_it: gr.Button
    prepare: gr.Button
    merge: gr.Button
    push: gr.Button
    reuse: gr.Button

    def buttons(self) -> list[gr.Button]:
        """The buttons in field order."""
        return [getattr(self, f.name) for f in fields(self)]


def allowed(record: dict[str, Any] | None) -> dict[str, bool]:
    """Which actions can work on the job as `record` shows it: Stop while pending or running, Resume on a stopped
    or failed job with a checkpoint, Try/zip/Push on a saved model, Merge on a saved LoRA adapter."""
    names = [f.name for f in fields(Actions)]
    if record is None:
        return dict.fromkeys(names, False)
    status = record["status"]
    job_dir = Path(record.get("job_dir") or ".")
    ended = status not in ACTIVE
    model = ended and artifacts.has_model(job_dir / jobdir.MODEL)
    return {
        "stop": status in ACTIVE and not record.get("stop_requested"),
        "resume": status in (JobStatus.STOPPED, JobStatus.FAILED) and resume.last_checkpoint(job_dir) is not None,
        "try_it": model, "prepare": model, "push": model,
        "merge": model and artifacts.is_adapter(job_dir / jobdir.MODEL),
        "reuse": True,
    }


def button_updates(can: dict[str, bool]) -> list[Any]:
    """gr.Button updates in Actions order; Try is the primary action once a model is saved."""
    updates = []
    for f in fields(Actions):
        if f.name == "try_it":
            updates.append(gr.Button(interactive=can[f.name], variant="primary" if can[f.name] else "secondary"))
        else:
            updates.append(gr.Button(interactive=can[f.name]))
    return updates


def build(manager: JobManager, job_pick: gr.Dropdown, message: gr.HTML, metrics_buf: gr.State,
          timer: gr.Timer | None = None) -> Actions:
    """The action rows (all disabled until a job is picked), wired to answer in `message`, above the job's
    checkpoints and the picker they use (kept current on `timer`'s ticks)."""
    off: dict[str, Any] = {"interactive": False, "size": "sm"}
    with gr.Accordion("Checkpoints", open=False, elem_id="job-checkpoints"):
        checkpoints_box = gr.HTML(checkpoints_view.table_html([]), elem_id="job-checkpoints-box")
        picked = gr.Dropdown([checkpoints_view.FINAL], value="", label="Checkpoint to use", elem_id="checkpoint-pick",
                             info="What Resume continues from (the final model: the last checkpoint) and what the zip, "
                                  "Merge and Push take.")
        sig = gr.State("")
    with gr.Row(elem_id="job-actions"):
        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn", **off)
        resume_btn = gr.Button("Resume from checkpoint", elem_id="resume-btn", **off)
        try_btn = gr.Button("Try in Playground", elem_id="try-btn", **off)
        prepare_btn = gr.Button("Prepare zip", elem_id="zip-btn", **off)
        download = gr.DownloadButton("Download zip", size="sm", visible=False, elem_id="download-btn")
        merge_btn = gr.Button("Merge LoRA", elem_id="merge-btn", **off)
        reuse_btn = gr.Button("Use as new config", elem_id="reuse-btn", **off)
    with gr.Accordion("Push to the Hugging Face Hub", open=False):
        with gr.Row():
            repo = gr.Textbox(label="Repo id", placeholder="you/my-model", max_lines=1, scale=3, elem_id="push-repo")
            private = gr.Checkbox(True, label="Private", scale=1, elem_id="push-private")
            merged = gr.Checkbox(False, label="The merged model", scale=1, elem_id="push-merged")
        push_btn = gr.Button("Push", elem_id="push-btn", **off)
        gr.Markdown("Needs `HF_TOKEN` (write access) in the server's environment, e.g. a Space secret. "
                    "The token is read for each push and never stored.")
    served: set[Path] = set()  # export folders handed to Gradio as static paths
    resume_btn.click(lambda job_id, name: resume_job(manager, job_id, name), [job_pick, picked],
                     [message, metrics_buf], **PRIVATE)
    prepare_btn.click(lambda job_id, name: prepare(manager, job_id, served, name), [job_pick, picked],
                      [message, download], **PRIVATE)
    merge_btn.click(lambda job_id, name: merge(manager, job_id, name), [job_pick, picked], message, **PRIVATE)
    push_btn.click(lambda job_id, *args: push(manager, job_id, *args), [job_pick, repo, private, merged, picked],
                   message, **PRIVATE)
    job_pick.change(lambda _: ("", gr.DownloadButton(visible=False)), job_pick, [message, download], **PRIVATE)
    shown = [checkpoints_box, picked, sig]
    job_pick.change(lambda job_id: checkpoints_view.refresh(manager, job_id, None, None, picked=True), job_pick,
                    shown, **PRIVATE)
    if timer is not None:
        timer.tick(lambda job_id, name, last: checkpoints_view.refresh(manager, job_id, name, last, picked=False),
                   [job_pick, picked, sig], shown, **QUIET)
    return Actions(stop_btn, resume_btn, try_btn, prepare_btn, merge_btn, push_btn, reuse_btn)


def stop(manager: JobManager, job_id: str | None) -> str:
    """Stop the selected job."""
    if not job_id:
        return views.message_html("Select a job first.", "error")
    try:
        record = manager.stop_job(job_id, wait=3.0)
    except (NotFoundError, StateError) as exc:
        return views.message_html(str(exc), "error")
    state = "stopped" if record["status"] == JobStatus.STOPPED else "stopping (it saves what it has first)"
    return views.message_html(f"Job {job_id} {state}.", "ok")


def _failed(exc: Exception) -> str:
    """An error notice."""
    return views.message_html(str(exc), "error")


def resume_job(manager: JobManager, job_id: str | None, checkpoint: str | None = None) -> tuple[Any, Any]:
    """Resume the selected job (from the picked checkpoint, else its last); a fresh metrics buffer makes the panel
    re-read the trimmed curve."""
    try:
        record = manager.resume_job(job_id or "", checkpoint or None)
    except (LookupError, ValueError) as exc:
        return _failed(exc), gr.skip()
    text = f"Job {job_id} resumed from step {record['resumed']['from_step']} ({record['status']})."
    return views.message_html(text, "ok"), views.MetricsBuffer()


def prepare(manager: JobManager, job_id: str | None, served: set[Path],
            checkpoint: str | None = None) -> tuple[Any, Any]:
    """Build the zip (of the picked checkpoint, else the model) and show the button that downloads it."""
    try:
        path = artifacts.zip_job(manager, job_id or "", checkpoint or None)
    except (LookupError, ValueError) as exc:
        return _failed(exc), gr.DownloadButton(visible=False)
    if path.parent not in served:
        # Served where it lies: Gradio would otherwise copy it into its cache in the shared temp dir, and
        # refuse a data dir outside the working and temp dirs (a Space's /data).
        gr.set_static_paths([path.parent])
        served.add(path.parent)
    size = path.stat().st_size / 1e6
    return (views.message_html(f"{path.name} is ready ({size:.1f} MB).", "ok"),
            gr.DownloadButton(f"Download {path.name}", value=str(path), visible=True))


def merge(manager: JobManager, job_id: str | None, checkpoint: str | None = None) -> str:
    """Merge the selected job's adapter (or the picked checkpoint's) into its base model."""
    try:
        return views.message_html(artifacts.merge(manager, job_id or "", checkpoint or None)["message"], "ok")
    except (LookupError, ValueError, OSError) as exc:
        return _failed(exc)


def push(manager: JobManager, job_id: str | None, repo: str, private: bool, merged: bool,
         checkpoint: str | None = None) -> str:
    """Push the selected job's model (or the picked checkpoint's) to the Hub."""
    try:
        message = artifacts.push(manager, job_id or "", repo, private, merged, checkpoint or None)["message"]
        return views.message_html(message, "ok")
    except (LookupError, ValueError) as exc:
        return _failed(exc)
