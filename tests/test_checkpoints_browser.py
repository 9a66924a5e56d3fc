"""Checkpoints in a real browser at 1440x900 and 390x844, against REST: the Jobs tab's checkpoints table and the
picker that the zip uses, and the Playground answering from a picked checkpoint."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from sft_ui import artifacts, jobdir
from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from tests.browsing import open_tab, opened
from tests.helpers import wait_for
from tests.servers import live_server
from tests.test_ui_browser import choose

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
PROMPT = "Upper-case the word."


@dataclass
class Served:
    """The app's address, its REST client, its manager and the trained job."""

    url: str
    api: httpx.Client
    manager: JobManager
    job_id: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[Served]:
    """A LoRA job trained for 12 steps, saving every 3 and keeping 2 checkpoints (9 and 12), served live."""
    manager = JobManager(data_dir=tmp_path_factory.mktemp("checkpoints-ui") / "data").start()
    job_id = manager.create_job({"max_steps": 12, "save_steps": 3, "keep_checkpoints": 2, "learning_rate": 0.01})
    manager.start_job(job_id)
    assert wait_for(manager, job_id, ENDED, timeout=300)["status"] == "completed", manager.get_log(job_id)
    with live_server(manager) as url, httpx.Client(base_url=f"{url}api/sft", timeout=120) as api:
        yield Served(url, api, manager, job_id)
    manager.shutdown()


def shown_rows(page: Page) -> list[list[str]]:
    """The checkpoints table's cells, row by row."""
    return [[cell.strip() for cell in row.locator("td").all_inner_texts()]
            for row in page.locator("#checkpoints-table tbody tr").all()]


def expected_rows(served: Served) -> list[list[str]]:
    """GET /jobs/{id}/checkpoints as the table writes it (losses to 4 decimals)."""
    found = served.api.get(f"/jobs/{served.job_id}/checkpoints").json()["checkpoints"]
    assert [c["name"] for c in found] == ["checkpoint-9", "checkpoint-12"]
    return [[str(c["step"]), f"{c['train_loss']:.4f}", "–"] for c in found]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_jobs_tab_lists_checkpoints_as_rest_and_zips_the_picked_one(served: Served, browser: Browser,
                                                                         tmp_path: Path,
                                                                         viewport: dict[str, int]) -> None:
    with opened(browser, viewport, tmp_path, f"{served.url}?tab=jobs&job={served.job_id}") as page:
        expect(page.locator("#job-summary")).to_contain_text(served.job_id)
        page.locator("#job-checkpoints").get_by_text("Checkpoints").first.click()
        expect(page.locator("#checkpoints-table tbody tr")).to_have_count(2)
        assert [row[:3] for row in shown_rows(page)] == expected_rows(served)
        box, holder = (page.locator(selector).bounding_box() for selector in ("#checkpoints-table", "#job-checkpoints"))
        assert box is not None and holder is not None
        assert box["x"] + box["width"] <= holder["x"] + holder["width"] + 1, (box, holder)  # not cut by its panel
        choose(page, "checkpoint-pick", "checkpoint-9 (step 9")
        expect(page.locator("#checkpoint-pick input")).to_have_value(re.compile("checkpoint-9"))
        page.locator("#zip-btn").click()
        name = f"sft-ui-{served.job_id}-checkpoint-9.zip"
        expect(page.locator("#job-msg")).to_contain_text(f"{name} is ready", timeout=60_000)
        expect(page.locator("#download-btn")).to_contain_text(name)
    job_dir = Path(served.manager.get_job_status(served.job_id)["job_dir"])
    with zipfile.ZipFile(artifacts.export_dir(served.manager) / name) as archive:
        weights = archive.read("model/adapter_model.safetensors")
    assert weights == (job_dir / jobdir.CHECKPOINTS / "checkpoint-9" / "adapter_model.safetensors").read_bytes()


def test_the_playground_answers_from_the_picked_checkpoint_as_rest(served: Served, browser: Browser,
                                                                   tmp_path: Path) -> None:
    body = {"prompt": PROMPT, "max_new_tokens": 16, "checkpoint": "checkpoint-9"}
    rest = served.api.post(f"/jobs/{served.job_id}/generate", json=body)
    assert rest.status_code == 200, rest.text
    with opened(browser, DESKTOP, tmp_path, served.url) as page:
        open_tab(page, "Playground")
        expect(page.locator("#pg-tuned-name")).to_contain_text(served.job_id)
        choose(page, "pg-checkpoint", "checkpoint-9 (step 9")
        expect(page.locator("#pg-status")).to_contain_text(f"Loaded job {served.job_id}, checkpoint-9",
                                                           timeout=90_000)
        page.locator("#pg-prompt textarea").fill(PROMPT)
        page.locator("#pg-input textarea").fill("")
        page.locator("#pg-max-new-tokens input[type=number]").fill("16")
        page.locator("#pg-max-new-tokens input[type=number]").press("Enter")
        page.locator("#pg-generate").click()
        expect(page.locator("#pg-status")).to_contain_text("Tuned: checkpoint-9", timeout=90_000)
        expect(page.locator("#pg-tuned textarea")).to_have_value(rest.json()["tuned"])
        expect(page.locator("#pg-base textarea")).to_have_value(rest.json()["base"])
