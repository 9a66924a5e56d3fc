"""The Playground tab: a job's base and tuned answers to a prompt, side by side (models held by the Playground).

At page load (and whenever none is picked) the newest finished job with a saved model is picked, without loading its
models: they load when a person picks a job, comes from Jobs' Try in Playground, or clicks Generate.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from sft_ui import artifacts
from sft_ui.escaping import escape
from sft_ui.manager import JobManager, NotFoundError
from sft_ui.playground import MAX_NEW_TOKENS, Playground, examples
from sft_ui.status import ENDED
from sft_ui.web.ui import checkpoints_view, views
from sft_ui.web.ui.common import PICKER_JOBS, PRIVATE, QUIET

HISTORY = 10  # prompts kept in the page's history
_LABEL_CHARS = 120  # characters of a prompt shown on its example or history button


@dataclass
class PlaygroundTab:
    """What build_ui wires across tabs: the job picker (Jobs' Try in Playground sets it)."""

    pick: gr.Dropdown


def build(demo: gr.Blocks, manager: JobManager, playground: Playground) -> PlaygroundTab:
    """The Playground tab (call inside gr.Tabs) with its own events."""
    with gr.Tab("Playground", id="playground") as tab:
        gr.Markdown("Pick a completed or stopped job, write a prompt (or click an example), and compare the base "
                    "model's answer with the tuned one's. The prompt is written as in training (alpaca template or "
                    "chat template). Temperature 0 is greedy: the same answer every time.")
        with gr.Row():
            pick = gr.Dropdown([], value=None, label="Job", scale=4, elem_id="pg-job")
            checkpoint = gr.Dropdown([checkpoints_view.FINAL], value="", label="Model", scale=2,
                                     elem_id="pg-checkpoint", info="The job's final model or one of its checkpoints")
            refresh_btn = gr.Button("Refresh list", size="sm", scale=1, elem_id="pg-refresh")
        status = gr.HTML(elem_id="pg-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=280):
                prompt = gr.Textbox(label="Prompt", lines=3, placeholder="An instruction or a question",
                                    elem_id="pg-prompt")
                input_box = gr.Textbox(label="Input (optional)", lines=1, elem_id="pg-input",
                                       info="Alpaca's input field; for other formats it follows the prompt on a new "
                                            "line.")
                shown_examples = gr.Dataset(components=["textbox"], samples=[], type="index", visible=False,
                                            label="Examples from the job's data (click one to use it)",
                                            elem_id="pg-examples")
                shown_history = gr.Dataset(components=["textbox"], samples=[], type="index", visible=False,
                                           label="Prompts tried on this page", elem_id="pg-history")
            with gr.Column(scale=2, min_width=240):
                max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=64, step=1, label="Max new tokens",
                                           elem_id="pg-max-new-tokens")
                temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature", info="0: greedy",
                                        elem_id="pg-temperature")
                top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p", elem_id="pg-top-p")
                go = gr.Button("Generate", variant="primary", elem_id="pg-generate")
        with gr.Row(equal_height=False):
            with gr.Column(min_width=280):
                base_name = gr.HTML(elem_id="pg-base-name")
                base = gr.Textbox(label="Base model's answer", lines=6, interactive=False, elem_id="pg-base")
            with gr.Column(min_width=280):
                tuned_name = gr.HTML(elem_id="pg-tuned-name")
                tuned = gr.Textbox(label="Tuned model's answer", lines=6, interactive=False, elem_id="pg-tuned")
        with gr.Accordion("The prompt as the models read it", open=False):
            formatted = gr.Textbox(show_label=False, lines=6, interactive=False, elem_id="pg-formatted")
        auto_pick = gr.State(None)  # the job picked for the person (its models are not loaded until they ask)
        tasks, history = gr.State([]), gr.State([])  # [prompt, input] pairs behind the two lists' buttons
    for event in (demo.load, tab.select, refresh_btn.click):
        event(lambda current: refresh(manager, current), pick, [pick, auto_pick], **QUIET)
    described = pick.change(lambda job_id, text: describe(manager, job_id, text), [pick, prompt],
                            [base_name, tuned_name, shown_examples, tasks, prompt, input_box], **PRIVATE)
    described.then(lambda job_id, auto: load(playground, job_id, auto), [pick, auto_pick], [status, auto_pick],
                   **PRIVATE)
    pick.change(lambda job_id: checkpoint_choices(manager, job_id), pick, checkpoint, **PRIVATE)
    checkpoint.input(lambda job_id, name: load(playground, job_id, None, name), [pick, checkpoint],
                     [status, auto_pick], **PRIVATE)
    shown_examples.click(use, [shown_examples, tasks], [prompt, input_box], **QUIET)
    shown_history.click(use, [shown_history, history], [prompt, input_box], **QUIET)
    settings = [pick, prompt, input_box, max_new_tokens, temperature, top_p, history, checkpoint]
    answers = [status, base, tuned, formatted, history, shown_history]
    go.click(lambda *args: generate(playground, *args), settings, answers, **PRIVATE)
    prompt.submit(lambda *args: generate(playground, *args), settings, answers, **PRIVATE)
    return PlaygroundTab(pick)


def tryable(manager: JobManager) -> list[dict[str, Any]]:
    """The records of the jobs that have a saved model to try, newest first."""
    return [r for r in manager.list_jobs(limit=PICKER_JOBS)
            if r["status"] in ENDED and artifacts.has_model(Path(r["job_dir"]) / "model")]


