"""Sweeps without training: expansion and validation of requests, ranking, all-or-nothing creation, limits,
persistence across a restart, and the per-job GPU assignment (this machine has no GPU: the pool is tested alone)."""

from __future__ import annotations

import json
import math
import statistics
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sft_ui import gpus, jobdir, supervisor
from sft_ui.errors import NotFoundError
from sft_ui.manager import JobManager, LimitError
from sft_ui.spare import Spare
from sft_ui.sweep_plan import draw, job_name, label, plan
from sft_ui.sweeps import best_point, rank
from tests.helpers import error

CONFIG = {"max_steps": 8, "eval_split": 0.2, "job_name": "demo"}
GRID = {"config": CONFIG, "grid": {"learning_rate": [1e-4, 3e-4], "lora_r": [8, 16]}}


@pytest.fixture
def api_manager(quiet: JobManager) -> JobManager:
    """conftest's `client` serves a manager whose jobs never start."""
    return quiet


# --- expansion ---


def test_a_grid_is_every_combination_first_field_slowest_each_named_by_its_point() -> None:
    made = plan(GRID)
    assert made.mode == "grid" and made.fields == ["learning_rate", "lora_r"]
    assert made.points == [{"learning_rate": 1e-4, "lora_r": 8}, {"learning_rate": 1e-4, "lora_r": 16},
                           {"learning_rate": 3e-4, "lora_r": 8}, {"learning_rate": 3e-4, "lora_r": 16}]
    assert [(c.learning_rate, c.lora_r, c.max_steps) for c in made.configs] == [
        (1e-4, 8, 8), (1e-4, 16, 8), (3e-4, 8, 8), (3e-4, 16, 8)]
    assert [c.job_name for c in made.configs][:2] == ["demo · lr=0.0001 r=8", "demo · lr=0.0001 r=16"]
    assert made.config["job_name"] == "demo" and "learning_rate" not in made.config and "lora_r" not in made.config
    assert made.spec == {"grid": GRID["grid"]}
    assert plan(GRID).points == made.points  # stable


def test_names_are_short_and_fit_a_job_name() -> None:
    point = {"learning_rate": 3e-5, "batch_size": 4, "lr_scheduler_type": "cosine"}
    assert label(point) == "lr=3e-05 bs=4 sched=cosine"
    assert plan({"grid": {"lora_r": [4]}}).configs[0].job_name == "builtin:tiny-gpt2 · r=4"  # no name: the model
    assert plan({"name": "mine", **GRID}).configs[0].job_name == "mine · lr=0.0001 r=8"
    long = job_name("n" * 300, {"lora_r": 8})
    assert len(long) == 200 and long.endswith("… · r=8")


def test_random_draws_repeat_with_a_seed_stay_in_bounds_and_keep_whole_fields_whole() -> None:
    request = {"config": CONFIG, "random": {"learning_rate": [1e-5, 1e-3], "lora_r": [8, 64]}, "trials": 6,
               "seed": 7}
    first, again = plan(request), plan(request)
    assert first.points == again.points and len(first.points) == 6
    assert first.spec == {"random": {"learning_rate": [1e-5, 1e-3], "lora_r": [8, 64]}, "trials": 6, "seed": 7}
    for point in first.points:
        assert 1e-5 <= point["learning_rate"] <= 1e-3
        assert isinstance(point["lora_r"], int) and 8 <= point["lora_r"] <= 64
        assert float(f"{point['learning_rate']:.3g}") == point["learning_rate"]  # 3 significant digits
    assert plan({**request, "seed": 8}).points != first.points
    unseeded = plan({k: v for k, v in request.items() if k != "seed"})
    assert isinstance(unseeded.spec["seed"], int)  # a seed is drawn and kept, so the sweep can be repeated
    assert plan({**request, "seed": unseeded.spec["seed"]}).points == unseeded.points


