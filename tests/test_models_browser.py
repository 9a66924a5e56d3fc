"""In a real browser: a model folder copied by hand into `<data dir>/models/` is listed in the Models tab, offered
by the Train form's model picker and by its own preset, and deleted from the tab; an import that fails shows its
error in the table when it ends; a refused GGUF upload's file name is shown as written."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sft_ui.builtin import builtin_model_path
from sft_ui.manager import JobManager
from tests.helpers import write_gguf
from tests.servers import live_server
from tests.test_ui_browser import choose, field, screenshots_on_failure

HOSTILE = "__bold__ &lt;i&gt;x [link](y).gguf"  # Gradio strips < > / from upload names; & ; _ [ ] ( ) pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[str, JobManager]]:
    """The app over a manager that starts no worker, with the built-in model copied in as models/tiny."""
    manager = JobManager(data_dir=tmp_path_factory.mktemp("models-browser") / "data").start()
    manager._schedule = lambda: None  # type: ignore[method-assign]
    shutil.copytree(builtin_model_path(builtin_cache), manager.store_root() / "models" / "tiny")
    with live_server(manager) as url:
        yield url, manager


def test_a_folder_copied_in_is_listed_picked_preset_and_deleted(page: Page, served: tuple[str, JobManager],
                                                                 tmp_path: Path) -> None:
    url, manager = served
    page.set_default_timeout(20_000)
    page.goto(url)
    with screenshots_on_failure(page, tmp_path):
        page.get_by_role("tab", name="Models").click()
        expect(page.locator("#models-intro")).to_contain_text(f"Local models live in {manager.store_root() / 'models'}")
        table = page.locator("#models-table")
        expect(table).to_contain_text("tiny")
        expect(table).to_contain_text("ready")
        expect(table).to_contain_text("folder")
        expect(page.locator("#models-pick input")).to_have_value("tiny")

        page.get_by_role("tab", name="Train").click()
        choose(page, "model-pick", "tiny —")
        expect(field(page, "base_model")).to_have_value("models/tiny")
        field(page, "base_model").fill("gpt2")
        choose(page, "preset", "tiny (local): LoRA, CPU-quick")
        page.locator("#load-btn").click()
        expect(page.locator("#preset-msg")).to_contain_text("Loaded “tiny (local): LoRA, CPU-quick”")
        expect(field(page, "base_model")).to_have_value("models/tiny")
        expect(field(page, "max_steps")).to_have_value("60")
        expect(page.locator("#delete-btn")).to_be_disabled()  # only saved configs can be deleted

        # A pending job that trains on it keeps it; once the job is stopped it can go.
        job_id = manager.create_job({"base_model": "models/tiny"})
        page.get_by_role("tab", name="Models").click()
        page.locator("#models-delete-btn").click()
        expect(page.locator("#models-msg")).to_contain_text(f"used by job {job_id}")
        manager.stop_job(job_id)
        page.locator("#models-delete-btn").click()
        expect(page.locator("#models-msg")).to_contain_text("Deleted tiny.")
        expect(table).not_to_contain_text("tiny")
        assert not (manager.store_root() / "models" / "tiny").exists()

        # The Train tab follows: neither the picker nor the presets offer it any more.
        page.get_by_role("tab", name="Train").click()
        page.locator("#model-pick input").click()
        expect(page.get_by_role("option").filter(has_text="builtin:tiny-gpt2")).to_have_count(1)
        expect(page.get_by_role("option").filter(has_text="tiny —")).to_have_count(0)
        page.keyboard.press("Escape")
        page.locator("#preset input").click()
        expect(page.get_by_role("option").filter(has_text="(built-in)")).not_to_have_count(0)
        expect(page.get_by_role("option").filter(has_text="(local)")).to_have_count(0)


def test_a_failed_import_and_a_refused_upload_show_why(page: Page, served: tuple[str, JobManager],
                                                       tmp_path: Path) -> None:
    url, manager = served
    (manager.store_root() / "downloads").mkdir()
    write_gguf(manager.store_root() / "downloads" / "hollow.gguf", "llama", {"token_embd.weight": (64, 100)})
    upload = tmp_path / HOSTILE
    upload.write_bytes(b"not a gguf file at all")
    page.set_default_timeout(20_000)
    page.goto(url)
    with screenshots_on_failure(page, tmp_path):
        page.get_by_role("tab", name="Models").click()
        # A header without tensor data passes the checks; the import worker fails on it, and the table (refreshed
        # by the page's timer) shows that with the reason.
        page.locator("#models-gguf input, #models-gguf textarea").fill("downloads/hollow.gguf")
        page.locator("#models-import-btn").click()
        expect(page.locator("#models-msg")).to_contain_text("Importing downloads/hollow.gguf as models/hollow")
        row = page.locator("#models-table tr").filter(has_text="hollow")
        expect(row).to_contain_text("failed: ", timeout=60_000)
        expect(page.locator("#models-pick input")).to_have_value("hollow")
        page.locator("#models-delete-btn").click()
        expect(page.locator("#models-msg")).to_contain_text("Deleted hollow.")
        expect(row).to_have_count(0)

        page.locator("#models-upload input[type=file]").set_input_files(str(upload))
        message = page.locator("#models-msg")
        expect(message).to_contain_text(f"Not imported {HOSTILE}: gguf:")
        expect(message).to_contain_text("is not a GGUF file")
        assert page.locator("#models-msg i, #models-msg strong, #models-msg em, #models-msg a").count() == 0
        assert not list((manager.store_root() / "models" / ".uploads").glob("*"))
