"""Issue 17's job fields over REST, with jobs that never start: metadata, cursor paging, ?format=openai."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sft_ui import job_fields, openai_shape, tracking
from sft_ui.manager import JobManager
from tests.helpers import error


@pytest.fixture
def api_manager(quiet: JobManager) -> JobManager:
    """POST /train queues jobs that never start: these tests are about the fields."""
    return quiet


def train(client: TestClient, metadata: dict | None = None, **config: object) -> str:
    body: dict = {"config": config} if metadata is None else {"config": config, "metadata": metadata}
    response = client.post("/api/sft/train", json=body)
    assert response.status_code == 200, response.text
    return response.json()["job_id"]


def ids(body: dict) -> list[str]:
    return [job["job_id"] for job in body["jobs"]]


def test_metadata_is_stored_returned_and_filtered_with_and(client: TestClient) -> None:
    a = train(client, {"team": "nlp", "run": "1"})
    b = train(client, {"team": "nlp", "run": "2"})
    c = train(client, {"team": "vision"})
    plain = train(client)
    assert client.get(f"/api/sft/jobs/{a}").json()["metadata"] == {"team": "nlp", "run": "1"}
    assert client.get(f"/api/sft/jobs/{plain}").json()["metadata"] == {}
    listed = {job["job_id"]: job["metadata"] for job in client.get("/api/sft/jobs").json()["jobs"]}
    assert listed[b] == {"team": "nlp", "run": "2"} and listed[c] == {"team": "vision"}
    assert ids(client.get("/api/sft/jobs?metadata.team=nlp").json()) == [b, a]
    assert ids(client.get("/api/sft/jobs", params={"metadata.team": "nlp", "metadata.run": "1"}).json()) == [a]
    assert ids(client.get("/api/sft/jobs?metadata.team=nope").json()) == []
    assert ids(client.get("/api/sft/jobs?metadata.team=nlp&limit=1").json()) == [b]
    after = client.get(f"/api/sft/jobs?metadata.team=nlp&limit=1&after={b}").json()
    assert ids(after) == [a] and after["has_more"] is False


BAD = [
    ({str(i): "v" for i in range(17)}, "metadata: at most 16 keys, got 17"),
    ({"k" * 65: "v"}, "metadata." + "k" * 65 + ": keys must be 1-64 characters"),
    ({"team": "x" * 513}, "metadata.team: at most 512 characters, got 513"),
    ({"team": 3}, "metadata.team: must be a string, got int"),
    ({"team": "a\u0007b"}, "metadata.team: contains a control character U+0007"),
    ({"te\nam": "a"}, "contains a control character U+000A"),
    (["team"], "metadata: Input should be a valid dictionary"),
]


@pytest.mark.parametrize(("metadata", "detail"), BAD, ids=[d[:40] for _, d in BAD])
def test_bad_metadata_is_400_naming_the_key_and_makes_no_job(client: TestClient, metadata: object,
                                                             detail: str) -> None:
    error(client.post("/api/sft/train", json={"config": {}, "metadata": metadata}), 400, detail)
    assert client.get("/api/sft/jobs").json() == {"jobs": []}


def test_cursor_pages_concatenate_to_the_full_list(client: TestClient, quiet: JobManager) -> None:
    made = [train(client, job_name=f"j{i}") for i in range(7)]
    quiet.store.update_job(made[2], {"status": "completed"})
    full = client.get("/api/sft/jobs").json()
    assert list(full) == ["jobs"] and ids(full) == made[::-1]  # the seed's answer is unchanged
    pages, after = [], None
    while True:
        body = client.get("/api/sft/jobs", params={"limit": 3, **({"after": after} if after else {})}).json()
        pages.append(ids(body))
        assert body["last_id"] == ids(body)[-1]
        if not body["has_more"]:
            break
        after = body["last_id"]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sum(pages, []) == ids(full)
    pending = client.get("/api/sft/jobs", params={"status": "pending", "limit": 10, "after": made[4]}).json()
    assert ids(pending) == [made[3], made[1], made[0]] and pending["has_more"] is False
    assert ids(client.get("/api/sft/jobs", params={"limit": 2, "offset": 1}).json()) == made[::-1][1:3]
    error(client.get("/api/sft/jobs?after=000000000000"), 400, "after: no job '000000000000'")


def test_openai_shape_of_a_completed_job(client: TestClient, quiet: JobManager) -> None:
    job_id = train(client, {"ticket": "T-1"}, max_steps=30, batch_size=4, gradient_accumulation_steps=2,
                   learning_rate=3e-4, report_to=["tensorboard"])
    quiet.store.update_job(job_id, {"status": "completed", "finished_at": "2026-11-27T00:00:10Z",
                                    "result": {"output_dir": "/x/model"}, "metrics": {"loss": 1.0, "num_tokens": 1234}})
    record = client.get(f"/api/sft/jobs/{job_id}").json()
    shaped = client.get(f"/api/sft/jobs/{job_id}?format=openai").json()
    assert record["trained_tokens"] == shaped["trained_tokens"] == 1234
    assert shaped["id"] == job_id and shaped["object"] == "fine_tuning.job"
    assert shaped["status"] == "succeeded" and shaped["fine_tuned_model"] == "/x/model"
    assert shaped["created_at"] == openai_shape.unix_seconds(record["created_at"])
    assert shaped["finished_at"] == 1795737610  # 2026-11-27T00:00:10Z
    assert shaped["model"] == record["config"]["base_model"] and shaped["training_file"] == "builtin:tasks"
    assert shaped["hyperparameters"]["n_epochs"] == record["config"]["num_train_epochs"]
    assert shaped["hyperparameters"]["batch_size"] == 8 and shaped["hyperparameters"]["learning_rate"] == 3e-4
    assert shaped["metadata"] == {"ticket": "T-1"} and shaped["error"] is None
    assert shaped["integrations"] == [{"type": "tensorboard"}]
    assert f"/api/sft/jobs/{job_id}/download" in shaped["result_files"]
    for status, expected in openai_shape.STATUS.items():
        quiet.store.update_job(job_id, {"status": status, "error": "boom" if status == "failed" else None})
        shaped = client.get(f"/api/sft/jobs/{job_id}", params={"format": "openai"}).json()
        assert shaped["status"] == expected
    assert shaped["error"] is None
    quiet.store.update_job(job_id, {"status": "failed", "error": "out of memory"})
    assert client.get(f"/api/sft/jobs/{job_id}?format=openai").json()["error"]["message"] == "out of memory"
    error(client.get(f"/api/sft/jobs/{job_id}?format=xml"), 400, "format")


def test_estimated_finish_only_while_running() -> None:
    running = {"status": "running", "progress": {"eta_seconds": 90}}
    assert job_fields.estimated_finish(running, now=1795737600.0) == "2026-11-27T00:01:30Z"
    assert job_fields.estimated_finish({**running, "status": "completed"}) is None
    assert job_fields.estimated_finish({"status": "running", "progress": {"eta_seconds": None}}) is None


def test_report_to_checks_and_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"report_to: nope_tracker_pkg is not installed .*pip install"):
        monkeypatch.setitem(tracking._PACKAGES, "nope_tracker_pkg", "nope_tracker_pkg")
        tracking.check_installed(["nope_tracker_pkg"])
    tracking.check_installed(["tensorboard", "trackio"])  # installed by requirements.txt
    job_dir = tmp_path / "outputs" / "abc123abc123"
    job_dir.mkdir(parents=True)
    tracking.write_run(job_dir, "my job", "sweep1")
    assert tracking.read_run(job_dir) == {"run_name": "my job (abc123abc123)", "group": "sweep1"}
    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    lines = tracking.views({"config": {"report_to": ["tensorboard", "trackio"]}, "job_dir": str(job_dir)}, tmp_path)
    assert lines == [f"TensorBoard: tensorboard --logdir {job_dir / 'tensorboard'}",
                     f"trackio: TRACKIO_DIR={tmp_path / 'trackio'} trackio show --project sft-ui"]


def test_a_running_record_carries_estimated_finish_over_rest(client: TestClient, quiet: JobManager) -> None:
    job_id = train(client)
    quiet.store.update_job(job_id, {"status": "running", "progress": {"step": 5, "total_steps": 10, "epoch": 0.1,
                                                                       "eta_seconds": 600.0}})
    before = time.time()
    record = client.get(f"/api/sft/jobs/{job_id}").json()
    finish = openai_shape.unix_seconds(record["estimated_finish"])
    assert before + 599 <= finish <= time.time() + 601
    assert client.get(f"/api/sft/jobs/{job_id}?format=openai").json()["estimated_finish"] == finish
    assert [j["estimated_finish"] for j in client.get("/api/sft/jobs?limit=5").json()["jobs"]] == [
        record["estimated_finish"]]


def test_a_run_file_that_cannot_be_written_leaves_no_job_folder(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    job_dir = tmp_path / "abc123abc123"
    job_dir.mkdir()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space left"):
        tracking.write_run(job_dir, "job", None)
    assert not job_dir.exists()


def test_a_sweeps_runs_are_named_after_their_jobs_and_grouped_by_the_sweep(quiet: JobManager) -> None:
    view = quiet.sweeps.create({"config": {"job_name": "grid", "max_steps": 5, "report_to": ["trackio"]},
                                "grid": {"learning_rate": [1e-4, 3e-4]}})
    runs = [tracking.read_run(Path(quiet.get_job_status(job_id)["job_dir"])) for job_id in view["job_ids"]]
    names = [quiet.get_job_status(job_id)["name"] for job_id in view["job_ids"]]
    assert [run["group"] for run in runs] == [view["sweep_id"]] * 2
    assert [run["run_name"] for run in runs] == [f"{name} ({job_id})" for name, job_id in zip(names,
                                                                                          view["job_ids"], strict=True)]
    alone = quiet.create_job({"job_name": "alone"})
    assert tracking.read_run(Path(quiet.get_job_status(alone)["job_dir"])) == {"run_name": f"alone ({alone})",
                                                                               "group": None}
