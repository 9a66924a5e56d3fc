"""TinyDB store: atomic file, configs replace by name, concurrent writers, corrupt files set aside."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from sft_ui.store import Store


def test_configs_replace_by_name_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    store = Store(path)
    first = store.save_config("demo", {"max_steps": 1}, "t0")
    assert store.save_config("demo", {"max_steps": 2}, "t1") == first
    other = store.save_config("other", {"max_steps": 3}, "t2")
    assert other != first
    reopened = Store(path)
    assert {c["name"]: c["config"]["max_steps"] for c in reopened.list_configs()} == {"demo": 2, "other": 3}
    assert reopened.delete_config(first) and reopened.get_config(first) is None


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    store = Store(path)

    def writer(n: int) -> None:
        for i in range(25):
            store.insert_job({"job_id": f"{n}-{i}", "status": "pending"})
            store.save_config(f"cfg-{n}-{i}", {"i": i}, "now")
            store.update_job(f"{n}-{i}", {"status": "completed"})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = json.loads(path.read_text())  # the file on disk is whole JSON
    assert len(data["jobs"]) == 200 and len(data["configs"]) == 200
    assert {r["status"] for r in Store(path).list_jobs()} == {"completed"}


def test_corrupt_file_is_moved_aside_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    path.write_text('{"jobs": {"1": {"job_id": "a"')  # truncated by a crash
    store = Store(path)
    assert store.list_jobs() == []
    assert list(tmp_path.glob("db.json.corrupt-*"))
    store.insert_job({"job_id": "b", "status": "pending"})
    assert [r["job_id"] for r in Store(path).list_jobs()] == ["b"]


def test_returned_records_are_copies(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.json")
    store.insert_job({"job_id": "a", "status": "pending", "config": {"x": 1}})
    record = store.get_job("a")
    assert record is not None
    record["config"]["x"] = 99
    assert store.get_job("a")["config"]["x"] == 1


def test_job_revisions_follow_writes_and_lookups_by_id_survive_deletes(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    store = Store(path)
    for i in range(3):
        store.insert_job({"job_id": f"j{i}", "status": "pending"})
    before = {doc["job_id"]: revision for doc, revision in store.scan_jobs()}
    store.update_job("j1", {"status": "completed"})
    after = {doc["job_id"]: revision for doc, revision in store.scan_jobs(newest_first=True)}
    assert list(after) == ["j2", "j1", "j0"] and after["j1"] > before["j1"] and after["j0"] == before["j0"]
    assert store.delete_job("j0") and not store.delete_job("j0") and store.get_job("j0") is None
    store.update_job("j0", {"status": "failed"})  # an unknown job: nothing happens
    store.insert_job({"job_id": "j3", "status": "pending"})
    reopened = Store(path)
    assert [r["job_id"] for r in reopened.list_jobs()] == ["j1", "j2", "j3"]
    assert reopened.get_job("j1") == {"job_id": "j1", "status": "completed"} and reopened.count_jobs() == 3
