"""The Playground, Compare and Resources tabs in a real browser at 1440x900 and 390x844, each checked against REST:
the playground picks the job that finished last and names its models, examples and history fill the prompt; compare
lists each run's final loss and the settings that differ, with coinciding curves told apart; the resources panel
names the server's memory and frees the playground's models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from sft_ui import jobdir
from sft_ui.builtin import builtin_model_path, builtin_rows
from sft_ui.manager import JobManager
from tests.browsing import open_tab, opened
from tests.helpers import fake_trained_job
from tests.servers import live_server
from tests.test_ui_browser import choose

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
LONG_NAME = "a run with a long name that a legend would cut: learning rate one in a thousand, alpha"


@dataclass
class Served:
    """The app's address, its REST client, and the jobs made for these tests."""

    url: str
    api: httpx.Client
    alpha: str  # created first, finished last
    beta: str  # created second, finished first


def curve(final: float) -> str:
    """metrics.jsonl of 30 steps whose train loss coincides with the other run's until the last step."""
    points = [{"step": s, "loss": round(3.0 / s, 6), "learning_rate": 1e-3} for s in range(1, 30)]
    points += [{"step": 30, "loss": final}, {"step": 10, "eval_loss": final + 0.5},
               {"step": 30, "eval_loss": final + 0.2}]
    return "".join(json.dumps(p) + "\n" for p in sorted(points, key=lambda p: p["step"]))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[Served]:
    """Two full-model jobs of the built-in model (no training), differing in learning_rate, and a pending job."""
    manager = JobManager(data_dir=tmp_path_factory.mktemp("pg-compare") / "data").start()
    manager._schedule = lambda: None  # type: ignore[method-assign]
    model = builtin_model_path(builtin_cache)
    alpha = fake_trained_job(manager, {"use_lora": False, "learning_rate": 1e-3, "job_name": LONG_NAME}, model)
    beta = fake_trained_job(manager, {"use_lora": False, "learning_rate": 5e-4, "job_name": "beta"}, model)
    for job_id, final, finished in ((alpha, 0.2345, "2026-01-03T00:00:00Z"), (beta, 0.3456, "2026-01-02T00:00:00Z")):
        (Path(manager.get_job_status(job_id)["job_dir"]) / jobdir.METRICS).write_text(curve(final))
        manager.store.update_job(job_id, {"finished_at": finished, "progress": {"step": 30, "total_steps": 30}})
    manager.create_job({"job_name": "not started"})  # the newest job, with no model to try
    with live_server(manager) as url, httpx.Client(base_url=f"{url}api/sft", timeout=60) as api:
        yield Served(url, api, alpha, beta)


def fits(page: Page, selector: str) -> None:
    """The element ends inside the window, and the page is no wider than the window."""
    box = page.locator(selector).bounding_box()
    window = page.evaluate("document.documentElement.clientWidth")
    assert box is not None and box["x"] + box["width"] <= window + 1, (selector, box, window)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= window, f"the page is {width} px wide in a {window} px window"


