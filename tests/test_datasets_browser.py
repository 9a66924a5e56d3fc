"""In a real browser: a file dropped on the Data tab's upload control is kept, selected in the Train form and
previewed at once; the Data tab lists it; a file that is not there names the data root."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sft_ui.builtin import builtin_model_path
from sft_ui.manager import JobManager
from tests.servers import live_server
from tests.test_ui_browser import field, screenshots_on_failure

ROWS = [{"instruction": f"Spell {w} backwards.", "output": w[::-1]} for w in ("lantern", "meadow", "harbor", "violet")]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[str, JobManager]]:
    """The app over a manager that starts no worker: (base URL, manager)."""
    builtin_model_path(builtin_cache)  # the preview's tokenizer
    manager = JobManager(data_dir=tmp_path_factory.mktemp("datasets-browser") / "data").start()
    manager._schedule = lambda: None  # type: ignore[method-assign]
    with live_server(manager) as url:
        yield url, manager


def test_an_uploaded_file_is_selected_in_the_form_and_previewed(page: Page, served: tuple[str, JobManager],
                                                                tmp_path: Path) -> None:
    url, manager = served
    upload = tmp_path / "my <tasks>.jsonl"
    upload.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    page.set_default_timeout(30_000)
    page.goto(url)
    with screenshots_on_failure(page, tmp_path):
        page.get_by_role("tab", name="Data").click()
        page.locator("#data-upload input[type=file]").set_input_files(str(upload))

        expect(page.get_by_role("tab", name="Train")).to_have_attribute("aria-selected", "true")
        expect(field(page, "dataset_name")).to_have_value("datasets/my_tasks.jsonl")
        preview = page.locator("#preview-out")
        expect(preview).to_contain_text("Row 1", timeout=60_000)
        expect(preview).to_contain_text("Spell lantern backwards.")
        expect(preview).to_contain_text("nretnal")
        assert (manager.store_root() / "datasets" / "my_tasks.jsonl").is_file()

        page.get_by_role("tab", name="Data").click()
        expect(page.locator("#data-msg")).to_contain_text("4 rows, format alpaca")
        expect(page.locator("#data-table")).to_contain_text("my_tasks.jsonl")
        expect(page.locator("#data-table")).to_contain_text("alpaca")

        page.get_by_role("tab", name="Train").click()
        field(page, "dataset_name").fill("not-there.jsonl")
        page.locator("#preview-btn").click()
        expect(preview).to_contain_text("file not found", timeout=60_000)
        expect(preview).to_contain_text(f"The data root is {manager.store_root()}")
