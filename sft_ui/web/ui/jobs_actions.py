"""The selected job's actions: Stop, Resume, Try, Prepare zip, Merge, Push and Use as new config, each enabled only
where it can work on the job as it is now, and the handlers behind them."""

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr

from sft_ui import artifacts, jobdir, resume
from sft_ui.manager import JobManager, NotFoundError, StateError
from sft_ui.status import ACTIVE, JobStatus
from sft_ui.web.ui import views
from sft_ui.web.ui.common import PRIVATE


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


def build(manager: JobManager, job_pick: gr.Dropdown, message: gr.HTML, metrics_buf: gr.State) -> Actions:
    """The action rows (all disabled until a job is picked), wired to answer in `message`."""
    off: dict[str, Any] = {"interactive": False, "size": "sm"}
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
    resume_btn.click(lambda job_id: resume_job(manager, job_id), job_pick, [message, metrics_buf], **PRIVATE)
    prepare_btn.click(lambda job_id: prepare(manager, job_id, served), job_pick, [message, download], **PRIVATE)
    merge_btn.click(lambda job_id: merge(manager, job_id), job_pick, message, **PRIVATE)
    push_btn.click(lambda job_id, *args: push(manager, job_id, *args), [job_pick, repo, private, merged], message,
                   **PRIVATE)
    job_pick.change(lambda _: ("", gr.DownloadButton(visible=False)), job_pick, [message, download], **PRIVATE)
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


def resume_job(manager: JobManager, job_id: str | None) -> tuple[Any, Any]:
    """Resume the selected job; a fresh metrics buffer makes the panel re-read the trimmed curve."""
    try:
        record = manager.resume_job(job_id or "")
    except (LookupError, ValueError) as exc:
        return _failed(exc), gr.skip()
    text = f"Job {job_id} resumed from step {record['resumed']['from_step']} ({record['status']})."
    return views.message_html(text, "ok"), views.MetricsBuffer()


def prepare(manager: JobManager, job_id: str | None, served: set[Path]) -> tuple[Any, Any]:
    """Build the zip and show the button that downloads it."""
    try:
        path = artifacts.zip_job(manager, job_id or "")
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


def merge(manager: JobManager, job_id: str | None) -> str:
    """Merge the selected job's adapter into its base model."""
    try:
        return views.message_html(artifacts.merge(manager, job_id or "")["message"], "ok")
    except (LookupError, ValueError, OSError) as exc:
        return _failed(exc)


def push(manager: JobManager, job_id: str | None, repo: str, private: bool, merged: bool) -> str:
    """Push the selected job's model to the Hub."""
    try:
        return views.message_html(artifacts.push(manager, job_id or "", repo, private, merged)["message"], "ok")
    except (LookupError, ValueError) as exc:
        return _failed(exc)
