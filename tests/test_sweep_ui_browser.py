"""Issue 16 in a real browser at 1440x900 and 390x844, each view checked against REST: a 2x2 sweep started from the
Train form as a person would; the Compare tab's ranking of a finished sweep in GET /sweeps/{id}'s order with its best
marked; the Jobs tab's eval loss series, Evaluation block and samples table of a finished job of it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from sft_ui.builtin import builtin_model_path
from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from sft_ui.web.ui import eval_views
from tests.browsing import open_tab, opened
from tests.helpers import wait_for
from tests.servers import live_server

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
TINY = {"max_steps": 8, "eval_split": 0.2, "sample_prompts": "auto", "job_name": "fixture sweep"}
GRID = {"learning_rate": [1e-4, 1e-3], "lora_r": [4, 8]}


@dataclass
class Served:
    """The app's URL, a REST client on it, and the finished sweep made for these tests."""

    url: str
    api: httpx.Client
    sweep_id: str

    def get(self, path: str) -> Any:
        """GET /api/sft{path} (asserting a 200)."""
        response = self.api.get(path)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[Served]:
    """The app over a manager holding a finished 2x2 sweep of tiny jobs that evaluate and answer sample prompts."""
    builtin_model_path(builtin_cache)
    manager = JobManager(data_dir=tmp_path_factory.mktemp("sweep-ui") / "data", max_concurrent_jobs=2).start()
    sweep = manager.sweeps.create({"config": TINY, "grid": GRID})
    for job_id in sweep["job_ids"]:
        record = wait_for(manager, job_id, ENDED, timeout=300)
        assert record["status"] == "completed", (record["error"], manager.get_log(job_id)[-2000:])
    with live_server(manager) as url, httpx.Client(base_url=f"{url}api/sft", timeout=60) as api:
        yield Served(url, api, sweep["sweep_id"])


def no_horizontal_overflow(page: Page) -> None:
    """The page is no wider than the window."""
    width, window = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width <= window, f"the page is {width} px wide in a {window} px window"


def sweep_row(page: Page, row: int, label: str, values: str) -> None:
    """Fill one row of the Sweep control: pick the field by its label, type the values."""
    page.locator(f"#sweep-field-{row} input").click()
    page.get_by_role("option", name=label, exact=True).click()
    page.locator(f"#sweep-values-{row} input").fill(values)


def fill_form(page: Page) -> None:
    """A tiny job in the Train form: 6 steps, a held-out fifth, sample answers to held-out prompts."""
    page.locator("#cfg-max_steps input").fill("6")
    page.locator("#group-evaluation").click()
    page.locator("#cfg-eval_split input").fill("0.2")
    page.locator("#cfg-sample_prompts textarea").fill("auto")
    page.locator("#sweep-box").click()


def sweep_ids(served: Served) -> set[str]:
    return {s["sweep_id"] for s in served.get("/sweeps")["sweeps"]}


def test_a_2x2_sweep_started_from_the_form_queues_four_jobs_of_one_sweep(served: Served, browser: Browser,
                                                                        tmp_path: Path) -> None:
    before, jobs_before = sweep_ids(served), len(served.get("/jobs")["jobs"])
    with opened(browser, DESKTOP, tmp_path, served.url) as page:
        fill_form(page)
        start = page.locator("#start-btn")
        expect(start).to_have_text("Start training")
        sweep_row(page, 0, "Learning rate", "1e-4, 5")
        expect(start).to_have_text("Start 2 jobs")
        start.click()  # 5 is no learning rate: refused, naming the field and the value; nothing is created
        expect(page.locator("#form-msg")).to_contain_text("Sweep, Learning rate = 5: must be at most 1 (got 5)")
        assert sweep_ids(served) == before and len(served.get("/jobs")["jobs"]) == jobs_before

        page.locator("#sweep-values-0 input").fill("1e-4, 3e-4")
        sweep_row(page, 1, "LoRA rank", "4, 8")
        expect(start).to_have_text("Start 4 jobs")
        start.click()
        expect(page.locator("#form-msg")).to_contain_text("4 jobs queued")
        new = sweep_ids(served) - before
        assert len(new) == 1
        sweep_id = new.pop()
        try:
            jobs = [j for j in served.get("/jobs")["jobs"] if j.get("sweep_id") == sweep_id]
            assert len(jobs) == 4
            assert sorted((j["config"]["learning_rate"], j["config"]["lora_r"]) for j in jobs) == [
                (1e-4, 4), (1e-4, 8), (3e-4, 4), (3e-4, 8)]
            assert {(j["config"]["max_steps"], j["config"]["eval_split"]) for j in jobs} == {(6, 0.2)}
            # The Compare tab opens with the sweep picked: its four jobs ranked, and overlaid in the plot's legend.
            expect(page.get_by_role("tab", name="Compare")).to_have_attribute("aria-selected", "true")
            expect(page.locator("#compare-sweep input")).to_have_value(re.compile(sweep_id))
            rows = page.locator("#sweep-ranking-table tbody tr")
            expect(rows).to_have_count(4)
            assert {rows.nth(i).get_attribute("data-job") for i in range(4)} == {j["job_id"] for j in jobs}
            expect(page.locator("#compare-runs-table tbody[data-job]")).to_have_count(4)
        finally:
            served.api.post(f"/sweeps/{sweep_id}/stop")  # the rest of the module needs no more training


