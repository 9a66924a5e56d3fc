"""The Jobs tab's event timeline in a real browser (1440x900 and 390x844), checked against REST: a finished job's
events newest first with their times and levels, a failure's error on top, a running job's new events on the timer,
the raw log folded; and Gradio's /get_events equal to REST."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from playwright.sync_api import Browser, Page, expect

from sft_ui.builtin import builtin_model_path
from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from tests.browsing import opened
from tests.helpers import LONG, wait_for
from tests.servers import live_server

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
DONE = {"job_name": "<b>events</b> & co", "max_steps": 6, "save_steps": 3, "eval_split": 0.2, "eval_steps": 3,
        "eval_max_rows": 0, "logging_steps": 1}


@dataclass
class Served:
    """The app's URL, its manager, a completed and a failed job."""

    url: str
    manager: JobManager
    done: str
    failed: str

    def events(self, job_id: str, **params: Any) -> dict[str, Any]:
        """GET /api/sft/jobs/{id}/events."""
        response = httpx.get(f"{self.url}api/sft/jobs/{job_id}/events", params={"limit": 1000, **params}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[Served]:
    """The app on a free port over a manager with a completed job (checkpoints, evaluations) and a failed one."""
    builtin_model_path(builtin_cache)
    manager = JobManager(data_dir=tmp_path_factory.mktemp("events-view") / "data", max_concurrent_jobs=1).start()
    done = manager.create_job(DONE)
    manager.start_job(done)
    failed = manager.create_job({"max_steps": 5, "dataset_name": "missing.jsonl"})
    manager.start_job(failed)
    assert wait_for(manager, done, ENDED, timeout=300)["status"] == "completed", manager.get_log(done)[-2000:]
    assert wait_for(manager, failed, ENDED, timeout=300)["status"] == "failed"
    with live_server(manager) as url:
        yield Served(url, manager, done, failed)


def shown(page: Page, count: int) -> list[dict[str, str]]:
    """The timeline's items, once it shows `count`, oldest first (the page shows the newest first)."""
    items = page.locator("#job-events li")
    expect(items).to_have_count(count)
    found = items.evaluate_all("""(lis) => lis.map((li) => ({id: li.dataset.eventId, level: li.dataset.level,
        time: li.querySelector('time').innerText, datetime: li.querySelector('time').getAttribute('datetime'),
        message: li.querySelector('.sft-ev-msg').innerText}))""")
    return list(reversed(found))


def test_a_finished_jobs_timeline_shows_what_rest_has_and_the_raw_log_is_folded(served: Served, browser: Browser,
                                                                               tmp_path: Path) -> None:
    rest = served.events(served.done)["events"]
    assert {"checkpoint", "evaluation", "completed"} <= {e["type"] for e in rest}
    with opened(browser, DESKTOP, tmp_path) as page:
        page.goto(f"{served.url}?tab=jobs&job={served.done}")
        found = shown(page, len(rest))
        assert [f["message"] for f in found] == [e["message"] for e in rest]
        assert found[0]["message"] == "Job created: <b>events</b> & co"  # the name as text, not markup
        assert [(f["id"], f["level"], f["datetime"]) for f in found] == \
            [(e["id"], e["level"], e["created_at"]) for e in rest]
        assert [f["time"] for f in found] == [e["created_at"][11:19] for e in rest]
        expect(page.locator("#job-events li").first).to_contain_text("Completed at step 6")
        log = page.locator("#job-log")
        expect(log).to_be_hidden()
        page.locator("#job-log-accordion").get_by_text("Raw log").click()
        expect(log).to_be_visible()
        assert "[sft-ui] training" in log.locator("textarea").input_value()


def test_a_failure_is_the_newest_event_in_red_on_a_phone(served: Served, browser: Browser, tmp_path: Path) -> None:
    rest = served.events(served.failed)["events"]
    error = httpx.get(f"{served.url}api/sft/jobs/{served.failed}", timeout=30).json()["error"]
    with opened(browser, PHONE, tmp_path) as page:
        page.goto(f"{served.url}?tab=jobs&job={served.failed}")
        found = shown(page, len(rest))
        assert [f["message"] for f in found] == [e["message"] for e in rest]
        top = page.locator("#job-events li").first
        expect(top).to_have_attribute("data-level", "error")
        expect(top).to_contain_text(f"Failed: {error}")
        assert top.evaluate("(li) => getComputedStyle(li).borderLeftColor") == "rgb(220, 38, 38)"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width}px wide"


def test_a_running_jobs_timeline_grows_on_the_timer_until_it_stops(served: Served, browser: Browser,
                                                                  tmp_path: Path) -> None:
    manager = served.manager
    job_id = manager.create_job({**LONG, "save_steps": 2})
    manager.start_job(job_id)
    try:
        with opened(browser, DESKTOP, tmp_path) as page:
            page.goto(f"{served.url}?tab=jobs&job={job_id}")
            expect(page.locator('#job-events li[data-type="checkpoint"]').first).to_be_visible(timeout=120_000)
            manager.stop_job(job_id)
            expect(page.locator("#job-events li").first).to_contain_text("Stopped at step")
            rest = served.events(job_id)["events"]
            assert rest[-1]["type"] == "stopped"
            found = shown(page, len(rest))
            assert [f["message"] for f in found] == [e["message"] for e in rest]
    finally:
        with contextlib.suppress(Exception):
            manager.stop_job(job_id)


def test_gradio_get_events_answers_as_rest(served: Served) -> None:
    client = Client(served.url, verbose=False)
    rest = served.events(served.done)
    assert client.predict(served.done, None, 1000, api_name="/get_events") == rest
    second = rest["events"][1]["id"]
    page = client.predict(served.done, second, 2, api_name="/get_events")
    assert page == {"job_id": served.done, "events": rest["events"][2:4], "has_more": True}
    started = time.monotonic()
    with pytest.raises(Exception, match="after"):
        client.predict(served.done, "12", 10, api_name="/get_events")
    assert time.monotonic() - started < 30
