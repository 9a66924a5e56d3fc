"""The UI in a real browser (Playwright + Debian's Chromium) against the app on a free local port."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from sft_ui.builtin import builtin_model_path
from sft_ui.manager import JobManager
from sft_ui.web.ui.form import ESSENTIALS_GROUP, form_specs
from tests.servers import live_server

TRAIN_TIMEOUT = 120_000  # ms: a worker's start-up (~6 s of imports) and a short run, on a busy 2-core machine


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[str, JobManager]]:
    """The app on a free port over a manager on a temporary data dir: (base URL, manager)."""
    builtin_model_path(builtin_cache)  # made once per session; the jobs' timeouts then measure only the jobs
    manager = JobManager(data_dir=tmp_path_factory.mktemp("ui-browser") / "data", max_concurrent_jobs=2).start()
    with live_server(manager) as url:
        yield url, manager


@pytest.fixture
def ui(page: Page, served: tuple[str, JobManager], tmp_path: Path) -> Iterator[Page]:
    """The page, opened on the app; on failure, screenshots of every tab go to the test's tmp dir."""
    page.set_default_timeout(20_000)
    page.goto(served[0])
    expect(page.locator("#start-btn")).to_be_visible()
    with screenshots_on_failure(page, tmp_path):
        yield page


@contextlib.contextmanager
def screenshots_on_failure(page: Page, folder: Path) -> Iterator[None]:
    """Save a full-page screenshot of each tab when the block raises."""
    try:
        yield
    except BaseException:
        for tab in ("Train", "Jobs", "Compare"):
            with contextlib.suppress(Exception):
                page.get_by_role("tab", name=tab).click(timeout=2_000)
                time.sleep(0.5)
                page.screenshot(path=str(folder / f"failed-{tab.lower()}.png"), full_page=True)
        print(f"screenshots of the failed test: {folder}")
        raise


def field(page: Page, name: str) -> Locator:
    """The input of one config field of the Train form."""
    return page.locator(f"#cfg-{name} input")


def reveal(page: Page, name: str) -> None:
    """Unfold the group of the Train form that holds a field, when it is folded (its fields are not on the page
    until then)."""
    group = next(group for group, specs in form_specs().items() if name in {spec.name for spec in specs})
    if group != ESSENTIALS_GROUP and not field(page, name).is_visible():
        page.locator(f"#group-{group.lower().replace(' ', '-')} button.label-wrap").first.click()
        expect(field(page, name)).to_be_visible()


def choose(page: Page, dropdown: str, option: str) -> None:
    """Pick the option whose text contains `option` in the dropdown with elem_id `dropdown`."""
    page.locator(f"#{dropdown} input").click()
    page.get_by_role("option").filter(has_text=option).first.click()


def start(page: Page, **values: object) -> str:
    """Fill the form with `values`, click Start training, and return the job id the page reports."""
    for name, value in values.items():
        reveal(page, name)
        field(page, name).fill(str(value))
    page.locator("#start-btn").click()
    message = page.locator("#form-msg")
    expect(message).to_contain_text("Job ")
    return re.search(r"Job (\w+)", message.inner_text()).group(1)


def job_row(page: Page, text: str) -> Locator:
    """The visible table row with a cell reading `text` (a job id or name)."""
    cell = page.locator("#jobs-table").get_by_text(text, exact=True).filter(visible=True).first
    return cell.locator("xpath=ancestor::*[contains(@class, 'virtual-row')][1]")


def statuses_until(page: Page, job_id: str, final: str, timeout_s: float) -> list[str]:
    """The statuses the selected job's panel showed, in order, until it showed `final`."""
    progress = page.locator("#job-progress")
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            status = progress.get_attribute("data-status", timeout=1_000)
            if status and (not seen or seen[-1] != status):
                seen.append(status)
            if status == final:
                return seen
        time.sleep(0.2)
    pytest.fail(f"job {job_id} never showed {final!r}; it showed {seen}")


