"""The job events' file: ids by line, cursor paging, lines cut short skipped, bad cursors named."""

from __future__ import annotations

from pathlib import Path

import pytest

from sft_ui import events, jobdir


def _write(job_dir: Path, writer: str, count: int) -> None:
    for i in range(count):
        events.append(job_dir, "tick", f"{writer} {i}", writer=writer, i=i)


def test_pages_by_cursor_concatenate_to_the_whole_list(tmp_path: Path) -> None:
    _write(tmp_path, "a", 23)
    whole, more = events.read(tmp_path, None, 1000)
    assert len(whole) == 23 and not more
    for limit in (1, 5, 23, 100):
        pages, after, more = [], None, True
        while more:
            page, more = events.read(tmp_path, after, limit)
            assert len(page) <= limit
            pages += page
            after = page[-1]["id"]
        assert pages == whole
    assert events.read(tmp_path, "evt_23", 5) == ([], False)
    assert events.read(tmp_path, "evt_20", 3) == (whole[20:], False)
    assert events.read(tmp_path, "evt_19", 3) == (whole[19:22], True)


def test_a_line_cut_short_is_skipped_and_later_ids_keep_their_line(tmp_path: Path) -> None:
    _write(tmp_path, "a", 2)
    with open(tmp_path / jobdir.EVENTS, "ab") as fh:
        fh.write(b'{"created_at": "2026-01-01T00:00:00Z", "level": "in\n')  # a kill mid-line, then a newline
    _write(tmp_path, "a", 1)
    with open(tmp_path / jobdir.EVENTS, "ab") as fh:
        fh.write(b'{"created_at": "2026-01-01T00:00:00Z", "le')  # still being written
    found, more = events.read(tmp_path, None, 10)
    assert [e["id"] for e in found] == ["evt_1", "evt_2", "evt_4"] and not more
    assert events.read(tmp_path, "evt_2", 10)[0] == found[2:]
    assert events.read(tmp_path, "evt_3", 10)[0] == found[2:]


def test_a_missing_file_has_no_events_and_bad_cursors_and_limits_name_the_field(tmp_path: Path) -> None:
    assert events.read(tmp_path, None, 10) == ([], False)
    for bad in ("12", "evt_", "evt_0", "evt_-1", "evt_1x", 12):
        with pytest.raises(ValueError, match="^after: "):
            events.read(tmp_path, bad, 10)  # type: ignore[arg-type]
    for bad in (0, 1001, -1, "5", 2.5, True):
        with pytest.raises(ValueError, match="^limit: "):
            events.read(tmp_path, None, bad)  # type: ignore[arg-type]


def test_hostile_text_is_kept_as_written(tmp_path: Path) -> None:
    events.append(tmp_path, "failed", "Failed: <script>alert(1)</script>\nline two", "error", error="x\u2028y")
    [event] = events.read(tmp_path, None, 10)[0]
    assert event["message"] == "Failed: <script>alert(1)</script>\nline two" and event["level"] == "error"
    assert event["data"] == {"error": "x\u2028y"} and event["type"] == "failed"


def test_the_timeline_shows_the_newest_first_with_time_level_and_escaped_message() -> None:
    from sft_ui.escaping import escape
    from sft_ui.web.ui.job_events import timeline_html

    found = [{"id": "evt_1", "created_at": "2026-12-02T09:53:29Z", "level": "info", "type": "created",
              "message": "Job created: <img src=x onerror=alert(1)> **bold** $x$", "data": {}},
             {"id": "evt_2", "created_at": "2026-12-02T09:54:01Z", "level": "error", "type": "failed",
              "message": "Failed: <script>", "data": {}},
             {"id": "evt_3", "created_at": None, "level": "nonsense", "type": "x", "message": "odd", "data": {}}]
    html = timeline_html(found)
    ids = [html.index(f'data-event-id="{escape(f"evt_{n}")}"') for n in (3, 2, 1)]
    assert ids == sorted(ids)
    assert "<img" not in html and "<script" not in html and "**bold**" not in html
    assert '<li class="sft-ev-error"' in html and 'data-level="info" data-type="x"' in html  # unknown: info
    assert f">{escape('09:53:29')}</time>" in html
    assert timeline_html([]) == '<p id="job-events" class="sft-none">No events yet.</p>'


def test_the_timeline_keeps_the_newest_and_says_how_many_it_left_out(tmp_path: Path) -> None:
    import gradio as gr

    from sft_ui.web.ui import job_events

    class Manager:
        """Only what the trail reads: get_events."""

        def get_events(self, job_id: str, after: str | None, limit: int) -> tuple[list[dict], bool]:
            return events.read(tmp_path, after, limit)

    _write(tmp_path, "a", job_events.MAX_SHOWN + 5)
    trail = job_events.EventsTrail()
    html = job_events.timeline_update(Manager(), "job", trail)  # type: ignore[arg-type]
    assert len(trail.events) == job_events.MAX_SHOWN and trail.events[0]["message"] == "a 5"
    assert trail.hidden == 5 and "5 older events are left out here" in html
    assert job_events.timeline_update(Manager(), "job", trail) == gr.skip()  # nothing new  # type: ignore
    events.append(tmp_path, "tick", "new one")
    html = job_events.timeline_update(Manager(), "job", trail)  # type: ignore[arg-type]
    assert trail.events[-1]["message"] == "new one" and trail.hidden == 6 and "6 older" in html

