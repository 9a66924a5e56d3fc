"""In a real browser: after a damaged database was rebuilt at start, the page says so at the top."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from sft_ui.manager import JobManager
from tests.servers import live_server


def test_a_restored_database_shows_a_banner(page: Page, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = JobManager(data_dir=data).start()
    first._schedule = lambda: None  # type: ignore[method-assign]
    first.create_job({"job_name": "kept <b>job</b>"})
    first.store.close()
    first.database_path.write_text('{"jobs": {"1": ')  # cut short
    manager = JobManager(data_dir=data).start()
    manager._schedule = lambda: None  # type: ignore[method-assign]
    with live_server(manager) as url:
        page.goto(url)
        banner = page.locator("#restore-banner")
        expect(banner).to_contain_text("could not be read at start", timeout=20_000)
        expect(banner).to_contain_text("1 job records were rebuilt from the job folders")
        page.get_by_role("tab", name="Jobs").click()
        expect(page.locator("#jobs-table")).to_contain_text("kept <b>job</b>")


def test_no_banner_without_a_restore(page: Page, tmp_path: Path) -> None:
    manager = JobManager(data_dir=tmp_path / "data").start()
    with live_server(manager) as url:
        page.goto(url)
        expect(page.locator("#start-btn")).to_be_visible(timeout=20_000)
        expect(page.locator("#restore-banner")).not_to_contain_text("could not be read")
