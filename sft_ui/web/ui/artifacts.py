"""The UI for what a job trained: the Playground tab, the Jobs tab's resume/download/merge/push actions, and
the `generate` and `resume_job` Gradio endpoints. ui.py places these pieces; the rules live in playground.py,
export.py and JobManager.resume_job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from sft_ui import artifacts
from sft_ui.config import check_text
from sft_ui.manager import JobManager
from sft_ui.playground import MAX_NEW_TOKENS, PLAYGROUND, example
from sft_ui.web.ui import views

API_NAMES = ("generate", "resume_job")
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
USABLE = ("completed", "stopped", "failed")  # statuses whose saved model (if any) can be tried and kept
_served: set[Path] = set()  # export folders handed to Gradio as static paths


def add_api(manager: JobManager, call: Callable[..., Any]) -> None:
    """The named endpoints `generate` and `resume_job`; `call` turns the manager's errors into gr.Error."""

    def generate(job_id: str, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                 input: str = "") -> dict:  # noqa: A002 - alpaca's field name
        """The base and tuned answers to `prompt`, written as in training: {base, tuned, prompt_formatted, ...}."""
        tokens = int(max_new_tokens) if isinstance(max_new_tokens, float) and max_new_tokens.is_integer() \
            else max_new_tokens
        job_id = call(check_text, job_id, "job_id")
        return call(PLAYGROUND.generate, manager, job_id, prompt, tokens, temperature, top_p, input or "")

    def resume_job(job_id: str) -> dict:
        """Continue a stopped or failed job from its last checkpoint: {message, job_id, status, step}."""
        record = call(manager.resume_job, call(check_text, job_id, "job_id"))
        step = record["resumed"]["from_step"]
        return {"message": f"Job {job_id} resumed from step {step}", "job_id": job_id, "status": record["status"],
                "step": step}

    for fn in (generate, resume_job):
        gr.api(fn, api_name=fn.__name__)


def playground_choices(manager: JobManager) -> list[tuple[str, str]]:
    """The jobs that have a saved model to try, newest first."""
    return [views.job_choice(r) for r in manager.list_jobs()
            if r["status"] in USABLE and artifacts.has_model(Path(r["job_dir"]) / "model")]


@dataclass
class JobActions:
    """The Jobs tab's buttons for the selected job."""

    resume: gr.Button
    try_it: gr.Button
    prepare: gr.Button
    download: gr.DownloadButton
    merge: gr.Button
    repo: gr.Textbox
    private: gr.Checkbox
    merged: gr.Checkbox
    push: gr.Button


def job_actions() -> JobActions:
    """The resume / try / download / merge / push controls (call inside the Jobs tab)."""
    with gr.Row():
        resume = gr.Button("Resume from checkpoint", size="sm", elem_id="resume-btn")
        try_it = gr.Button("Try in Playground", size="sm", elem_id="try-btn")
        prepare = gr.Button("Prepare zip", size="sm", elem_id="zip-btn")
        download = gr.DownloadButton("Download zip", size="sm", visible=False, elem_id="download-btn")
        merge = gr.Button("Merge LoRA", size="sm", elem_id="merge-btn")
    with gr.Accordion("Push to the Hugging Face Hub", open=False):
        with gr.Row():
            repo = gr.Textbox(label="Repo id", placeholder="you/my-model", max_lines=1, scale=3, elem_id="push-repo")
            private = gr.Checkbox(True, label="Private", scale=1, elem_id="push-private")
            merged = gr.Checkbox(False, label="The merged model", scale=1, elem_id="push-merged")
        push = gr.Button("Push", size="sm", elem_id="push-btn")
        gr.Markdown("Needs `HF_TOKEN` (write access) in the server's environment, e.g. a Space secret. "
                    "The token is read for each push and never stored.")
    return JobActions(resume, try_it, prepare, download, merge, repo, private, merged, push)


