"""The Jobs panel shows a job's metadata (escaped), tokens trained and how to open its trackers, as REST has them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from sft_ui.manager import JobManager
from tests.browsing import opened
from tests.servers import live_server
from tests.test_jobs_view_browser import DESKTOP, PHONE

METADATA = {"team": "<b>nlp</b>", "ticket": "T-12 & co"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the app's URL, a completed job with metadata, tokens and two trackers); no job ever runs."""
    manager = JobManager(data_dir=tmp_path_factory.mktemp("job-fields") / "data").start()
    manager._schedule = lambda: None  # type: ignore[method-assign]
    job_id = manager.create_job({"job_name": "fields", "max_steps": 10, "report_to": ["tensorboard", "trackio"]},
                                metadata=METADATA)
    manager.store.update_job(job_id, {"status": "completed", "finished_at": "2026-11-27T00:00:10Z",
                                      "metrics": {"loss": 1.5, "num_tokens": 123456}})
    with live_server(manager) as url:
        yield url, job_id


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_panel_shows_metadata_tokens_and_tracker_commands_as_rest_has_them(
        served: tuple[str, str], browser: Browser, viewport: dict[str, int], tmp_path: Path) -> None:
    url, job_id = served
    record = httpx.get(f"{url}api/sft/jobs/{job_id}", timeout=30).json()
    assert record["metadata"] == METADATA and record["trained_tokens"] == 123456
    with opened(browser, viewport, tmp_path) as page:
        page.goto(f"{url}?tab=jobs&job={job_id}")
        summary = page.locator("#job-summary")
        expect(summary).to_contain_text(job_id)
        expect(summary).to_contain_text(f"{record['trained_tokens']:,} tokens trained")
        expect(summary).to_contain_text("metadata: team = <b>nlp</b>, ticket = T-12 & co")  # shown as written
        assert summary.locator("b").count() == 0  # not rendered as markup
        expect(summary).to_contain_text(f"tensorboard --logdir {record['job_dir']}/tensorboard")
        expect(summary).to_contain_text("trackio show --project sft-ui")
