"""Sweeps with real training on the built-in model, over REST and gradio_client against one live server: a 2x2
grid queues FIFO and is ranked by eval loss, stopping a sweep stops all its jobs, and the Gradio endpoints agree."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from sft_ui.builtin import builtin_model_path
from sft_ui.manager import JobManager
from sft_ui.status import ACTIVE
from tests.helpers import LONG
from tests.servers import live_server

TINY = {"max_steps": 6, "eval_split": 0.2, "eval_max_rows": 4, "sample_max_new_tokens": 8, "logging_steps": 1}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[httpx.Client, Client]]:
    """REST (httpx on /api/sft) and gradio_client on one live app; one job trains at a time."""
    builtin_model_path(builtin_cache)  # made once per session: the timeouts below measure only the jobs
    manager = JobManager(data_dir=tmp_path_factory.mktemp("sweeps") / "data", max_concurrent_jobs=1).start()
    with live_server(manager) as url, httpx.Client(base_url=f"{url}api/sft", timeout=60) as rest:
        gradio = Client(url, verbose=False)
        yield rest, gradio
        gradio.close()


def sweep_until(rest: httpx.Client, sweep_id: str, done: Any, timeout: float = 300.0) -> dict[str, Any]:
    """Poll GET /sweeps/{id} until `done(view)`; fail with the last view when it does not come."""
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = rest.get(f"/sweeps/{sweep_id}").json()
        if done(view):
            return view
        time.sleep(0.5)
    pytest.fail(f"sweep {sweep_id} did not get there in {timeout}s: {view}")


def ended(view: dict[str, Any]) -> bool:
    return all(row["status"] not in ACTIVE for row in view["jobs"])


def test_a_2x2_grid_queues_four_jobs_fifo_and_ranks_them_by_eval_loss(served: tuple[httpx.Client, Client]) -> None:
    rest, _ = served
    before = len(rest.get("/jobs").json()["jobs"])
    answer = rest.post("/sweeps", json={"config": {**TINY, "job_name": "grid"},
                                        "grid": {"learning_rate": [1e-4, 2e-3], "lora_r": [4, 8]}})
    assert answer.status_code == 200, answer.text
    sweep = answer.json()
    ids = sweep["job_ids"]
    assert len(ids) == 4 and len(rest.get("/jobs").json()["jobs"]) == before + 4
    jobs = [rest.get(f"/jobs/{job_id}").json() for job_id in ids]
    assert jobs[0]["status"] in ACTIVE and jobs[0].get("queue_position") is None  # the slot is its
    assert [job["queue_position"] for job in jobs[1:]] == [1, 2, 3]  # the rest wait in point order
    assert [job["name"] for job in jobs] == ["grid · lr=0.0001 r=4", "grid · lr=0.0001 r=8", "grid · lr=0.002 r=4",
                                             "grid · lr=0.002 r=8"]
    assert all(job["sweep_id"] == sweep["sweep_id"] for job in jobs)
    assert [job["sweep_point"] for job in jobs] == [{"learning_rate": lr, "lora_r": r}
                                                    for lr in (1e-4, 2e-3) for r in (4, 8)]

    view = sweep_until(rest, sweep["sweep_id"], ended)
    jobs = [rest.get(f"/jobs/{job_id}").json() for job_id in ids]
    assert [job["status"] for job in jobs] == ["completed"] * 4, [job["error"] for job in jobs]
    for earlier, later in zip(jobs, jobs[1:], strict=False):  # one slot: each starts once the one before ended
        assert earlier["started_at"] <= earlier["finished_at"] <= later["started_at"]

    rows = view["jobs"]
    values = [row["best_eval"]["value"] for row in rows]
    assert values == sorted(values) and len(set(values)) == 4
    assert [row["rank"] for row in rows] == [1, 2, 3, 4]
    assert [row["best"] for row in rows] == [True, False, False, False] and view["best_job_id"] == rows[0]["job_id"]
    assert {row["point"]["learning_rate"] for row in rows[:2]} == {2e-3}  # 6 steps at 1e-4 barely move
    for row in rows:  # what the sweep says is what each job's record and its metrics say
        job = rest.get(f"/jobs/{row['job_id']}").json()
        evals = [(p["eval_loss"], p["step"]) for p in rest.get(f"/jobs/{row['job_id']}/metrics").json()["points"]
                 if "eval_loss" in p]
        assert row["best_eval"]["value"] == pytest.approx(min(evals)[0])
        assert row["status"] == job["status"] and row["final_loss"] == job["result"]["final_loss"]
        assert row["point"] == job["sweep_point"] and row["name"] == job["name"]
        if job["result"].get("best"):
            assert row["best_eval"] == {"value": job["result"]["best"]["value"], "step": job["result"]["best"]["step"]}
        if job["result"].get("score"):
            assert row["score"]["exact_match"] == job["result"]["score"]["exact_match"]
    listed = {s["sweep_id"]: s for s in rest.get("/sweeps").json()["sweeps"]}
    assert listed[sweep["sweep_id"]]["counts"] == {"completed": 4}


def test_stopping_a_sweep_stops_every_job(served: tuple[httpx.Client, Client]) -> None:
    rest, _ = served
    sweep = rest.post("/sweeps", json={"config": {**LONG, "job_name": "long"}, "grid": {"lora_r": [4, 8, 16]}}).json()
    first = sweep["job_ids"][0]
    deadline = time.monotonic() + 120
    while rest.get(f"/jobs/{first}").json()["progress"]["step"] < 1:  # training, with a step to save
        assert time.monotonic() < deadline, rest.get(f"/jobs/{first}").json()
        time.sleep(0.3)
    answer = rest.post(f"/sweeps/{sweep['sweep_id']}/stop")
    assert answer.status_code == 200, answer.text
    assert answer.json()["stopped"] == 3
    view = sweep_until(rest, sweep["sweep_id"], ended, timeout=60)
    assert [rest.get(f"/jobs/{job_id}").json()["status"] for job_id in sweep["job_ids"]] == ["stopped"] * 3
    assert {row["status"] for row in view["jobs"]} == {"stopped"}
    assert rest.post(f"/sweeps/{sweep['sweep_id']}/stop").json()["stopped"] == 0


def test_the_gradio_endpoints_answer_as_rest_does(served: tuple[httpx.Client, Client]) -> None:
    rest, gradio = served
    jobs_before = len(rest.get("/jobs").json()["jobs"])
    with pytest.raises(AppError, match=r"grid\.lora_r: 0: Input should be greater than or equal to 1"):
        gradio.predict({"config": TINY, "grid": {"lora_r": [0, 8]}}, api_name="/create_sweep")
    assert len(rest.get("/jobs").json()["jobs"]) == jobs_before  # a bad point: no job at all

    made = gradio.predict({"config": {**LONG, "job_name": "gradio"}, "grid": {"lora_r": [4, 8]}},
                          api_name="/create_sweep")
    assert [row["name"] for row in made["jobs"]] == ["gradio · r=4", "gradio · r=8"]
    listed = gradio.predict(api_name="/list_sweeps")["sweeps"]
    assert listed[0]["sweep_id"] == made["sweep_id"]  # newest first
    assert listed == rest.get("/sweeps").json()["sweeps"]
    stopped = gradio.predict(made["sweep_id"], api_name="/stop_sweep")
    assert stopped == {"message": f"Sweep {made['sweep_id']}: 2 jobs stopped", "sweep_id": made["sweep_id"],
                       "stopped": 2}
    view = sweep_until(rest, made["sweep_id"], ended, timeout=60)
    assert gradio.predict(made["sweep_id"], api_name="/get_sweep") == view
    with pytest.raises(AppError, match="sweep nope not found"):
        gradio.predict("nope", api_name="/get_sweep")