def newest_finished(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The job with a saved model that finished last (the newer one on a tie), from GET /jobs's newest-first list."""
    done = [j for j in jobs if j["status"] in ("completed", "stopped") and (j.get("result") or {}).get("output_dir")]
    return max(done, key=lambda j: j["finished_at"])


def test_the_playground_picks_the_job_that_finished_last_and_fills_prompts_from_examples_and_history(
        served: Served, browser: Browser, tmp_path: Path) -> None:
    jobs = served.api.get("/jobs").json()["jobs"]
    expected = newest_finished(jobs)
    assert expected["job_id"] == served.alpha and jobs[0]["job_id"] not in (served.alpha, served.beta)
    with opened(browser, DESKTOP, tmp_path, served.url) as page:
        open_tab(page, "Playground")
        expect(page.locator("#pg-job input")).to_have_value(f"{LONG_NAME} · {served.alpha}")
        expect(page.locator("#pg-base-name")).to_contain_text(expected["config"]["base_model"])
        expect(page.locator("#pg-tuned-name")).to_contain_text(LONG_NAME)
        expect(page.locator("#pg-tuned-name")).to_contain_text(served.alpha)
        expect(page.locator("#pg-status")).to_contain_text("models load when you click Generate")
        held_out = builtin_rows("test")  # the job trained on the built-in data set: its held-out rows
        prompt, input_box = page.locator("#pg-prompt textarea"), page.locator("#pg-input textarea")
        expect(prompt).to_have_value(held_out[0]["instruction"])  # an empty prompt gets the first example
        examples = page.locator("#pg-examples button")
        expect(examples).to_have_count(5)
        examples.nth(1).click()
        expect(prompt).to_have_value(held_out[1]["instruction"])
        expect(input_box).to_have_value(held_out[1]["input"])

        page.locator("#pg-generate").click()
        expect(page.locator("#pg-status")).to_contain_text("new tokens at most", timeout=90_000)
        history = page.locator("#pg-history button")
        expect(history).to_have_count(1)
        expect(history.first).to_contain_text(f"{held_out[1]['instruction']} — {held_out[1]['input']}")
        answer = served.api.post(f"/jobs/{served.alpha}/generate", json={
            "prompt": held_out[1]["instruction"], "input": held_out[1]["input"]}).json()
        expect(page.locator("#pg-tuned textarea")).to_have_value(answer["tuned"])  # greedy: REST answers the same
        prompt.fill("Spell the word.")
        input_box.fill("cat")
        history.first.click()
        expect(prompt).to_have_value(held_out[1]["instruction"])
        expect(input_box).to_have_value(held_out[1]["input"])


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_compare_lists_final_losses_and_the_settings_that_differ(served: Served, browser: Browser,
                                                                 viewport: dict[str, int], tmp_path: Path) -> None:
    records = {j: served.api.get(f"/jobs/{j}").json() for j in (served.alpha, served.beta)}
    with opened(browser, viewport, tmp_path, served.url) as page:
        open_tab(page, "Compare")
        for job_id in (served.alpha, served.beta):
            choose(page, "compare-pick", job_id)
        page.keyboard.press("Escape")
        expect(page.locator("#compare-runs-table tbody[data-job]")).to_have_count(2)
        for job_id, record in records.items():
            row = page.locator(f'#compare-runs-table tbody[data-job="{job_id}"]')
            points = served.api.get(f"/jobs/{job_id}/metrics").json()["points"]
            last = [p["loss"] for p in points if "loss" in p][-1]
            best = min(p["eval_loss"] for p in points if "eval_loss" in p)
            expect(row.locator(".final-loss")).to_have_text(f"{last:.4g}")
            expect(row.locator(".best-eval")).to_have_text(f"{best:.4g}")
            expect(row.locator(".steps")).to_have_text(str(record["progress"]["step"]))
            expect(row).to_contain_text(record["name"])  # the full name, never cut
        setting = page.locator('#compare-settings-table tr[data-setting="learning_rate"] td')
        expect(setting).to_have_text([str(records[j]["config"]["learning_rate"]) for j in (served.alpha, served.beta)])
        different = {k for k in records[served.alpha]["config"]
                     if k != "job_name" and records[served.alpha]["config"][k] != records[served.beta]["config"][k]}
        expect(page.locator("#compare-settings-table tbody tr")).to_have_count(len(different))

        # The curves coincide for 29 steps: both lines are drawn, in different widths and dashes.
        lines = page.locator('#compare-plot path[aria-roledescription="line mark"]')
        expect(lines).to_have_count(2)
        styles = lines.evaluate_all("els => els.map(e => [e.getAttribute('stroke'), "
                                    "getComputedStyle(e).strokeDasharray, getComputedStyle(e).strokeWidth])")
        assert len({s[0] for s in styles}) == 2 and len({(s[1], s[2]) for s in styles}) == 2, styles
        fits(page, "#compare-runs")
        fits(page, "#compare-settings")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_resources_panel_names_the_servers_memory_and_frees_the_playgrounds_models(
        served: Served, browser: Browser, viewport: dict[str, int], tmp_path: Path) -> None:
    answer = served.api.post(f"/jobs/{served.beta}/generate", json={"prompt": "Hi", "max_new_tokens": 2})
    assert answer.status_code == 200, answer.text
    with opened(browser, viewport, tmp_path, served.url) as page:
        open_tab(page, "Resources")
        cpu = page.locator("#res-cpu")
        expect(cpu).to_contain_text("%")
        assert 0.0 <= float(cpu.get_attribute("data-value")) <= 100.0
        rest = served.api.get("/resources").json()
        server = next(p for p in rest["processes"] if p["holder"].startswith("server"))
        assert f"job {served.beta}" in server["holder"]
        row = page.locator(f'#res-processes tr[data-pid="{server["pid"]}"]')
        expect(row).to_contain_text(f"the playground holds job {served.beta}'s models")
        shown = int(row.get_attribute("data-rss"))
        assert abs(shown - server["rss_bytes"]) <= 0.25 * server["rss_bytes"], (shown, server["rss_bytes"])
        assert rest["cpu_count"] and f"of {rest['cpu_count']} cores" in page.locator("#res-summary").inner_text()
        fits(page, "#res-panel")

        page.locator("#res-free").click()
        expect(page.locator("#res-msg")).to_contain_text(f"Released the models of job {served.beta}")
        expect(row).not_to_contain_text("playground holds")
        after = served.api.get("/resources").json()
        assert [p["holder"] for p in after["processes"] if p["pid"] == server["pid"]] == ["server"]

        # The panel follows on the page's timer while it is shown: models loaded through REST appear by themselves.
        assert served.api.post(f"/jobs/{served.alpha}/generate", json={"prompt": "Hi", "max_new_tokens": 2}).is_success
        expect(row).to_contain_text(f"the playground holds job {served.alpha}'s models", timeout=30_000)