@dataclass
class PlaygroundTab:
    """The Playground tab's components."""

    pick: gr.Dropdown
    refresh: gr.Button
    status: gr.HTML
    prompt: gr.Textbox
    input: gr.Textbox
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    top_p: gr.Slider
    go: gr.Button
    base: gr.Textbox
    tuned: gr.Textbox
    formatted: gr.Textbox


def playground_tab() -> PlaygroundTab:
    """The Playground's components (call inside its gr.Tab)."""
    gr.Markdown("Pick a completed or stopped job, write a prompt, and compare the base model's answer with the "
                "tuned one's. The prompt is written as in training (alpaca template or chat template). "
                "Temperature 0 is greedy: the same answer every time.")
    with gr.Row():
        pick = gr.Dropdown([], value=None, label="Job", scale=4, elem_id="pg-job")
        refresh = gr.Button("Refresh list", size="sm", scale=1, elem_id="pg-refresh")
    status = gr.HTML(elem_id="pg-status")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="An instruction or a question",
                                elem_id="pg-prompt")
            input_box = gr.Textbox(label="Input (optional)", lines=1, elem_id="pg-input",
                                   info="Alpaca's input field; for other formats it follows the prompt on a new line.")
        with gr.Column(scale=2):
            max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=64, step=1, label="Max new tokens",
                                       elem_id="pg-max-new-tokens")
            temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature", info="0: greedy",
                                    elem_id="pg-temperature")
            top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p", elem_id="pg-top-p")
            go = gr.Button("Generate", variant="primary", elem_id="pg-generate")
    with gr.Row():
        base = gr.Textbox(label="Base model", lines=6, interactive=False, elem_id="pg-base")
        tuned = gr.Textbox(label="Tuned model", lines=6, interactive=False, elem_id="pg-tuned")
    with gr.Accordion("The prompt as the models read it", open=False):
        formatted = gr.Textbox(show_label=False, lines=6, interactive=False, elem_id="pg-formatted")
    return PlaygroundTab(pick, refresh, status, prompt, input_box, max_new_tokens, temperature, top_p, go, base,
                         tuned, formatted)