def test_wide_positive_ranges_are_drawn_log_uniformly_narrow_ones_uniformly() -> None:
    wide = [p["learning_rate"] for p in draw({"learning_rate": [1e-6, 1e-2]}, 2000, 1)]
    logs = [math.log10(v) for v in wide]
    assert -4.3 < statistics.median(logs) < -3.7  # log-uniform: the median decade is the middle one (-4)
    assert sum(v < 1e-4 for v in wide) > 800  # uniform would put ~1 % below 1e-4
    narrow = [p["warmup_ratio"] for p in draw({"warmup_ratio": [0.0, 0.4]}, 2000, 1)]  # low 0: uniform
    assert 0.17 < statistics.mean(narrow) < 0.23
    close = [p["learning_rate"] for p in draw({"learning_rate": [1e-4, 5e-4]}, 2000, 1)]  # high/low < 10: uniform
    assert 2.8e-4 < statistics.mean(close) < 3.2e-4


@pytest.mark.parametrize(("request_", "detail"), [
    ({"grid": {"lora_r": [0, 8]}}, "grid.lora_r: 0: Input should be greater than or equal to 1"),
    ({"grid": {"learning_rate": [1e-4, 2.0]}}, "grid.learning_rate: 2.0: Input should be less than or equal to 1"),
    ({"grid": {"dataset_format": ["csv"]}}, "grid.dataset_format: 'csv': Input should be"),
    ({"grid": {"lora_rank": [8]}}, "grid.lora_rank: not a config field"),
    ({"grid": {"lora_r": []}}, "grid.lora_r: an empty list; give at least one value"),
    ({"grid": {"lora_r": 8}}, "grid.lora_r: Input should be a valid list"),
    ({"grid": {"lora_r": [8, 8]}}, "grid.lora_r: 8 appears twice"),
    ({"grid": {"metric_for_best": ["eval_loss"]}}, "grid.metric_for_best: cannot be varied"),
    ({"grid": {"lora_r": [8], "lora_alpha": [8], "batch_size": [2], "seed": [1]}},
     "grid: vary at most 3 fields, got 4"),
    ({"grid": {"max_steps": [4, 20]}, "config": {"save_steps": 10}},
     "grid point steps=4: save_steps (10) is larger than max_steps (4)"),
    ({"grid": {"lora_r": [8]}, "config": {"lora_alpha": 0}}, "config.lora_alpha: Input should be greater than"),
    ({"grid": {"lora_r": [8]}, "trials": 3}, "trials: only with random"),
    ({"grid": {"lora_r": [8]}, "random": {"lora_r": [8, 9]}}, "grid, random: give one of them, not both"),
    ({}, "grid: name the fields to vary"),
    ({"grid": {"lora_r": [8]}, "colour": 1}, "colour: Extra inputs are not permitted"),
    ({"random": {"learning_rate": [1e-3, 1e-5]}, "trials": 2}, "random.learning_rate: low 0.001 is above high 1e-05"),
    ({"random": {"learning_rate": [0, 1e-3]}, "trials": 2},
     "random.learning_rate: 0.0: Input should be greater than 0"),
    ({"random": {"lora_r": [1.5, 4]}, "trials": 2}, "random.lora_r: a whole-number field needs whole bounds"),
    ({"random": {"lora_r": [1, 2, 3]}, "trials": 2}, "random.lora_r: give [low, high], got 3 values"),
    ({"random": {"use_lora": [0, 1]}, "trials": 2}, "random.use_lora: random draws only numbers"),
    ({"random": {"lora_r": [1, 8]}}, "trials: how many jobs to draw"),
    ({"random": {"lora_r": [1, 8]}, "trials": 0}, "trials: Input should be greater than or equal to 1"),
    ({"random": {"lora_r": [True, 8]}, "trials": 2}, "random.lora_r.0: Input should be a valid number"),
])
def test_a_bad_request_is_400_naming_the_field_and_value_and_creates_no_job(
        client: TestClient, quiet: JobManager, request_: dict, detail: str) -> None:
    error(client.post("/api/sft/sweeps", json=request_), 400, detail)
    assert quiet.count_jobs() == 0 and quiet.sweeps.list() == []


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(ValueError) as caught:
        plan({"grid": {"lora_r": [0, 8, 2000], "learning_rate": [5.0]}})
    assert str(caught.value).split("; ") == [
        "grid.learning_rate: 5.0: Input should be less than or equal to 1",
        "grid.lora_r: 0: Input should be greater than or equal to 1",
        "grid.lora_r: 2000: Input should be less than or equal to 1024"]


