"""The Models tab: import a GGUF (uploaded or under the data root) into the model library, list and delete models;
and the Train form's picker of local models."""

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from sft_ui import settings
from sft_ui.config import BUILTIN_MODEL
from sft_ui.data.library import read_chunks
from sft_ui.escaping import escape
from sft_ui.manager import JobManager, NotFoundError
from sft_ui.model_library import IMPORTING, READY
from sft_ui.web.gradio_api import explain, uploaded_file
from sft_ui.web.ui import views
from sft_ui.web.ui.common import PRIVATE, QUIET

HEADERS = ["name", "status", "architecture", "parameters", "size", "chat template", "source"]
WIDTHS = ["14%", "30%", "15%", "10%", "9%", "8%", "14%"]
BUILTIN_CHOICE = (f"{BUILTIN_MODEL} — built-in demo", BUILTIN_MODEL)


@dataclass
class ModelsTab:
    """What build_ui wires across tabs: the models table (it changes when a model is imported or deleted)."""

    table: gr.Dataframe


def build(demo: gr.Blocks, manager: JobManager, timer: gr.Timer) -> ModelsTab:
    """The Models tab (call inside gr.Tabs) with its own events; the table follows running imports on `timer`."""
    with gr.Tab("Models", id="models"):
        intro = gr.Markdown(intro_text(None), latex_delimiters=[], elem_id="models-intro")
        upload = gr.File(label="Upload a .gguf", file_types=[".gguf"], file_count="single", type="filepath",
                         height=140, elem_id="models-upload")
        with gr.Row(equal_height=True):
            gguf = gr.Textbox(label="…or a .gguf already under the data root", placeholder="e.g. downloads/model.gguf",
                              max_lines=1, scale=3, elem_id="models-gguf")
            name = gr.Textbox(label="Name (optional)", placeholder="from the file name", max_lines=1, scale=2,
                              elem_id="models-name")
            import_btn = gr.Button("Import", variant="primary", scale=1, elem_id="models-import-btn")
        message = gr.HTML(elem_id="models-msg")
        table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, wrap=True, column_widths=WIDTHS,
                             elem_id="models-table")
        with gr.Row():
            pick = gr.Dropdown([], label="Model", value=None, scale=3, elem_id="models-pick")
            refresh_btn = gr.Button("Refresh", scale=1, elem_id="models-refresh-btn")
            delete_btn = gr.Button("Delete", variant="stop", scale=1, elem_id="models-delete-btn")
        sig = gr.State("")  # the listed models' signature (signature())
    listed = [table, pick, sig]
    upload.upload(lambda path, given, chosen: import_upload(manager, path, given, chosen), [upload, name, pick],
                  [message, upload, *listed], **PRIVATE)
    import_btn.click(lambda path, given, chosen: import_path(manager, path, given, chosen), [gguf, name, pick],
                     [message, *listed], **PRIVATE)
    delete_btn.click(lambda chosen: delete(manager, chosen), pick, [message, *listed], **PRIVATE)
    refresh_btn.click(lambda chosen: refresh(manager, chosen), pick, listed, **PRIVATE)
    timer.tick(lambda chosen, old: tick(manager, chosen, old), [pick, sig], listed, **QUIET)
    demo.load(lambda chosen: refresh(manager, chosen), pick, listed, **QUIET)
    demo.load(lambda: intro_text(manager.store_root()), None, intro, **QUIET)  # the data root is known once started
    return ModelsTab(table)


def intro_text(root: Path | None) -> str:
    """What the tab is for and where the models live (Markdown)."""
    where = (f"Local models live in <code>{escape(root / 'models')}</code> (the data root is "
             f"<code>{escape(root)}</code>)") if root else "Local models live in `<data root>/models/`"
    return (f"{where}; a config names one as `models/<name>`. Import a GGUF file (upload it, or give the path of one "
            "under the data root): it becomes a trainable folder. A `save_pretrained` folder copied by hand into "
            "`<data root>/models/` is listed too (click Refresh).")


def import_upload(manager: JobManager, path: str | None, name: str, chosen: str | None) -> tuple[Any, ...]:
    """Copy the uploaded GGUF into the library and start its import; Gradio's copy is dropped (it may be GBs)."""
    if not path:
        return "", gr.skip(), gr.skip(), gr.skip(), gr.skip()
    shown, uploaded = Path(path).name, None
    try:
        source, shown = uploaded_file(path)
        with source.open("rb") as handle:
            uploaded = manager.models.receive(shown, read_chunks(handle), settings.max_model_upload_bytes())
        source.unlink(missing_ok=True)
        record = manager.models.start(str(uploaded[0].relative_to(manager.store_root())), name.strip() or None,
                                      uploaded=uploaded)
    except (ValueError, OSError) as exc:
        if uploaded is not None:  # start() refused it: nothing will import it
            with contextlib.suppress(OSError):
                uploaded[0].unlink(missing_ok=True)
        return views.message_html(f"Not imported {shown}: {explain(exc)}", "error"), None, *refresh(manager, chosen)
    return _started(record), None, *refresh(manager, record["name"])