def choices(manager: JobManager) -> list[tuple[str, str]]:
    """The jobs that have a saved model to try, newest first."""
    return [views.job_choice(r) for r in tryable(manager)]


def newest(records: list[dict[str, Any]]) -> str | None:
    """The job that finished last (the first of the newest-first `records` on a tie); None without any."""
    return max(records, key=lambda r: r.get("finished_at") or "")["job_id"] if records else None


def refresh(manager: JobManager, current: str | None) -> tuple[gr.Dropdown, Any]:
    """The Playground's job list as it is now, and the job picked for the person when none (or a gone one) was."""
    records = tryable(manager)
    found = [views.job_choice(r) for r in records]
    if current in {r["job_id"] for r in records}:
        return gr.Dropdown(choices=found, value=current), gr.skip()
    auto = newest(records)
    return gr.Dropdown(choices=found, value=auto), auto


def describe(manager: JobManager, job_id: str | None, prompt: str) -> tuple[Any, ...]:
    """Name the job's base model and tuned job, offer its example prompts, and fill an empty prompt with the first."""
    try:
        record = manager.get_job_status(job_id) if job_id else None
    except (NotFoundError, ValueError):
        record = None
    if record is None:
        return "", "", gr.Dataset(samples=[], visible=False), [], gr.skip(), gr.skip()
    base_model = (record.get("config") or {}).get("base_model", "")
    found = [list(task) for task in examples(record, manager.store_root())]
    base_html = f"<div>Base model <code>{escape(base_model)}</code></div>"
    tuned_html = (f"<div>Tuned: <b>{escape(record.get('name') or '(unnamed)')}</b> "
                  f"<code>{escape(record['job_id'])}</code></div>")
    fill = not (prompt or "").strip() and found
    return (base_html, tuned_html, dataset(found), found, found[0][0] if fill else gr.skip(),
            found[0][1] if fill else gr.skip())


def dataset(pairs: list[list[str]]) -> gr.Dataset:
    """A list of clickable [prompt, input] pairs (hidden while empty)."""
    return gr.Dataset(samples=[[label(*pair)] for pair in pairs], visible=bool(pairs))


def label(prompt: str, input_text: str = "") -> str:
    """A prompt (and its input) as one short line for its button."""
    text = " ".join((f"{prompt} — {input_text}" if input_text else prompt).split())
    return text if len(text) <= _LABEL_CHARS else text[:_LABEL_CHARS - 1] + "…"


def use(index: int | None, pairs: list[list[str]]) -> tuple[Any, Any]:
    """The clicked pair into the prompt and input boxes."""
    if index is None or not 0 <= index < len(pairs):
        return gr.skip(), gr.skip()
    return pairs[index][0], pairs[index][1]


def checkpoint_choices(manager: JobManager, job_id: str | None) -> gr.Dropdown:
    """The Model picker for a newly picked job: its final model (picked) and its checkpoints."""
    return gr.Dropdown(choices=checkpoints_view.choices(checkpoints_view.listing(manager, job_id)), value="")


def load(playground: Playground, job_id: str | None, auto: str | None,
         checkpoint: str | None = None) -> tuple[str, None]:
    """Load the picked job's models (releasing the previous job's; the picked checkpoint's when one is), unless the
    job was picked for the person."""
    if not job_id:
        return "", None
    if job_id == auto:
        return views.message_html(f"Picked the newest finished job, {job_id}. Its models load when you click "
                                  "Generate.", "info"), None
    try:
        info = playground.load(job_id, checkpoint or None)
    except (LookupError, ValueError, OSError) as exc:
        return views.message_html(str(exc), "error"), None
    kind = "LoRA adapter" if info["adapter"] else "full model"
    which = f"job {job_id}, {checkpoint}" if checkpoint else f"job {job_id}"
    return views.message_html(f"Loaded {which}: {kind}, {info['prompt_style']} prompts, on {info['device']}.",
                              "ok"), None


def generate(playground: Playground, job_id: str | None, prompt: str, input_text: str, max_new_tokens: float,
             temperature: float, top_p: float, history: list[list[str]],
             checkpoint: str | None = None) -> tuple[Any, ...]:
    """Both answers side by side, the prompt as the models read it, and the prompt first in the page's history."""
    skipped = (gr.skip(),) * 5
    if not job_id:
        return views.message_html("Job: pick a job first.", "error"), *skipped
    try:
        out = playground.generate(job_id, prompt, int(max_new_tokens), float(temperature), float(top_p),
                                  input_text or "", checkpoint or None)
    except (LookupError, ValueError, OSError) as exc:
        return views.message_html(str(exc), "error"), *skipped
    note = f"{out['seconds']:.2f} s · {out['max_new_tokens']} new tokens at most"
    if checkpoint:
        note = f"Tuned: {checkpoint} · {note}"
    tried = remember(history, prompt, input_text or "")
    return (views.message_html(note, "info"), out["base"], out["tuned"], out["prompt_formatted"], tried,
            dataset(tried))


def remember(history: list[list[str]], prompt: str, input_text: str) -> list[list[str]]:
    """`history` with [prompt, input] first (once), at most HISTORY entries."""
    pair = [prompt, input_text]
    return [pair, *(p for p in history or [] if p != pair)][:HISTORY]
