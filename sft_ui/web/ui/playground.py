"""The Playground tab: a job's base and tuned answers to a prompt, side by side (models held by the Playground)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from sft_ui import artifacts
from sft_ui.manager import JobManager
from sft_ui.playground import MAX_NEW_TOKENS, Playground, example
from sft_ui.status import ENDED
from sft_ui.web.ui import views
from sft_ui.web.ui.common import PICKER_JOBS, PRIVATE


@dataclass
class PlaygroundTab:
    """What build_ui wires across tabs: the job picker (Jobs' Try in Playground sets it)."""

    pick: gr.Dropdown


def build(manager: JobManager, playground: Playground) -> PlaygroundTab:
    """The Playground tab (call inside gr.Tabs) with its own events."""
    with gr.Tab("Playground", id="playground") as tab:
        gr.Markdown("Pick a completed or stopped job, write a prompt, and compare the base model's answer with the "
                    "tuned one's. The prompt is written as in training (alpaca template or chat template). "
                    "Temperature 0 is greedy: the same answer every time.")
        with gr.Row():
            pick = gr.Dropdown([], value=None, label="Job", scale=4, elem_id="pg-job")
            refresh_btn = gr.Button("Refresh list", size="sm", scale=1, elem_id="pg-refresh")
        status = gr.HTML(elem_id="pg-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Prompt", lines=3, placeholder="An instruction or a question",
                                    elem_id="pg-prompt")
                input_box = gr.Textbox(label="Input (optional)", lines=1, elem_id="pg-input",
                                       info="Alpaca's input field; for other formats it follows the prompt on a new "
                                            "line.")
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
    tab.select(lambda current: refresh(manager, current), pick, pick, **PRIVATE)
    refresh_btn.click(lambda current: refresh(manager, current), pick, pick, **PRIVATE)
    pick.change(lambda *args: load(playground, *args), [pick, prompt, input_box], [status, prompt, input_box],
                **PRIVATE)
    settings = [pick, prompt, input_box, max_new_tokens, temperature, top_p]  # generate's arguments, in order
    answers = [status, base, tuned, formatted]
    go.click(lambda *args: generate(playground, *args), settings, answers, **PRIVATE)
    prompt.submit(lambda *args: generate(playground, *args), settings, answers, **PRIVATE)
    return PlaygroundTab(pick)


def choices(manager: JobManager) -> list[tuple[str, str]]:
    """The jobs that have a saved model to try, newest first."""
    return [views.job_choice(r) for r in manager.list_jobs(limit=PICKER_JOBS)
            if r["status"] in ENDED and artifacts.has_model(Path(r["job_dir"]) / "model")]


def refresh(manager: JobManager, current: str | None) -> gr.Dropdown:
    """The Playground's job list as it is now."""
    found = choices(manager)
    return gr.Dropdown(choices=found, value=current if current in {v for _, v in found} else None)


def load(playground: Playground, job_id: str | None, prompt: str, input_text: str) -> tuple[Any, Any, Any]:
    """Load the picked job's models (releasing the previous job's); suggest a held-out task when it has one."""
    if not job_id:
        return "", gr.skip(), gr.skip()
    try:
        info = playground.load(job_id)
        record = playground.manager.get_job_status(job_id)
    except (LookupError, ValueError, OSError) as exc:
        return views.message_html(str(exc), "error"), gr.skip(), gr.skip()
    kind = "LoRA adapter" if info["adapter"] else "full model"
    text = f"Loaded job {job_id}: {kind}, {info['prompt_style']} prompts, on {info['device']}."
    suggestion = example(record) if not (prompt or "").strip() else ("", "")
    return (views.message_html(text, "ok"), suggestion[0] or gr.skip(),
            suggestion[1] if suggestion[0] else gr.skip())


def generate(playground: Playground, job_id: str | None, prompt: str, input_text: str, max_new_tokens: float,
             temperature: float, top_p: float) -> tuple[Any, ...]:
    """Both answers side by side, and the prompt as the models read it."""
    if not job_id:
        return views.message_html("Pick a job first.", "error"), gr.skip(), gr.skip(), gr.skip()
    try:
        out = playground.generate(job_id, prompt, int(max_new_tokens), float(temperature), float(top_p),
                                  input_text or "")
    except (LookupError, ValueError, OSError) as exc:
        return views.message_html(str(exc), "error"), gr.skip(), gr.skip(), gr.skip()
    note = f"{out['seconds']:.2f} s · {out['max_new_tokens']} new tokens at most"
    return views.message_html(note, "info"), out["base"], out["tuned"], out["prompt_formatted"]