def test_the_sweep_limit_refuses_the_whole_sweep(client: TestClient, quiet: JobManager,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_UI_MAX_SWEEP_JOBS", "3")
    error(client.post("/api/sft/sweeps", json=GRID), 400, "grid: 2 x 2 = 4 jobs, more than the 3 jobs a sweep may "
          "have (SFT_UI_MAX_SWEEP_JOBS=3)")
    error(client.post("/api/sft/sweeps", json={"random": {"lora_r": [1, 9]}, "trials": 4}), 400,
          "trials: 4 jobs, more than the 3")
    assert quiet.count_jobs() == 0
    assert client.post("/api/sft/sweeps", json={"grid": {"lora_r": [4, 8, 16]}}).status_code == 200
    assert quiet.count_jobs() == 3


def test_the_queue_limit_counts_the_whole_sweep(client: TestClient, quiet: JobManager,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_UI_MAX_QUEUED_JOBS", "5")
    quiet.create_job({"max_steps": 5})
    quiet.create_job({"max_steps": 5})
    error(client.post("/api/sft/sweeps", json=GRID), 400, "too many pending jobs", "SFT_UI_MAX_QUEUED_JOBS=5")
    assert quiet.count_jobs() == 2 and quiet.sweeps.list() == []
    assert client.post("/api/sft/sweeps", json={"grid": {"lora_r": [4, 8, 16]}}).status_code == 200
    assert quiet.count_jobs() == 5


def test_a_failure_half_way_removes_the_jobs_already_made(quiet: JobManager, monkeypatch: pytest.MonkeyPatch) -> None:
    real, made = quiet.create_job, []

    def third_fails(config: dict, extra: dict | None = None) -> str:
        if len(made) == 2:
            raise LimitError("too many pending jobs: someone else was quicker")
        made.append(real(config, extra))
        return made[-1]

    monkeypatch.setattr(quiet, "create_job", third_fails)
    with pytest.raises(LimitError):
        quiet.sweeps.create(GRID)
    assert quiet.count_jobs() == 0 and quiet.sweeps.list() == []
    assert not any(Path(quiet.data_dir, "outputs", job_id).exists() for job_id in made)  # their folders too


def test_a_sweep_queues_its_jobs_in_point_order_and_records_them(client: TestClient, quiet: JobManager) -> None:
    answer = client.post("/api/sft/sweeps", json=GRID)
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert len(view["job_ids"]) == 4 and view["name"] == "demo" and view["metric"] == "eval_loss"
    assert view["grid"] == GRID["grid"] and view["fields"] == ["learning_rate", "lora_r"]
    for position, job_id in enumerate(view["job_ids"], 1):
        job = client.get(f"/api/sft/jobs/{job_id}").json()
        assert job["status"] == "pending" and job["queue_position"] == position  # no worker runs here
        assert job["sweep_id"] == view["sweep_id"]
        assert job["sweep_point"] == plan(GRID).points[position - 1]
        assert job["config"]["learning_rate"] == job["sweep_point"]["learning_rate"]
    assert [row["job_id"] for row in view["jobs"]] == view["job_ids"]  # nothing to rank by yet: point order
    assert [row["rank"] for row in view["jobs"]] == [1, 2, 3, 4] and view["best_job_id"] is None
    listed = client.get("/api/sft/sweeps").json()["sweeps"]
    assert [(s["sweep_id"], s["counts"]) for s in listed] == [(view["sweep_id"], {"pending": 4})]
    assert [type(key) for key in quiet.sweeps.list()[0]["counts"]] == [str]  # not JobStatus: Gradio's JSON
    assert client.get(f"/api/sft/sweeps/{view['sweep_id']}").json() == view


def test_stopping_a_sweep_stops_its_pending_jobs_and_not_others(client: TestClient, quiet: JobManager) -> None:
    other = quiet.create_job({"max_steps": 5})
    sweep = client.post("/api/sft/sweeps", json={"grid": {"lora_r": [4, 8]}}).json()
    stopped = client.post(f"/api/sft/sweeps/{sweep['sweep_id']}/stop").json()
    assert stopped == {"message": f"Sweep {sweep['sweep_id']}: 2 jobs stopped", "sweep_id": sweep["sweep_id"],
                       "stopped": 2}
    assert {quiet.get_job_status(j)["status"] for j in sweep["job_ids"]} == {"stopped"}
    assert quiet.get_job_status(other)["status"] == "pending"
    assert client.post(f"/api/sft/sweeps/{sweep['sweep_id']}/stop").json()["stopped"] == 0


def test_unknown_sweeps_are_404(client: TestClient, quiet: JobManager) -> None:
    error(client.get("/api/sft/sweeps/nope"), 404, "sweep nope not found")
    error(client.post("/api/sft/sweeps/nope/stop"), 404, "sweep nope not found")
    with pytest.raises(NotFoundError):
        quiet.sweeps.get("nope")


def test_a_sweep_survives_a_restart_and_a_deleted_job_leaves_it(tmp_path: Path) -> None:
    first = JobManager(data_dir=tmp_path / "data")
    first._schedule = lambda: None  # type: ignore[method-assign]
    view = first.start().sweeps.create(GRID)
    first.sweeps.stop(view["sweep_id"])
    first.delete_job(view["job_ids"][0])
    first.shutdown()
    again = JobManager(data_dir=tmp_path / "data")
    again._schedule = lambda: None  # type: ignore[method-assign]
    found = again.start().sweeps.get(view["sweep_id"])
    assert {k: v for k, v in found.items() if k != "jobs"} == {k: v for k, v in view.items() if k != "jobs"}
    assert [row["job_id"] for row in found["jobs"]] == view["job_ids"][1:]
    assert [s["sweep_id"] for s in again.sweeps.list()] == [view["sweep_id"]]
    again.shutdown()


# --- ranking ---


def row(job_id: str, best: float | None = None, final: float | None = None) -> dict:
    return {"job_id": job_id, "best_eval": None if best is None else {"value": best, "step": 4}, "final_loss": final}


def test_ranking_by_eval_loss_then_train_loss_then_point_order() -> None:
    rows = [row("a"), row("b", final=2.0), row("c", 3.0, 1.0), row("d", 2.5, 9.0), row("e", final=1.5),
            row("f", 2.5, 0.1)]
    rank(rows, "eval_loss")
    assert [r["job_id"] for r in rows] == ["d", "f", "c", "e", "b", "a"]  # ties keep point order
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["best"] for r in rows] == [True, False, False, False, False, False]
    rows = [row("a", 0.3), row("b", 0.5), row("c")]
    rank(rows, "eval_mean_token_accuracy")  # higher is better
    assert [r["job_id"] for r in rows] == ["b", "a", "c"]
    rows = [row("a"), row("b")]
    rank(rows, "eval_loss")
    assert [r["best"] for r in rows] == [False, False]  # nothing measured yet: no best


def test_the_best_eval_point_of_a_running_job() -> None:
    points = [{"step": 1, "loss": 5.0}, {"step": 1, "eval_loss": 4.0, "eval_mean_token_accuracy": 0.2},
              {"step": 2, "eval_loss": 3.5, "eval_mean_token_accuracy": 0.1}, {"step": 3, "eval_loss": 3.5}]
    assert best_point(points, "eval_loss") == {"value": 3.5, "step": 2}  # the first of equals
    assert best_point(points, "eval_mean_token_accuracy") == {"value": 0.2, "step": 1}
    assert best_point([{"step": 1, "loss": 5.0}], "eval_loss") is None
    assert best_point([{"step": 1, "eval_loss": float("nan")}, {"step": 2, "eval_loss": 9.0}], "eval_loss") == {
        "value": 9.0, "step": 2}  # a diverged evaluation ranks nothing


# --- one GPU per job ---


def test_each_job_takes_the_least_used_gpu_and_gives_it_back() -> None:
    pool = gpus.GpuPool(["0", "1", "2"])
    assert [pool.acquire(job) for job in ("a", "b", "c")] == ["0", "1", "2"]
    assert pool.acquire("d") == "0"  # more jobs than GPUs: shared, as evenly as it goes
    pool.release("b")
    assert pool.acquire("e") == "1"
    assert pool.acquire("f", 2) == "1,2"  # two processes: the two least used
    pool.release("nobody")
    assert pool.held() == {"a": ["0"], "c": ["2"], "d": ["0"], "e": ["1"], "f": ["1", "2"]}
    assert gpus.GpuPool(["0", "1"]).acquire("g", 4) == "0,1"  # more than there are: all of them


def test_visible_devices_read_cuda_visible_devices_as_cuda_does() -> None:
    assert gpus.visible_devices({"CUDA_VISIBLE_DEVICES": "0,1"}) == ["0", "1"]
    assert gpus.visible_devices({"CUDA_VISIBLE_DEVICES": " 2, 3 ,"}) == ["2", "3"]
    assert gpus.visible_devices({"CUDA_VISIBLE_DEVICES": "GPU-a1,GPU-b2"}) == ["GPU-a1", "GPU-b2"]
    assert gpus.visible_devices({"CUDA_VISIBLE_DEVICES": "0,-1,2"}) == ["0"]
    assert gpus.visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert gpus.visible_devices({"CUDA_VISIBLE_DEVICES": "-1"}) == []


def test_the_pool_exists_only_when_asked_for_with_several_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert gpus.pool() is None  # SFT_UI_GPU_PER_JOB is off by default
    monkeypatch.setenv("SFT_UI_GPU_PER_JOB", "1")
    assert gpus.pool() is not None and gpus.pool().devices == ["4", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4")
    assert gpus.pool() is None  # one GPU: nothing to share out


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[gpus.GpuPool]:
    """SFT_UI_GPU_PER_JOB on over CUDA_VISIBLE_DEVICES=6,7 (a pool of its own)."""
    monkeypatch.setenv("SFT_UI_GPU_PER_JOB", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "6,7")
    pool = gpus.pool()
    assert pool is not None
    yield pool
    assert pool.held() == {}


class FakeWorker:
    """What start_worker's Popen returns, for a worker that has already exited."""

    pid = 12345

    def poll(self) -> int:
        return 0

    def wait(self, timeout: float | None = None) -> int:
        return 0


def test_a_worker_gets_its_own_gpu_and_gives_it_back_when_it_ends(
        tmp_path: Path, two_gpus: gpus.GpuPool, monkeypatch: pytest.MonkeyPatch) -> None:
    envs: list[dict[str, str]] = []

    def popen(args: list[str], **kw: object) -> FakeWorker:
        envs.append(kw["env"])  # type: ignore[arg-type]
        return FakeWorker()

    monkeypatch.setattr(supervisor, "subprocess", types.SimpleNamespace(Popen=popen, STDOUT=-2, DEVNULL=-3))
    runs = []
    for name, processes in (("a", 1), ("b", 1), ("c", 2)):
        job_dir = tmp_path / name
        job_dir.mkdir()
        (job_dir / jobdir.CONFIG).write_text(json.dumps({"num_processes": processes}))
        (job_dir / jobdir.RESULT).write_text(json.dumps({"status": "completed"}))
        run = supervisor.Run(name, job_dir)
        run.process = supervisor.start_worker(job_dir, tmp_path, tmp_path)  # type: ignore[assignment]
        runs.append(run)
    assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == ["6", "7", "6,7"]
    assert "CUDA_VISIBLE_DEVICES=7" in (tmp_path / "b" / jobdir.LOG).read_text()  # the log says which
    assert len(two_gpus.held()) == 3
    for run in runs:
        assert run.follow() == {"status": "completed"}
    assert two_gpus.held() == {}


def test_no_spare_worker_waits_when_each_job_gets_its_own_gpu(tmp_path: Path, two_gpus: gpus.GpuPool) -> None:
    spare = Spare(tmp_path, tmp_path, {})
    spare.refill()  # a started worker cannot change its GPUs: it would never be used
    assert spare.pid is None and spare.take(tmp_path) is None
