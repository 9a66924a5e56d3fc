"""The selected job's checkpoints: a table (step, losses, size, the best marked) and the choices of the picker that
Resume, the zip, Merge, Push and the Playground use ("" is the job's final model)."""

from typing import Any

import gradio as gr

from sft_ui import checkpoints
from sft_ui.escaping import escape
from sft_ui.manager import JobManager, NotFoundError

FINAL = ("final model", "")  # the picker's first choice: the job's model/ (or, for Resume, its last checkpoint)


def listing(manager: JobManager, job_id: str | None) -> list[dict[str, Any]]:
    """GET /jobs/{id}/checkpoints's list; [] without a job or for an unknown one."""
    if not job_id:
        return []
    try:
        return checkpoints.for_job(manager, job_id)["checkpoints"]
    except (NotFoundError, ValueError, OSError):
        return []


def _number(value: Any) -> str:
    """A loss with 4 decimals, or a dash."""
    return f"{value:.4f}" if isinstance(value, int | float) else "–"


def _size(size: int) -> str:
    """Bytes as MB (kB below one)."""
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def table_html(found: list[dict[str, Any]]) -> str:
    """One row per checkpoint, oldest first; the best one marked ★."""
    if not found:
        return '<p id="checkpoints-table" class="sft-none">No checkpoint saved (save_steps 0 saves none).</p>'
    head = "".join(f"<th>{name}</th>" for name in ("step", "train loss", "eval loss", "size", "best"))
    rows = "".join(
        f'<tr data-name="{escape(c["name"])}"><td>{escape(str(c["step"]))}</td><td>{_number(c["train_loss"])}</td>'
        f'<td>{_number(c["eval_loss"])}</td><td>{_size(c["size_bytes"])}</td><td>{"★ best" if c["best"] else ""}'
        "</td></tr>" for c in found)
    return (f'<table id="checkpoints-table" class="sft-metrics"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def choices(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The picker's choices: the final model, then each checkpoint newest first (the best says so)."""
    named = [(f"{c['name']} (step {c['step']}{', best' if c['best'] else ''})", c["name"]) for c in found]
    return [FINAL, *reversed(named)]


def signature(found: list[dict[str, Any]]) -> str:
    """What the table shows, to send nothing when it did not change."""
    return "|".join(f"{c['name']}:{c['best']}:{c['train_loss']}:{c['eval_loss']}" for c in found)


def refresh(manager: JobManager, job_id: str | None, current: str | None, sig: str | None,
            picked: bool) -> tuple[Any, Any, str]:
    """(table, picker, signature): skipped when nothing changed; the picker keeps a choice that still exists and
    goes back to the final model when the job was picked anew."""
    found = listing(manager, job_id)
    new_sig = f"{job_id}#{signature(found)}"
    if new_sig == sig and not picked:
        return gr.skip(), gr.skip(), new_sig
    names = {c["name"] for c in found}
    value = current if current in names and not picked else ""
    return table_html(found), gr.Dropdown(choices=choices(found), value=value), new_sig
