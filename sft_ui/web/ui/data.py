"""The Data tab: upload a data set file into the library, list the files, preview and delete them."""

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sft_ui.data import describe
from sft_ui.data.library import ACCEPTED
from sft_ui.manager import JobManager, NotFoundError
from sft_ui.web.gradio_api import explain, upload_file
from sft_ui.web.ui import views
from sft_ui.web.ui.common import PRIVATE, QUIET

HEADERS = ["name", "size", "rows", "format", "uploaded at"]


@dataclass
class DataTab:
    """What build_ui wires across tabs: the upload control, its message and the library's file picker."""

    upload: gr.File
    message: gr.HTML
    pick: gr.Dropdown
    table: gr.Dataframe


def build(demo: gr.Blocks, manager: JobManager) -> DataTab:
    """The Data tab (call inside gr.Tabs) with its own events; after an upload build_ui selects the file in Train."""
    with gr.Tab("Data", id="data"):
        gr.Markdown(f"Upload a data set file ({', '.join(ACCEPTED)}). It is kept in the library, "
                    "`<data dir>/datasets/`, and a config names it as `datasets/<name>`.")
        upload = gr.File(label="Upload a data set", file_types=list(ACCEPTED), file_count="single", type="filepath",
                         elem_id="data-upload")
        message = gr.HTML(elem_id="data-msg")
        table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, elem_id="data-table")
        with gr.Row():
            pick = gr.Dropdown([], label="File", value=None, elem_id="data-pick", scale=3)
            preview_btn = gr.Button("Preview", elem_id="data-preview-btn", scale=1)
            delete_btn = gr.Button("Delete", variant="stop", elem_id="data-delete-btn", scale=1)
        preview_out = gr.HTML(elem_id="data-preview-out")
    preview_btn.click(lambda name: preview(manager, name), pick, preview_out, **PRIVATE)
    delete_btn.click(lambda name: delete(manager, name), pick, [message, table, pick], **PRIVATE)
    demo.load(lambda name: refresh(manager, name), pick, [table, pick], **QUIET)
    return DataTab(upload, message, pick, table)


def save_upload(manager: JobManager, path: str | None) -> tuple[str, dict[str, Any] | None]:
    """Keep the file the upload control received: (the message, the library entry or None when refused)."""
    if not path:
        return "", None
    try:
        entry = upload_file(manager, path)
    except (ValueError, OSError) as exc:
        return views.message_html(f"Not uploaded: {explain(exc)}", "error"), None
    verb = "Already in the library as" if entry.get("already_uploaded") else "Uploaded"
    text = (f"{verb} {entry['path']}: {entry['rows']} rows, format {entry['format'] or 'not detected'}. "
            "It is selected in the Train form.")
    return views.message_html(text, "ok"), entry


def rows(entries: list[dict[str, Any]]) -> list[list[Any]]:
    """One table row per library file, in HEADERS order."""
    return [[e["name"], size_text(e.get("size_bytes") or 0), "" if e.get("rows") is None else e["rows"],
             e.get("format") or ("unreadable" if e.get("error") else "not detected"),
             views.fmt_time(e.get("uploaded_at"))] for e in entries]


def size_text(size: int) -> str:
    """Bytes as people read them: 512 B, 3.4 kB, 12.0 MB."""
    for unit in ("B", "kB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{size} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def refresh(manager: JobManager, name: str | None) -> tuple[Any, Any]:
    """The table and the file picker as the library is now (the picker keeps its file while it exists)."""
    entries = manager.list_datasets()
    names = [e["name"] for e in entries]
    return rows(entries), gr.Dropdown(choices=names, value=name if name in names else (names[0] if names else None))


def preview(manager: JobManager, name: str | None) -> str:
    """The file's first rows as the model will see them (the built-in model's tokenizer)."""
    if not name:
        return views.message_html("Pick a file first.", "error")
    try:
        answer = manager.preview_dataset(name, 3)
    except Exception as exc:  # any data-set problem is shown to the person, not raised
        return views.message_html(f"Cannot read the data set: {explain(exc)}", "error")
    summary = "\n".join(describe(answer["summary"]))
    return views.message_html(summary, "info") + views.preview_html(answer["preview"])


def delete(manager: JobManager, name: str | None) -> tuple[Any, ...]:
    """Delete the picked file (refused while a pending or running job uses it)."""
    if not name:
        return views.message_html("Pick a file first.", "error"), gr.skip(), gr.skip()
    try:
        manager.delete_dataset(name)
    except (NotFoundError, ValueError) as exc:
        return views.message_html(f"Not deleted: {explain(exc)}", "error"), *refresh(manager, name)
    return views.message_html(f"Deleted {name}.", "ok"), *refresh(manager, None)
