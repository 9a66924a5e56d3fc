"""In a real browser: start a job, stop it, resume it, try it in the Playground, download and merge it."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sft_ui.builtin import builtin_model_path
from sft_ui.manager import JobManager
from tests.servers import live_server
from tests.test_ui_browser import TRAIN_TIMEOUT, screenshots_on_failure, start


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[str, JobManager]]:
    """The app on a free port over a manager on a temporary data dir: (base URL, manager)."""
    builtin_model_path(builtin_cache)
    manager = JobManager(data_dir=tmp_path_factory.mktemp("ui-outputs") / "data").start()
    with live_server(manager) as url:
        yield url, manager


def test_start_stop_resume_try_download_and_merge_in_the_browser(page: Page, served: tuple[str, JobManager],
                                                                  tmp_path: Path) -> None:
    url, manager = served
    page.set_default_timeout(20_000)
    page.goto(url)
    with screenshots_on_failure(page, tmp_path):
        # Long enough that the click lands mid-training on a fast, idle machine too.
        job_id = start(page, max_steps=300, save_steps=10, job_name="browser resume")
        progress = page.locator("#job-progress")
        expect(progress).to_contain_text(re.compile(r"Step (1[2-9]|[2-9]\d|[12]\d\d)/300"), timeout=TRAIN_TIMEOUT)
        page.locator("#stop-btn").click()
        expect(progress).to_have_attribute("data-status", "stopped", timeout=60_000)

        page.locator("#resume-btn").click()
        expect(page.locator("#job-msg")).to_contain_text(re.compile(rf"Job {job_id} resumed from step \d*[1-9]0"))
        expect(progress).to_have_attribute("data-status", "completed", timeout=TRAIN_TIMEOUT)
        expect(progress).to_contain_text("Step 300/300")
        assert [p["step"] for p in manager.get_metrics(job_id) if "loss" in p] == list(range(1, 301))

        page.locator("#try-btn").click()
        expect(page.get_by_role("tab", name="Playground")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#pg-status")).to_contain_text(f"Loaded job {job_id}: LoRA adapter, alpaca prompts",
                                                           timeout=60_000)
        expect(page.locator("#pg-prompt textarea")).not_to_have_value("")  # a held-out built-in task to try
        page.locator("#pg-generate").click()
        expect(page.locator("#pg-status")).to_contain_text("new tokens at most", timeout=60_000)
        assert page.locator("#pg-tuned textarea").input_value() != page.locator("#pg-base textarea").input_value()
        page.get_by_role("button", name=re.compile("The prompt as the models read it")).click()
        expect(page.locator("#pg-formatted textarea")).to_have_value(re.compile(r"### Response:\n$"))

        page.get_by_role("tab", name="Jobs").click()
        page.locator("#zip-btn").click()
        expect(page.locator("#download-btn")).to_be_visible()
        with page.expect_download() as download:
            page.locator("#download-btn").click()
        saved = tmp_path / "download.zip"
        download.value.save_as(saved)
        names = zipfile.ZipFile(saved).namelist()
        assert {"model/adapter_config.json", "config.json", "metrics.jsonl"} <= set(names)

        page.locator("#merge-btn").click()
        expect(page.locator("#job-msg")).to_contain_text("Merged the adapter", timeout=60_000)
        assert (Path(manager.get_job_status(job_id)["job_dir"]) / "merged" / "config.json").is_file()

        page.get_by_role("button", name=re.compile("Push to the Hugging Face Hub")).click()
        page.locator("#push-btn").click()  # no HF_TOKEN here; the repo id is checked first
        expect(page.locator("#job-msg")).to_contain_text("repo_id")
