"""The Train form in a real browser, at a desktop and a phone viewport: typed values survive a reload, a preset
fills the form when picked, steps or epochs is one choice, a refused Start marks the field at fault in plain
words, and on a phone Start stays on screen without the page growing sideways. What the page shows is checked
against REST."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from sft_ui.manager import JobManager
from sft_ui.presets import preset_config
from sft_ui.web.ui.form_memory import STORAGE_KEY
from tests.servers import live_server

VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
GPT2 = "GPT-2 + Alpaca (LoRA)"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, JobManager]]:
    """The app over a manager whose jobs are created and queued but never run (these tests are about the form)."""
    manager = JobManager(data_dir=tmp_path_factory.mktemp("train-form") / "data").start()
    manager._schedule = lambda: None  # type: ignore[method-assign]
    with live_server(manager) as url:
        yield url, manager


@pytest.fixture(params=list(VIEWPORTS))
def form_page(request: pytest.FixtureRequest, page: Page, served: tuple[str, JobManager]) -> Page:
    """The page at one viewport, opened on the Train tab."""
    page.set_viewport_size(VIEWPORTS[request.param])
    page.set_default_timeout(20_000)
    page.goto(served[0])
    expect(page.locator("#start-btn")).to_be_visible()
    expect(page.locator("#preset input")).to_have_value(re.compile(r"\(built-in\)"))  # the page-load events ran
    return page


def api(served: tuple[str, JobManager], path: str) -> Any:
    """GET /api/sft/<path> from the live server."""
    response = httpx.get(f"{served[0]}api/sft/{path}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def field(page: Page, name: str) -> Locator:
    """The input of one config field of the Train form."""
    return page.locator(f"#cfg-{name} input")


def kept(page: Page) -> str | None:
    """The form as the browser keeps it (encrypted: only compared)."""
    return page.evaluate("key => localStorage.getItem(key)", STORAGE_KEY)


def fill_and_keep(page: Page, target: Locator, value: str) -> None:
    """Fill a field and wait until the browser has kept the form again."""
    before = kept(page)
    target.fill(value)
    page.wait_for_function("([key, before]) => localStorage.getItem(key) !== before", arg=[STORAGE_KEY, before])


def open_group(page: Page, group: str) -> None:
    """Unfold one folded group of the form ('Model and data' -> #group-model-and-data)."""
    page.locator(f"#group-{group.lower().replace(' ', '-')}").get_by_role("button", name=group).first.click()


def start(page: Page) -> str:
    """Click Start training and return the id of the new job the page reports."""
    message = page.locator("#form-msg")
    old = re.search(r"Job (\w+)", message.inner_text())
    page.locator("#start-btn").click()
    expect(message).to_have_text(re.compile(rf"Job (?!{old.group(1) if old else '-'}\b)\w+ is "))
    return re.search(r"Job (\w+) is ", message.inner_text()).group(1)


def test_typed_values_survive_a_reload(form_page: Page) -> None:
    page = form_page
    fill_and_keep(page, field(page, "job_name"), "kept across a reload")
    fill_and_keep(page, field(page, "learning_rate"), "0.0042")
    before = kept(page)
    page.locator("#cfg-train_for").get_by_label("epochs").check()
    page.wait_for_function("([key, before]) => localStorage.getItem(key) !== before", arg=[STORAGE_KEY, before])
    fill_and_keep(page, field(page, "num_train_epochs"), "3")
    open_group(page, "Training")
    fill_and_keep(page, field(page, "batch_size"), "5")

    page.reload()
    expect(field(page, "job_name")).to_have_value("kept across a reload")
    expect(field(page, "learning_rate")).to_have_value("0.0042")
    expect(page.locator("#cfg-train_for").get_by_label("epochs")).to_be_checked()
    expect(field(page, "num_train_epochs")).to_have_value("3")
    expect(page.locator("#cfg-max_steps")).to_be_hidden()
    open_group(page, "Training")
    expect(field(page, "batch_size")).to_have_value("5")
    expect(page.locator("#preset-msg")).to_contain_text("Your unsaved form was restored")


def test_a_kept_value_that_no_longer_validates_is_marked_not_fatal(form_page: Page) -> None:
    page = form_page
    fill_and_keep(page, field(page, "lora_r"), "0")
    fill_and_keep(page, field(page, "job_name"), "bad rank kept")
    page.reload()
    expect(field(page, "job_name")).to_have_value("bad rank kept")
    expect(page.locator("#cfg-lora_r")).to_have_class(re.compile("field-error"))
    expect(page.locator("#cfg-lora_r")).to_contain_text("must be at least 1 (got 0)")
    expect(page.locator("#start-btn")).to_be_enabled()


def test_picking_a_preset_fills_the_form(form_page: Page) -> None:
    page = form_page
    config = preset_config(GPT2)
    expect(page.locator("#delete-btn")).to_be_disabled()  # a built-in preset cannot be deleted
    page.locator("#preset input").click()
    expect(page.get_by_role("option").filter(has_text=GPT2)).to_contain_text("needs the Hub")
    expect(page.get_by_role("option").filter(has_text="CPU demo")).not_to_contain_text("needs")
    page.get_by_role("option").filter(has_text=GPT2).first.click()
    expect(field(page, "base_model")).to_have_value(config["base_model"])
    expect(field(page, "max_steps")).to_have_value(str(config["max_steps"]))
    expect(field(page, "dataset_name")).to_have_value(config["dataset_name"])
    expect(page.locator("#preset-msg")).to_contain_text("Hugging Face Hub")
    expect(page.locator("#delete-btn")).to_be_disabled()


def test_steps_or_epochs_is_one_choice_and_reaches_the_job(form_page: Page, served: tuple[str, JobManager]) -> None:
    page = form_page
    expect(page.locator("#cfg-max_steps")).to_be_visible()
    expect(page.locator("#cfg-num_train_epochs")).to_be_hidden()
    page.locator("#cfg-train_for").get_by_label("epochs").check()
    expect(page.locator("#cfg-num_train_epochs")).to_be_visible()
    expect(page.locator("#cfg-max_steps")).to_be_hidden()
    field(page, "num_train_epochs").fill("2")
    field(page, "job_name").fill("by epochs")
    config = api(served, f"jobs/{start(page)}")["config"]
    assert (config["max_steps"], config["num_train_epochs"], config["job_name"]) == (None, 2, "by epochs")

    page.get_by_role("tab", name="Train").click()
    page.locator("#cfg-train_for").get_by_label("steps").check()
    expect(page.locator("#cfg-num_train_epochs")).to_be_hidden()
    field(page, "max_steps").fill("37")
    field(page, "job_name").fill("by steps")
    config = api(served, f"jobs/{start(page)}")["config"]
    assert (config["max_steps"], config["num_train_epochs"], config["job_name"]) == (37, 1.0, "by steps")


def test_a_bad_learning_rate_marks_its_field_and_starts_nothing(form_page: Page,
                                                               served: tuple[str, JobManager]) -> None:
    page = form_page
    before = len(api(served, "jobs")["jobs"])
    field(page, "learning_rate").fill("-1")
    page.locator("#start-btn").click()
    message = page.locator("#form-msg")
    expect(message).to_contain_text("Learning rate must be greater than 0 (got -1)")
    assert "learning_rate" not in message.inner_text() and "Input should" not in message.inner_text()
    marked = page.locator("#cfg-learning_rate")
    expect(marked).to_have_class(re.compile("field-error"))
    expect(marked).to_contain_text("must be greater than 0 (got -1)")
    expect(marked).to_be_in_viewport()  # brought into view, under the phone's Start bar too
    expect(page.get_by_role("tab", name="Train")).to_have_attribute("aria-selected", "true")
    assert len(api(served, "jobs")["jobs"]) == before

    field(page, "learning_rate").fill("0.002")  # changing the field clears its mark
    expect(marked).not_to_have_class(re.compile("field-error"))
    expect(marked).not_to_contain_text("must be greater than 0")


def test_a_missing_data_file_says_where_the_data_root_is(form_page: Page, served: tuple[str, JobManager]) -> None:
    page = form_page
    before = len(api(served, "jobs")["jobs"])
    field(page, "dataset_name").fill("my_data.jsonl")
    field(page, "learning_rate").fill("0")
    page.locator("#start-btn").click()
    message = page.locator("#form-msg")
    expect(message).to_contain_text("Data set: file not found under the data root: my_data.jsonl")
    expect(message).to_contain_text("Learning rate must be greater than 0 (got 0)")  # every error at once
    expect(message).to_contain_text(f"The data root is {served[1].store_root()}")
    expect(message).to_contain_text("Data tab")
    expect(page.locator("#cfg-dataset_name")).to_have_class(re.compile("field-error"))
    expect(page.locator("#cfg-learning_rate")).to_have_class(re.compile("field-error"))
    assert len(api(served, "jobs")["jobs"]) == before


def test_the_message_under_start_follows_its_job(page: Page, served: tuple[str, JobManager]) -> None:
    page.set_default_timeout(20_000)
    page.goto(served[0])
    expect(page.locator("#start-btn")).to_be_visible()
    field(page, "job_name").fill("stopped soon")
    job_id = start(page)
    expect(page.locator("#form-msg")).to_contain_text("queued")
    assert httpx.post(f"{served[0]}api/sft/jobs/{job_id}/stop", timeout=30).status_code == 200
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#form-msg")).to_contain_text(f"Job {job_id} was stopped", timeout=30_000)
    assert api(served, f"jobs/{job_id}")["status"] == "stopped"


def test_on_a_phone_start_stays_on_screen_and_nothing_overflows(page: Page, served: tuple[str, JobManager],
                                                                 tmp_path: Path) -> None:
    page.set_viewport_size(VIEWPORTS["phone"])
    page.set_default_timeout(20_000)
    page.goto(served[0])
    start_btn = page.locator("#start-btn")
    expect(start_btn).to_be_visible()
    assert fits(page, start_btn)
    for group in ("Model and data", "Training", "LoRA", "Performance", "Advanced"):
        open_group(page, group)
    expect(field(page, "truncation")).to_be_visible()
    page.mouse.wheel(0, 20_000)
    page.wait_for_function("() => window.scrollY > 1000")
    assert fits(page, start_btn)
    preview = page.locator("#preview-btn")
    preview.scroll_into_view_if_needed()
    bar_top = page.locator("#start-bar").bounding_box()["y"]
    assert preview.bounding_box()["y"] + preview.bounding_box()["height"] <= bar_top  # not under the Start bar
    preview.click()
    expect(page.locator("#data-preview")).to_contain_text("Row 1", timeout=60_000)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= VIEWPORTS["phone"]["width"]


def fits(page: Page, button: Locator) -> bool:
    """Whether `button` lies within the phone's viewport and the page is no wider than it."""
    box = button.bounding_box()
    width, height = VIEWPORTS["phone"]["width"], VIEWPORTS["phone"]["height"]
    inside = box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height and box["x"] >= 0
    return inside and page.evaluate("document.scrollingElement.scrollWidth") <= width


def test_a_refused_save_unfolds_the_group_of_the_field_at_fault(page: Page, served: tuple[str, JobManager]) -> None:
    page.set_default_timeout(20_000)
    page.goto(served[0])
    expect(page.locator("#start-btn")).to_be_visible()
    open_group(page, "Training")
    field(page, "batch_size").fill("0")
    open_group(page, "Training")  # folded again
    expect(field(page, "batch_size")).to_be_hidden()
    page.locator("#save-name input").fill("zero batch")
    page.locator("#save-btn").click()
    expect(page.locator("#preset-msg")).to_contain_text("Not saved. Fix the marked fields:")
    expect(page.locator("#preset-msg")).to_contain_text("Batch size must be at least 1 (got 0)")
    expect(page.locator("#cfg-batch_size")).to_have_class(re.compile("field-error"))
    expect(page.locator("#cfg-batch_size")).to_be_in_viewport()
    assert "zero batch" not in [c["name"] for c in api(served, "configs")]
