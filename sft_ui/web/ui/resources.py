"""The Resources tab: CPU, RAM and GPUs now, which of sft-ui's processes hold the memory, and a button that frees
the playground's models. Read on the page's timer only while the tab is shown (GET /api/sft/resources reads alike)."""

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sft_ui import resources as machine
from sft_ui.escaping import escape
from sft_ui.manager import JobManager
from sft_ui.playground import Playground, free_models
from sft_ui.web.ui import views
from sft_ui.web.ui.common import PRIVATE, QUIET

# Run in the browser before each tick's call: whether the panel is on screen (its tab open), which the call gets as
# its input, so that a hidden panel costs one skipped call and no reading.
SHOWN_JS = "(shown) => { const panel = document.querySelector('#res-panel'); " \
           "return !!panel && panel.getClientRects().length > 0; }"
_TABLE = "width:100%;border-collapse:collapse;font-size:0.9em;margin:4px 0 10px"
_CELL = "padding:3px 8px;border-bottom:1px solid var(--border-color-primary);text-align:left;vertical-align:top"
_NUM = _CELL.replace("text-align:left", "text-align:right") + ";white-space:nowrap"


@dataclass
class ResourcesTab:
    """The panel and its free button (build_ui wires nothing across; kept for symmetry with the other tabs)."""

    panel: gr.HTML
    free: gr.Button


def build(manager: JobManager, playground: Playground, timer: gr.Timer) -> ResourcesTab:
    """The Resources tab (call inside gr.Tabs), refreshed on a tick of `timer` while it is shown."""
    with gr.Tab("Resources", id="resources") as tab, gr.Column(elem_id="res-panel"):
        gr.Markdown("What this machine is doing now, and which of sft-ui's processes hold its memory: the server "
                    "(with the playground's loaded models), each training job's worker, the spare worker and model "
                    "imports. Refreshed every few seconds while this tab is open.")
        panel = gr.HTML(elem_id="res-body")
        free = gr.Button("Free the playground's models", size="sm", elem_id="res-free")
        message = gr.HTML(elem_id="res-msg")
        shown = gr.Checkbox(False, visible=False)

    def read() -> str:
        """The panel as the machine is now."""
        return panel_html(machine.report(manager, playground))

    def tick(is_shown: bool) -> Any:
        """The panel for a timer tick: read only while it is on screen."""
        return read() if is_shown else gr.skip()

    def release() -> tuple[str, str]:
        """Free the playground's models, say whose, and show the memory after."""
        return views.message_html(free_models(playground) + ".", "ok"), read()

    tab.select(read, None, panel, **QUIET)
    timer.tick(tick, shown, panel, js=SHOWN_JS, **QUIET)
    free.click(release, None, [message, panel], **PRIVATE)
    return ResourcesTab(panel, free)


def fmt_bytes(count: int | None) -> str:
    """Bytes in binary units: '812 MiB', '3.41 GiB' ('' when unknown)."""
    if count is None:
        return ""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            value = count / size
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f} {unit}"
    return f"{count} B"


def panel_html(snap: dict[str, Any]) -> str:
    """The snapshot (sft_ui.resources.snapshot) as a summary line and tables of the processes and the GPUs."""
    cpu, memory = snap.get("cpu_percent"), snap.get("memory") or {}
    facts = [f'CPU <b id="res-cpu" data-value="{cpu}">{"unknown" if cpu is None else f"{cpu:.1f} %"}</b>'
             + (f" of {snap['cpu_count']} cores" if snap.get("cpu_count") else "")]
    if memory.get("total_bytes"):
        total, used = memory["total_bytes"], memory["total_bytes"] - memory["available_bytes"]
        facts.append(f'RAM <b id="res-ram" data-used="{used}" data-total="{total}">{fmt_bytes(used)}</b> of '
                     f"{fmt_bytes(total)} in use ({100 * used / total:.0f} %)")
    parts = [f'<div id="res-summary" style="margin:4px 0 8px">{" · ".join(facts)}</div>',
             _processes(snap.get("processes") or []), _gpus(snap.get("gpus") or [])]
    return "".join(parts)


def _processes(held: list[dict[str, Any]]) -> str:
    """What each process of sft-ui holds in RAM (resident memory)."""
    rows = "".join(f'<tr data-pid="{p["pid"]}" data-rss="{p["rss_bytes"]}"><td style="{_CELL}">{escape(p["holder"])}'
                   f'</td><td style="{_NUM}">{p["pid"]}</td><td style="{_NUM}">{fmt_bytes(p["rss_bytes"])}</td></tr>'
                   for p in held)
    return (f'<table id="res-processes" style="{_TABLE}"><thead><tr><th style="{_CELL}">held by</th>'
            f'<th style="{_NUM}">pid</th><th style="{_NUM}">RAM</th></tr></thead><tbody>{rows}</tbody></table>')


def _gpus(gpus: list[dict[str, Any]]) -> str:
    """Memory and utilisation per GPU; a line saying there is none when nvidia-smi sees none."""
    if not gpus:
        return '<p id="res-gpus" style="font-size:0.9em">No GPU: nvidia-smi is not installed or sees none.</p>'
    rows = []
    for g in gpus:
        used, total, util = g.get("memory_used_bytes"), g.get("memory_total_bytes"), g.get("utilization_percent")
        memory = f"{fmt_bytes(used)} of {fmt_bytes(total)}" if used is not None and total else fmt_bytes(used)
        rows.append(f'<tr data-gpu="{g["index"]}"><td style="{_CELL}">{g["index"]}: {escape(g.get("name", ""))}</td>'
                    f'<td style="{_NUM}">{memory or "unknown"}</td>'
                    f'<td style="{_NUM}">{"unknown" if util is None else f"{util:.0f} %"}</td></tr>')
    return (f'<table id="res-gpus" style="{_TABLE}"><thead><tr><th style="{_CELL}">GPU</th>'
            f'<th style="{_NUM}">memory</th><th style="{_NUM}">busy</th></tr></thead><tbody>{"".join(rows)}'
            "</tbody></table>")