def test_start_the_default_job_watch_it_complete_and_plot_its_loss(ui: Page) -> None:
    job_id = start(ui, max_steps=30, job_name="browser default")
    expect(ui.locator("#form-msg")).to_contain_text("running")

    # Start took us to the Jobs tab with the job selected, and its row is in the table.
    expect(ui.get_by_role("tab", name="Jobs")).to_have_attribute("aria-selected", "true")
    expect(ui.locator("#job-summary")).to_contain_text(job_id)
    expect(job_row(ui, job_id)).to_contain_text("browser default")
    assert statuses_until(ui, job_id, "completed", TRAIN_TIMEOUT / 1000) == ["running", "completed"]
    expect(job_row(ui, job_id)).to_contain_text("completed")
    expect(job_row(ui, job_id)).to_contain_text("30/30")

    # The loss plot drew the 30 logged points as one line; the result and config are shown; Stop is off.
    points = ui.locator('#loss-plot path[aria-roledescription="point"]')
    expect(points).to_have_count(30)
    line = ui.locator('#loss-plot path[aria-roledescription="line mark"][aria-label*="series: train"]')
    assert line.get_attribute("stroke")
    assert len(line.get_attribute("d") or "") > 100
    expect(ui.locator('#lr-plot path[aria-roledescription="point"]')).to_have_count(30)
    expect(ui.locator("#job-result")).to_contain_text("final_loss")
    expect(ui.locator("#stop-btn")).to_be_disabled()
    ui.locator("#job-log-accordion").get_by_text("Raw log").click()  # folded under the events
    expect(ui.locator("#job-log")).to_be_visible()

    # Compare shows the job's curve too.
    ui.get_by_role("tab", name="Compare").click()
    choose(ui, "compare-pick", job_id)
    expect(ui.locator('#compare-plot path[aria-roledescription="line mark"][stroke]')).to_have_count(1)

    # "Use as new config" takes the job's config back to the form.
    ui.get_by_role("tab", name="Jobs").click()
    ui.locator("#reuse-btn").click()
    expect(ui.get_by_role("tab", name="Train")).to_have_attribute("aria-selected", "true")
    expect(field(ui, "job_name")).to_have_value("browser default")
    expect(field(ui, "max_steps")).to_have_value("30")


def test_start_a_long_job_and_stop_it_from_the_browser(ui: Page, served: tuple[str, JobManager]) -> None:
    # The fast paths sit in a closed "Performance" group of the form; what is set there reaches the job.
    ui.get_by_role("button", name="Performance").click()
    ui.locator("#cfg-padding_free input").check()
    field(ui, "dataloader_num_workers").fill("1")
    job_id = start(ui, max_steps=100_000, job_name="browser long")
    config = served[1].get_job_status(job_id)["config"]
    assert (config["padding_free"], config["dataloader_num_workers"], config["num_processes"]) == (True, 1, 1)
    expect(ui.locator("#job-progress")).to_have_attribute("data-status", "running")
    expect(ui.locator("#job-progress")).to_contain_text(re.compile(r"Step [1-9]\d*/100000"), timeout=TRAIN_TIMEOUT)
    expect(ui.locator("#stop-btn")).to_be_enabled()
    ui.locator("#stop-btn").click()
    expect(ui.locator("#job-progress")).to_have_attribute("data-status", "stopped", timeout=60_000)
    expect(job_row(ui, job_id)).to_contain_text("stopped")
    expect(ui.locator("#stop-btn")).to_be_disabled()
    assert served[1].get_job_status(job_id)["status"] == "stopped"


