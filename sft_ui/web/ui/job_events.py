"""The Jobs tab's timeline: the selected job's events (sft_ui.events), newest first, read with after= as they come."""

from __future__ import annotations

from typing import Any

import gradio as gr

from sft_ui import events
from sft_ui.escaping import escape
from sft_ui.manager import JobManager, NotFoundError

MAX_SHOWN = 300  # the newest events shown; all of them stay readable through REST and the raw log
ICONS = {"info": "ℹ", "warning": "⚠", "error": "✖"}  # text glyphs: a machine without an emoji font has them


class EventsTrail:
    """The events of one job read so far (only those after the last one are asked for), and what was last sent."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.hidden = 0  # the older events left out of the page (MAX_SHOWN)
        self.sent: str | None = None

    def after(self) -> str | None:
        """The cursor for the next read: the last event's id."""
        return self.events[-1]["id"] if self.events else None

    def read(self, manager: JobManager, job_id: str) -> bool:
        """Append the job's new events; True when there were any."""
        more, before = True, self.after()
        while more:
            try:
                page, more = manager.get_events(job_id, self.after(), events.MAX_LIMIT)
            except (NotFoundError, ValueError):
                return False
            self.events += page
            more = more and bool(page)
        self.hidden += max(0, len(self.events) - MAX_SHOWN)
        del self.events[:-MAX_SHOWN]
        return self.after() != before or self.sent is None


def _time(created_at: Any) -> str:
    """HH:MM:SS of an ISO time (the whole of anything else)."""
    text = str(created_at or "")
    return text[11:19] if len(text) >= 19 and text[10] == "T" else text


def timeline_html(found: list[dict[str, Any]], hidden: int = 0) -> str:
    """The events as a list, newest first: time (the full ISO time in its title), level icon, message (escaped);
    then how many older ones are left out."""
    if not found:
        return '<p id="job-events" class="sft-none">No events yet.</p>'
    items = []
    for event in reversed(found):
        level = event.get("level") if event.get("level") in ICONS else "info"
        when = escape(str(event.get("created_at") or ""))
        items.append(
            f'<li class="sft-ev-{level}" data-event-id="{escape(str(event.get("id", "")))}" data-level="{level}" '
            f'data-type="{escape(str(event.get("type", "")))}"><time datetime="{when}" title="{when} UTC">'
            f'{escape(_time(event.get("created_at")))}</time><span class="sft-ev-icon" role="img" '
            f'aria-label="{level}">{ICONS[level]}</span><span class="sft-ev-msg">{escape(str(event.get("message")))}'
            "</span></li>")
    more = (f'<p class="sft-none">{hidden} older events are left out here; GET /api/sft/jobs/{{id}}/events has '
            "all of them.</p>") if hidden else ""
    return f'<ol id="job-events" aria-label="Events, newest first">{"".join(items)}</ol>{more}'


def timeline_update(manager: JobManager, job_id: str, trail: EventsTrail) -> Any:
    """The timeline's new HTML when events came since the last update, else gr.skip()."""
    if not trail.read(manager, job_id):
        return gr.skip()
    html = timeline_html(trail.events, trail.hidden)
    if html == trail.sent:
        return gr.skip()
    trail.sent = html
    return html