def test_on_a_phone_the_sweep_control_counts_the_jobs_and_fits(served: Served, browser: Browser,
                                                               tmp_path: Path) -> None:
    before = sweep_ids(served)
    with opened(browser, PHONE, tmp_path, served.url) as page:
        fill_form(page)
        sweep_row(page, 0, "LoRA rank", "4, 8, 16")
        sweep_row(page, 1, "LR scheduler type", "linear, fast")
        start = page.locator("#start-btn")
        expect(start).to_have_text("Start 6 jobs")
        expect(page.locator("#sweep-count")).to_contain_text("3 × 2 = 6 jobs")
        no_horizontal_overflow(page)
        start.click()
        expect(page.locator("#form-msg")).to_contain_text("Sweep row 2, LR scheduler type: “fast” is not one of")
        assert sweep_ids(served) == before


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_compare_ranks_the_sweep_as_rest_does_with_the_best_marked(served: Served, browser: Browser,
                                                                   viewport: dict[str, int], tmp_path: Path) -> None:
    sweep = served.get(f"/sweeps/{served.sweep_id}")
    assert sweep["best_job_id"] and all(j["status"] == "completed" for j in sweep["jobs"])
    # lr 1e-3 learns faster than 1e-4 in 8 steps: the ranking is not the queue order, so the order below is its own
    assert [j["job_id"] for j in sweep["jobs"]] != sweep["job_ids"]
    with opened(browser, viewport, tmp_path, served.url) as page:
        open_tab(page, "Compare")
        page.locator("#compare-sweep input").click()
        page.get_by_role("option").filter(has_text=served.sweep_id).click()
        rows = page.locator("#sweep-ranking-table tbody tr")
        expect(rows).to_have_count(len(sweep["jobs"]))
        assert [rows.nth(i).get_attribute("data-job") for i in range(4)] == [j["job_id"] for j in sweep["jobs"]]
        assert [rows.nth(i).get_attribute("data-best") for i in range(4)] == [
            "true" if j["job_id"] == sweep["best_job_id"] else "false" for j in sweep["jobs"]]
        for i, job in enumerate(sweep["jobs"]):
            row = rows.nth(i)
            expect(row.locator(".sweep-rank")).to_contain_text(str(job["rank"]))
            value, step = job["best_eval"]["value"], job["best_eval"]["step"]
            expect(row.locator(".sweep-metric")).to_have_text(f"{value:.4g} at step {step}")
            expect(row.locator(".sweep-loss")).to_have_text(f"{job['final_loss']:.4g}")
            expect(row.locator(".sweep-score")).to_contain_text(f"{job['score']['exact_match']:.2f}")
            assert row.locator(".sweep-value").all_inner_texts() == [f"{job['point'][f]:.4g}" for f in sweep["fields"]]
        expect(page.locator(".sweep-best-mark")).to_have_count(1)
        expect(rows.first.locator(".sweep-best-mark")).to_have_text("★ best")
        # Its jobs are overlaid: the job picker holds them and the runs table lists each.
        expect(page.locator("#compare-runs-table tbody[data-job]")).to_have_count(4)
        no_horizontal_overflow(page)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_jobs_tab_shows_the_eval_series_the_evaluation_and_the_samples(served: Served, browser: Browser,
                                                                           viewport: dict[str, int],
                                                                           tmp_path: Path) -> None:
    job_id = served.get(f"/sweeps/{served.sweep_id}")["best_job_id"]
    record = served.get(f"/jobs/{job_id}")
    points = served.get(f"/jobs/{job_id}/metrics")["points"]
    samples = served.get(f"/jobs/{job_id}/samples")["samples"]
    evals = [p for p in points if "eval_loss" in p]
    assert evals and samples
    with opened(browser, viewport, tmp_path, f"{served.url}?tab=jobs&job={job_id}") as page:
        expect(page.locator("#job-summary")).to_contain_text(job_id)
        plot = page.locator("#loss-plot")
        expect(plot).to_contain_text("eval loss")  # the legend names the second series
        train = [p for p in points if "loss" in p]
        expect(plot.locator('path[aria-roledescription="point"]')).to_have_count(len(train) + len(evals))
        block = page.locator("#job-eval")
        result = record["result"]
        expect(block.locator(".eval-score")).to_have_text(f"Score: {eval_views.score_text(result['score'])}")
        best = f"Best eval loss {result['best']['value']:.4g} at step {result['best']['step']}"
        expect(block.locator(".eval-best")).to_contain_text(best)
        expect(block.locator(".eval-cost")).to_contain_text(f"{result['evaluations']} evaluations")

        steps = eval_views.shown_steps(sorted({s["step"] for s in samples}))
        table = page.locator("#samples-table")
        expect(table.locator("th[data-step]")).to_have_count(len(steps))
        assert [int(s) for s in [h.get_attribute("data-step") for h in table.locator("th[data-step]").all()]] == steps
        answers = {(s["step"], s["index"]): s for s in samples}
        prompts = sorted({s["index"] for s in samples})
        expect(table.locator("tbody tr")).to_have_count(len(prompts))
        for row, index in zip(table.locator("tbody tr").all(), prompts, strict=True):
            first = answers[(steps[0], index)]
            assert row.locator(".sample-prompt").inner_text().strip() == first["prompt"].strip()
            assert row.locator(".sample-reference").inner_text().strip() == (first["reference"] or "").strip()
            shown = [text.strip() for text in row.locator(".sample-answer").all_inner_texts()]
            assert shown == [answers[(step, index)]["answer"].strip() for step in steps]
        if viewport is PHONE:
            no_horizontal_overflow(page)