def test_save_a_preset_reload_and_load_it(ui: Page, served: tuple[str, JobManager]) -> None:
    field(ui, "job_name").fill("from a preset")
    field(ui, "learning_rate").fill("0.005")
    ui.locator("#save-name input").fill("browser preset")
    ui.locator("#save-btn").click()
    expect(ui.locator("#preset-msg")).to_contain_text("Saved “browser preset”")

    # Saving under the same name asks first, then replaces.
    reveal(ui, "batch_size")
    field(ui, "batch_size").fill("4")
    ui.locator("#save-btn").click()
    expect(ui.locator("#preset-msg")).to_contain_text("exists")
    ui.locator("#save-btn").click()
    expect(ui.locator("#preset-msg")).to_contain_text("Replaced “browser preset”")
    assert [c["config"]["batch_size"] for c in served[1].list_configs() if c["name"] == "browser preset"] == [4]

    ui.reload()
    expect(field(ui, "job_name")).to_have_value("from a preset")  # the unsaved form survives a reload
    choose(ui, "preset", "CPU demo")  # picking a preset fills the form
    expect(field(ui, "job_name")).to_have_value("")
    choose(ui, "preset", "browser preset")
    expect(ui.locator("#preset-msg")).to_contain_text("Loaded")
    expect(field(ui, "job_name")).to_have_value("from a preset")
    expect(field(ui, "learning_rate")).to_have_value("0.005")
    reveal(ui, "batch_size")
    expect(field(ui, "batch_size")).to_have_value("4")

    # A built-in preset fills the form too.
    choose(ui, "preset", "GPT-2 + Alpaca")
    ui.locator("#load-btn").click()
    expect(field(ui, "base_model")).to_have_value("gpt2")
    expect(field(ui, "max_steps")).to_have_value("500")

    # Delete removes a saved preset (and only a saved one).
    expect(ui.locator("#delete-btn")).to_be_disabled()
    choose(ui, "preset", "browser preset")
    ui.locator("#delete-btn").click()
    expect(ui.locator("#preset-msg")).to_contain_text("Deleted “browser preset”")
    assert "browser preset" not in [c["name"] for c in served[1].list_configs()]


def test_an_invalid_value_shows_a_message_and_starts_nothing(ui: Page, served: tuple[str, JobManager]) -> None:
    manager = served[1]
    before = len(manager.list_jobs())
    field(ui, "max_steps").fill("0")
    field(ui, "learning_rate").fill("-1")
    ui.locator("#start-btn").click()
    message = ui.locator("#form-msg")
    expect(message).to_contain_text("Not started")
    expect(message).to_contain_text("Max steps must be at least 1 (got 0)")
    expect(message).to_contain_text("Learning rate must be greater than 0 (got -1)")
    assert "Traceback" not in message.inner_text()
    expect(ui.get_by_role("tab", name="Train")).to_have_attribute("aria-selected", "true")
    assert len(manager.list_jobs()) == before


def test_data_preview_shows_the_rows_as_the_model_sees_them(ui: Page) -> None:
    ui.locator("#preview-btn").click()
    preview = ui.locator("#data-preview")
    expect(preview).to_contain_text("Row 1", timeout=60_000)
    expect(preview).to_contain_text("### Response:")
    expect(preview.locator('[title="response: carries the loss"]')).to_have_count(3)
    assert re.search(r"\d+ tokens · loss on \d+ tokens", preview.inner_text())

    field(ui, "dataset_name").fill("no/such-data-set")
    ui.locator("#preview-btn").click()
    expect(ui.locator("#preview-out")).to_contain_text("Cannot read the data set", timeout=60_000)


def test_the_jobs_tab_stays_responsive_with_200_jobs(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SFT_UI_MAX_QUEUED_JOBS", "1000")  # 100 of these wait as pending
    manager = JobManager(data_dir=tmp_path / "data").start()
    for i in range(200):
        job_id = manager.create_job({"job_name": f"run {i:03d}", "max_steps": 10 + i})
        if i % 2:
            manager.stop_job(job_id)
    with live_server(manager) as url, screenshots_on_failure(page, tmp_path):
        page.goto(url)
        started = time.monotonic()
        page.get_by_role("tab", name="Jobs").click()
        expect(job_row(page, "run 199")).to_be_visible(timeout=10_000)
        shown = time.monotonic() - started
        time.sleep(2.5)  # a refresh of the table or two
        started = time.monotonic()
        job_row(page, "run 197").click()
        expect(page.locator("#job-summary")).to_contain_text("run 197", timeout=10_000)
        selected = time.monotonic() - started
        expect(page.locator("#job-progress")).to_have_attribute("data-status", "stopped")
        expect(page.locator("#stop-btn")).to_be_disabled()
    assert shown < 5, (shown, selected)
    assert selected < 5, (shown, selected)
