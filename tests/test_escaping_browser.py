"""In a real browser: a job whose name, data set and error hold HTML shows that text, and no element made of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sft_ui.manager import JobManager
from tests.servers import live_server
from tests.test_ui_browser import choose, screenshots_on_failure

NAME = "<img src=x onerror=window.pwned=1> **bold**"
DATASET = "d`<img src=y onerror=window.pwned=2>`.jsonl"  # a data-root file name: accepted at creation


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The app over a manager that starts no worker, holding one failed job with hostile text: (URL, job id)."""
    manager = JobManager(data_dir=tmp_path_factory.mktemp("escaping-browser") / "data").start()
    manager._schedule = lambda: None  # type: ignore[method-assign]
    job_id = manager.create_job({"job_name": NAME, "dataset_name": DATASET})
    manager.store.update_job(job_id, {"status": "failed", "finished_at": "2026-01-01T00:00:00Z",
                                      "error": f"dataset_name: file not found under the data root: {DATASET}"})
    with live_server(manager) as url:
        yield url, job_id


def test_hostile_text_is_shown_as_written_and_makes_no_element(page: Page, served: tuple[str, str],
                                                               tmp_path: Path) -> None:
    page.set_default_timeout(20_000)
    page.goto(served[0])
    with screenshots_on_failure(page, tmp_path):
        page.get_by_role("tab", name="Jobs").click()
        choose(page, "job-pick", served[1])
        expect(page.locator("#job-error")).to_contain_text(f"file not found under the data root: {DATASET}")
        expect(page.locator("#job-summary")).to_contain_text(NAME)
        expect(page.locator("#job-summary")).to_contain_text(DATASET)
        expect(page.locator("#jobs-table")).to_contain_text(NAME)
        assert page.locator("img[src='x'], img[src='y'], strong:text-is('bold')").count() == 0
        assert page.evaluate("window.pwned") is None
