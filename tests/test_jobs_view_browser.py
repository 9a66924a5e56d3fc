"""The Jobs tab in a real browser at 1440x900 and 390x844: links and reload, a table that fits, cards on a phone,
actions per status, one step everywhere, the metrics table, the failure card; each checked against REST."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from sft_ui import artifacts, jobdir, resume
from sft_ui.builtin import builtin_model_path
from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from tests.browsing import open_tab, opened
from tests.helpers import LONG, wait_for
from tests.servers import live_server
from tests.test_ui_browser import TRAIN_TIMEOUT, job_row

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
LONG_NAME = ("a long job name " * 13)[:189] + "ending here"  # 200 characters, the most a name may have
LONG_DATA = "d" * 194 + ".jsonl"  # 200 too
TRACEBACK = ('Traceback (most recent call last):\n  File "train.py", line 9, in run\n    rows = read(path)\n'
             "FileNotFoundError: dataset_name: file not found under the data root: <missing>.jsonl\n")


@dataclass
class Served:
    """The app's URL, its manager and the jobs made for these tests."""

    url: str
    manager: JobManager
    done: str  # a completed 30-step LoRA job
    failed: str  # a failed job whose log holds a traceback
    long: str  # a stopped job with a 200-character name and data set

    def rest(self, job_id: str) -> dict[str, Any]:
        """GET /api/sft/jobs/{id}."""
        response = httpx.get(f"{self.url}api/sft/jobs/{job_id}", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[Served]:
    """The app on a free port over a manager holding a completed, a failed and a long-named job."""
    builtin_model_path(builtin_cache)
    manager = JobManager(data_dir=tmp_path_factory.mktemp("jobs-view") / "data", max_concurrent_jobs=2).start()
    done = manager.create_job({"job_name": "browser done", "max_steps": 30})
    manager.start_job(done)
    failed = manager.create_job({"job_name": "browser failed", "max_steps": 5})
    manager.stop_job(failed)
    job_dir = Path(manager.get_job_status(failed)["job_dir"])
    (job_dir / jobdir.LOG).write_text("[sft-ui] loading_data\n" + TRACEBACK + "[sft-ui] finished: failed\n")
    manager.store.update_job(failed, {"status": "failed", "error": TRACEBACK.strip().splitlines()[-1]})
    long = manager.create_job({"job_name": LONG_NAME, "dataset_name": LONG_DATA, "max_steps": 5})
    manager.stop_job(long)
    record = wait_for(manager, done, ENDED, timeout=TRAIN_TIMEOUT / 1000)
    assert record["status"] == "completed", (record["error"], manager.get_log(done)[-2000:])
    with live_server(manager) as url:
        yield Served(url, manager, done, failed, long)


def shown_step(page: Page) -> int:
    """The step the progress line shows ('Step 12/30 ...')."""
    return int(re.search(r"Step (\d+)", page.locator("#job-progress").inner_text()).group(1))


def link_value(page: Page) -> str:
    """The copyable link's text."""
    return page.locator("#job-link input, #job-link textarea").first.input_value()


def pick(page: Page, job_id: str, phone: bool) -> None:
    """Select a job as a person would: a row of the table, or a card on a phone."""
    if phone:
        page.locator(f'#jobs-cards [data-job="{job_id}"]').click()
    else:
        job_row(page, job_id).click()
    expect(page.locator("#job-summary")).to_contain_text(job_id)


def enabled_if(page: Page, selector: str, can: bool) -> None:
    """The button is enabled when `can`, else disabled."""
    if can:
        expect(page.locator(selector)).to_be_enabled()
    else:
        expect(page.locator(selector)).to_be_disabled()


def no_horizontal_overflow(page: Page) -> None:
    """The page is no wider than the window."""
    width, window = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width <= window, f"the page is {width} px wide in a {window} px window"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_link_opens_the_job_and_a_reload_keeps_tab_and_job(served: Served, browser: Browser,
                                                             viewport: dict[str, int], tmp_path: Path) -> None:
    phone = viewport is PHONE
    with opened(browser, viewport, tmp_path) as page:
        page.goto(f"{served.url}?tab=jobs&job={served.done}")
        expect(page.get_by_role("tab", name="Jobs")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#job-summary")).to_contain_text(served.done)
        progress = served.rest(served.done)["progress"]
        expect(page.locator("#job-progress")).to_contain_text(f"Step {progress['step']}/{progress['total_steps']}")
        assert shown_step(page) == progress["step"]
        expect(page.locator("#job-link input, #job-link textarea").first).to_have_value(
            re.compile(rf"^http://127\.0\.0\.1:\d+/\?tab=jobs&job={served.done}$"))

        pick(page, served.failed, phone)  # the address follows the pick, without a reload
        expect(page).to_have_url(re.compile(rf"[?&]job={served.failed}"))
        assert link_value(page).endswith(f"?tab=jobs&job={served.failed}")
        page.reload()
        expect(page.get_by_role("tab", name="Jobs")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#job-summary")).to_contain_text(served.failed)
        assert served.rest(served.failed)["status"] == "failed"
        expect(page.locator("#job-progress")).to_have_attribute("data-status", "failed")

        page.get_by_role("tab", name="Train").click()  # the open tab goes into the address too
        expect(page).to_have_url(re.compile(r"[?&]tab=train"))
        page.reload()
        expect(page.get_by_role("tab", name="Train")).to_have_attribute("aria-selected", "true")
        open_tab(page, "Jobs")
        expect(page.locator("#job-summary")).to_contain_text(served.failed)


def test_a_link_to_a_job_that_does_not_exist_says_so(served: Served, browser: Browser, tmp_path: Path) -> None:
    with opened(browser, DESKTOP, tmp_path) as page:
        page.goto(f"{served.url}?job=000000000000")
        expect(page.get_by_role("tab", name="Jobs")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#job-msg")).to_contain_text("job 000000000000 does not exist")
        assert httpx.get(f"{served.url}api/sft/jobs/000000000000").status_code == 404


STEPS_NOW = """([jobId, stepCol]) => {
  const progress = document.querySelector('#job-progress');
  const match = progress && progress.innerText.match(/Step (\\d+)/);
  const cell = Array.from(document.querySelectorAll('#jobs-table [role="gridcell"]'))
    .find((c) => c.innerText.trim() === jobId);
  const row = cell && cell.closest('[role="row"]');
  const stepCell = row && row.querySelector(`[data-col="${stepCol}"]`);
  const points = Array.from(document.querySelectorAll('#loss-plot path[aria-roledescription="point"]'))
    .map((p) => Number(((p.getAttribute('aria-label') || '').match(/step: (\\d+)/) || [])[1]))
    .filter((n) => !Number.isNaN(n));
  return {progress: match ? Number(match[1]) : null, row: stepCell ? stepCell.innerText.trim() : null,
          plot: points.length ? Math.max(...points) : null};
}"""


def test_actions_follow_the_status_and_one_step_shows_everywhere(served: Served, browser: Browser,
                                                                 tmp_path: Path) -> None:
    running = served.manager.create_job({"job_name": "browser running", **LONG})
    served.manager.start_job(running)
    try:
        with opened(browser, DESKTOP, tmp_path) as page:
            page.goto(f"{served.url}?tab=jobs&job={running}")
            progress = page.locator("#job-progress")
            expect(progress).to_have_attribute("data-status", "running", timeout=TRAIN_TIMEOUT)
            expect(progress).to_contain_text(re.compile(r"Step [1-9]\d*/100000"), timeout=TRAIN_TIMEOUT)
            assert served.rest(running)["status"] == "running"
            expect(page.locator("#stop-btn")).to_be_enabled()
            for disabled in ("#try-btn", "#zip-btn", "#merge-btn", "#resume-btn"):
                expect(page.locator(disabled)).to_be_disabled()

            # The progress line and the table row show the step of one read; the plot stops at it.
            expect(page.locator('#loss-plot path[aria-roledescription="point"]').first).to_be_attached()
            for _ in range(4):
                now = page.evaluate(STEPS_NOW, [running, 1])
                assert now["row"] == f"{now['progress']}/100000", now
                assert now["plot"] is not None and now["plot"] <= now["progress"], now
                page.wait_for_timeout(700)

            page.locator("#stop-btn").click()
            expect(progress).to_have_attribute("data-status", "stopped", timeout=60_000)
            record = served.rest(running)
            assert record["status"] == "stopped"
            model = artifacts.has_model(Path(record["job_dir"]) / jobdir.MODEL)
            checkpoint = resume.last_checkpoint(Path(record["job_dir"])) is not None
            expect(page.locator("#stop-btn")).to_be_disabled()
            enabled_if(page, "#try-btn", model)
            enabled_if(page, "#zip-btn", model)
            enabled_if(page, "#resume-btn", checkpoint)

            pick(page, served.done, phone=False)
            assert served.rest(served.done)["status"] == "completed"
            expect(page.locator("#stop-btn")).to_be_disabled()
            for enabled in ("#try-btn", "#zip-btn", "#merge-btn", "#reuse-btn"):
                expect(page.locator(enabled)).to_be_enabled()
            expect(page.locator("#resume-btn")).to_be_disabled()
            expect(page.locator("#job-next")).to_contain_text("Try in Playground")
    finally:
        if served.manager.get_job_status(running)["status"] not in ENDED:
            served.manager.stop_job(running)


def test_the_table_fits_at_1440_with_a_200_character_name(served: Served, browser: Browser, tmp_path: Path) -> None:
    with opened(browser, DESKTOP, tmp_path) as page:
        page.goto(f"{served.url}?tab=jobs&job={served.long}")
        expect(page.locator("#job-summary")).to_contain_text(served.long)
        row = job_row(page, served.long)
        expect(row).to_contain_text(served.rest(served.long)["status"])
        no_horizontal_overflow(page)
        viewport = page.locator("#jobs-table .virtual-table-viewport")
        scroll, client = viewport.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert scroll <= client, f"the table scrolls sideways: {scroll} > {client}"
        table = page.locator("#jobs-table").bounding_box()
        for header in ("status", "step", "loss", "ETA", "name", "id"):  # every column in view
            box = page.locator(f'#jobs-table th[title="{header}"]').bounding_box()
            assert box is not None and box["x"] + box["width"] <= table["x"] + table["width"] + 1, header
        name = row.locator('[role="gridcell"][data-col="4"]')
        assert name.get_attribute("title") == LONG_NAME  # the whole name on hover
        text = name.locator(".text")
        assert text.evaluate("e => e.scrollWidth > e.clientWidth")  # cut with an ellipsis
        assert text.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
        id_box = row.locator('[role="gridcell"][data-col="5"]').bounding_box()
        assert id_box is not None and id_box["x"] + id_box["width"] <= table["x"] + table["width"] + 1
        # The data set is in the detail panel, and does not widen the page either.
        expect(page.locator("#job-summary")).to_contain_text(LONG_DATA)
        no_horizontal_overflow(page)


def test_a_phone_shows_one_card_per_job_and_no_horizontal_overflow(served: Served, browser: Browser,
                                                                  tmp_path: Path) -> None:
    with opened(browser, PHONE, tmp_path) as page:
        page.goto(f"{served.url}?tab=jobs")
        jobs = httpx.get(f"{served.url}api/sft/jobs", timeout=30).json()["jobs"]
        cards = page.locator("#jobs-cards [data-job]")
        expect(cards).to_have_count(len(jobs))
        for job in jobs:
            card = page.locator(f"#jobs-cards [data-job='{job['job_id']}']")
            expect(card).to_contain_text(job["status"])
            if job["name"] != LONG_NAME:
                expect(card).to_contain_text(job["name"])
        expect(page.locator("#jobs-table")).to_be_hidden()
        no_horizontal_overflow(page)

        pick(page, served.long, phone=True)
        no_horizontal_overflow(page)
        # The picker shows the job id first, clear of its arrow.
        clear = page.locator("#job-pick").evaluate("""(e) => {
          const input = e.querySelector('input');
          const arrow = e.querySelector('.icon-wrap') || e.querySelector('svg');
          const canvas = document.createElement('canvas').getContext('2d');
          canvas.font = getComputedStyle(input).font;
          const id = input.value.split(' ')[0];
          const left = input.getBoundingClientRect().left + parseFloat(getComputedStyle(input).paddingLeft);
          return [id, left + canvas.measureText(id).width, arrow.getBoundingClientRect().left];
        }""")
        assert clear[0] == served.long
        assert clear[1] < clear[2], f"the arrow covers the job id: {clear}"


def test_the_metrics_table_and_the_loss_plot_end_at_the_rest_step(served: Served, browser: Browser,
                                                                  tmp_path: Path) -> None:
    with opened(browser, DESKTOP, tmp_path) as page:
        page.goto(f"{served.url}?tab=jobs&job={served.done}")
        step = served.rest(served.done)["progress"]["step"]
        last = page.locator("#metrics-table tbody tr").last
        expect(last).to_have_attribute("data-step", str(step))
        assert last.locator("td").first.inner_text() == str(step)
        expect(page.locator("#metrics-table th")).to_have_text(["step", "loss", "lr", "grad norm", "tokens/s",
                                                                 "elapsed"])
        points = page.locator('#loss-plot path[aria-roledescription="point"]')
        expect(points).to_have_count(step)
        legend = page.locator("#loss-plot")
        expect(legend).not_to_contain_text("eval")  # no eval points: no eval series
        page.locator("#job-log-accordion").get_by_text("Raw log").click()  # folded under the events
        log = page.locator("#job-log textarea").input_value()
        assert "{'loss'" not in log and "it/s]" not in log  # raw dicts and progress bars left out
        assert "{'loss'" in served.manager.get_log(served.done)  # which the full log has

        smoothing = page.locator("#loss-smoothing input[type=number]")
        smoothing.fill("0.9")
        smoothing.press("Enter")
        expect(legend).to_contain_text("smoothed train")
        expect(points).to_have_count(2 * step)
        page.locator("#loss-x").get_by_text("elapsed").click()
        expect(legend).to_contain_text("elapsed seconds")
        expect(points).to_have_count(2 * step)


def test_a_failure_shows_a_card_with_the_cause_and_the_traceback_folded(served: Served, browser: Browser,
                                                                       tmp_path: Path) -> None:
    with opened(browser, DESKTOP, tmp_path) as page:
        page.goto(f"{served.url}?tab=jobs&job={served.failed}")
        error = served.rest(served.failed)["error"]
        card = page.locator("#job-failure")
        expect(card).to_contain_text(f"Failed: {error}")
        expect(card).to_contain_text("What to do: Upload the file in the Data tab")
        trace = card.locator("details pre")
        expect(trace).to_be_hidden()
        card.locator("summary").click()
        expect(trace).to_contain_text("FileNotFoundError")
        page.locator("#job-log-accordion").get_by_text("Raw log").click()  # folded under the events
        with page.expect_download() as download:
            page.locator("#log-download").click()
        saved = tmp_path / "log.txt"
        download.value.save_as(saved)
        assert saved.read_text() == (Path(served.rest(served.failed)["job_dir"]) / jobdir.LOG).read_text()