def import_path(manager: JobManager, gguf: str, name: str, chosen: str | None) -> tuple[Any, ...]:
    """Start the import of a GGUF file under the data root."""
    try:
        record = manager.models.start((gguf or "").strip(), (name or "").strip() or None)
    except ValueError as exc:
        return views.message_html(f"Not imported: {explain(exc)}", "error"), *refresh(manager, chosen)
    return _started(record), *refresh(manager, record["name"])


def _started(record: dict[str, Any]) -> str:
    """The message of an import that started."""
    text = (f"Importing {record['gguf']} as {record['path']}: the table shows its progress; the model is offered in "
            "the Train tab once it is ready.")
    return views.message_html(text, "ok")


def delete(manager: JobManager, name: str | None) -> tuple[Any, ...]:
    """Delete the picked model (refused while it is imported or a pending or running job uses it)."""
    if not name:
        return views.message_html("Pick a model first.", "error"), gr.skip(), gr.skip(), gr.skip()
    try:
        manager.models.delete(name)
    except (NotFoundError, ValueError) as exc:
        return views.message_html(f"Not deleted: {explain(exc)}", "error"), *refresh(manager, name)
    return views.message_html(f"Deleted {name}.", "ok"), *refresh(manager, None)


def refresh(manager: JobManager, chosen: str | None) -> tuple[Any, Any, str]:
    """The table, the picker (keeping its model while it exists) and the signature, as the library is now."""
    entries = manager.models.list()
    names = [e["name"] for e in entries]
    pick = gr.Dropdown(choices=names, value=chosen if chosen in names else (names[0] if names else None))
    return rows(entries), pick, signature(entries)


def tick(manager: JobManager, chosen: str | None, old: str) -> tuple[Any, Any, str]:
    """refresh() for a timer tick while an import runs or was running at the last look; nothing sent otherwise."""
    if not manager.models.running() and f'"{IMPORTING}"' not in old:
        return gr.skip(), gr.skip(), old
    table, pick, new = refresh(manager, chosen)
    return (gr.skip(), gr.skip(), old) if new == old else (table, pick, new)


def signature(entries: list[dict[str, Any]]) -> str:
    """What the table shows that an import changes: each model's name, status, progress and phase."""
    return json.dumps([[e["name"], e["status"], e.get("progress"), e.get("phase")] for e in entries])


def rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    """One table row per model, in HEADERS order (Dataframe cells are text: nothing to escape)."""
    return [[e["name"], status_text(e), e.get("architecture") or "", parameters_text(e.get("parameters")),
             size_text(e.get("size_bytes")), _yes_no(e.get("has_chat_template")), e.get("source") or ""]
            for e in entries]


def status_text(entry: dict[str, Any]) -> str:
    """'ready', 'importing 42% (converting)' or 'failed: why'."""
    if entry["status"] == IMPORTING:
        phase = f" ({entry['phase']})" if entry.get("phase") else ""
        return f"importing {float(entry.get('progress') or 0):.0%}{phase}"
    if entry.get("error"):
        return f"{entry['status']}: {entry['error']}"
    return str(entry["status"])


def parameters_text(count: int | None) -> str:
    """A parameter count as people say it: 135M, 1.7B ('' when unknown)."""
    if not count:
        return ""
    return f"{count / 1e9:.3g}B" if count >= 1e9 else f"{count / 1e6:.3g}M"


def size_text(size: int | None) -> str:
    """Bytes as people read them: 512 B, 3.4 kB, 12.0 MB, 4.2 GB ('' when unknown)."""
    if size is None:
        return ""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def _yes_no(flag: bool | None) -> str:
    return "" if flag is None else ("yes" if flag else "no")


def model_choices(manager: JobManager, value: str | None = None) -> gr.Dropdown:
    """The Train form's model picker: the built-in model and every ready local model, each standing for its path."""
    choices = [BUILTIN_CHOICE, *((model_label(e), e["path"]) for e in manager.models.list() if e["status"] == READY)]
    return gr.Dropdown(choices=choices, value=value if value in {path for _, path in choices} else None)


def model_label(entry: dict[str, Any]) -> str:
    """'smollm2 — LlamaForCausalLM, 135M, chat template'."""
    facts = [entry.get("architecture") or entry.get("model_type") or "unknown architecture",
             parameters_text(entry.get("parameters")),
             "chat template" if entry.get("has_chat_template") else "no chat template"]
    return f"{entry['name']} — {', '.join(fact for fact in facts if fact)}"