def wire(manager: JobManager, actions: JobActions, pg: PlaygroundTab, pg_tab: gr.Tab, tabs: gr.Tabs,
         job_pick: gr.Dropdown, job_msg: gr.HTML, metrics_buf: gr.State) -> None:
    """Connect the job actions (answering in `job_msg`) and the Playground to the manager, inside the Blocks."""

    def failed(exc: Exception) -> str:
        return views.message_html(str(exc), "error")

    def resume(job_id: str | None) -> tuple[Any, Any]:
        """Resume the selected job; a fresh metrics buffer makes the panel re-read the trimmed curve."""
        try:
            record = manager.resume_job(job_id or "")
        except (LookupError, ValueError) as exc:
            return failed(exc), gr.skip()
        text = f"Job {job_id} resumed from step {record['resumed']['from_step']} ({record['status']})."
        return views.message_html(text, "ok"), views.MetricsBuffer()

    def prepare(job_id: str | None) -> tuple[Any, Any]:
        """Build the zip and show the button that downloads it."""
        try:
            path = artifacts.zip_job(manager, job_id or "")
        except (LookupError, ValueError) as exc:
            return failed(exc), gr.DownloadButton(visible=False)
        if path.parent not in _served:
            # Served where it lies: Gradio would otherwise copy it into its cache in the shared temp dir, and
            # refuse a data dir outside the working and temp dirs (a Space's /data).
            gr.set_static_paths([path.parent])
            _served.add(path.parent)
        size = path.stat().st_size / 1e6
        return (views.message_html(f"{path.name} is ready ({size:.1f} MB).", "ok"),
                gr.DownloadButton(f"Download {path.name}", value=str(path), visible=True))

    def merge(job_id: str | None) -> str:
        """Merge the selected job's adapter into its base model."""
        try:
            return views.message_html(artifacts.merge(manager, job_id or "")["message"], "ok")
        except (LookupError, ValueError, OSError) as exc:
            return failed(exc)

    def push(job_id: str | None, repo: str, private: bool, merged: bool) -> str:
        """Push the selected job's model to the Hub."""
        try:
            return views.message_html(artifacts.push(manager, job_id or "", repo, private, merged)["message"], "ok")
        except (LookupError, ValueError) as exc:
            return failed(exc)

    def try_it(job_id: str | None) -> tuple[Any, Any, Any]:
        """Open the Playground on the selected job."""
        choices = playground_choices(manager)
        if not job_id or job_id not in {value for _, value in choices}:
            return failed(ValueError("this job has no saved model to try yet")), gr.skip(), gr.skip()
        return "", gr.Tabs(selected="playground"), gr.Dropdown(choices=choices, value=job_id)

    actions.resume.click(resume, job_pick, [job_msg, metrics_buf], **PRIVATE)
    actions.prepare.click(prepare, job_pick, [job_msg, actions.download], **PRIVATE)
    actions.merge.click(merge, job_pick, job_msg, **PRIVATE)
    actions.push.click(push, [job_pick, actions.repo, actions.private, actions.merged], job_msg, **PRIVATE)
    actions.try_it.click(try_it, job_pick, [job_msg, tabs, pg.pick], **PRIVATE)
    job_pick.change(lambda _: ("", gr.DownloadButton(visible=False)), job_pick, [job_msg, actions.download],
                    **PRIVATE)

    def refresh(current: str | None) -> gr.Dropdown:
        """The Playground's job list as it is now."""
        choices = playground_choices(manager)
        return gr.Dropdown(choices=choices, value=current if current in {v for _, v in choices} else None)

    def load(job_id: str | None, prompt: str, input_text: str) -> tuple[Any, Any, Any]:
        """Load the picked job's models (releasing the previous job's); suggest a held-out task when it has one."""
        if not job_id:
            return "", gr.skip(), gr.skip()
        try:
            info = PLAYGROUND.load(manager, job_id)
            record = manager.get_job_status(job_id)
        except (LookupError, ValueError, OSError) as exc:
            return failed(exc), gr.skip(), gr.skip()
        kind = "LoRA adapter" if info["adapter"] else "full model"
        text = f"Loaded job {job_id}: {kind}, {info['prompt_style']} prompts, on {info['device']}."
        suggestion = example(record) if not (prompt or "").strip() else ("", "")
        return (views.message_html(text, "ok"), suggestion[0] or gr.skip(),
                suggestion[1] if suggestion[0] else gr.skip())

    def generate(job_id: str | None, prompt: str, input_text: str, max_new_tokens: float, temperature: float,
                 top_p: float) -> tuple[Any, ...]:
        """Both answers side by side, and the prompt as the models read it."""
        if not job_id:
            return failed(ValueError("Pick a job first.")), gr.skip(), gr.skip(), gr.skip()
        try:
            out = PLAYGROUND.generate(manager, job_id, prompt, int(max_new_tokens), float(temperature),
                                      float(top_p), input_text or "")
        except (LookupError, ValueError, OSError) as exc:
            return failed(exc), gr.skip(), gr.skip(), gr.skip()
        note = f"{out['seconds']:.2f} s · {out['max_new_tokens']} new tokens at most"
        return views.message_html(note, "info"), out["base"], out["tuned"], out["prompt_formatted"]

    pg_tab.select(refresh, pg.pick, pg.pick, **PRIVATE)
    pg.refresh.click(refresh, pg.pick, pg.pick, **PRIVATE)
    pg.pick.change(load, [pg.pick, pg.prompt, pg.input], [pg.status, pg.prompt, pg.input], **PRIVATE)
    settings = [pg.pick, pg.prompt, pg.input, pg.max_new_tokens, pg.temperature, pg.top_p]
    outputs = [pg.status, pg.base, pg.tuned, pg.formatted]
    pg.go.click(generate, settings, outputs, **PRIVATE)
    pg.prompt.submit(generate, settings, outputs, **PRIVATE)
