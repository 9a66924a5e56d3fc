"""The TinyDB store: writes reach the disk or change nothing; crashes and damage lose no acknowledged write."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from sft_ui import storage
from sft_ui.store import Store, StoreWriteError


def test_configs_replace_by_name_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    store = Store(path)
    first = store.save_config("demo", {"max_steps": 1}, "t0")
    assert store.save_config("demo", {"max_steps": 2}, "t1") == first
    other = store.save_config("other", {"max_steps": 3}, "t2")
    assert other != first
    reopened = Store(path)
    assert {c["name"]: c["config"]["max_steps"] for c in reopened.list_configs()} == {"demo": 2, "other": 3}
    assert reopened.delete_config(first)
    assert reopened.get_config(first) is None


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
    reopened = Store(path)
    assert reopened.count_jobs() == 200
    assert len(reopened.list_configs()) == 200
    assert {r["status"] for r in reopened.list_jobs()} == {"completed"}
    assert reopened.count_jobs("completed") == 200


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
    assert list(after) == ["j2", "j1", "j0"]
    assert after["j1"] > before["j1"]
    assert after["j0"] == before["j0"]
    assert store.delete_job("j0")
    assert not store.delete_job("j0")
    assert store.get_job("j0") is None
    store.update_job("j0", {"status": "failed"})  # an unknown job: nothing happens
    store.insert_job({"job_id": "j3", "status": "pending"})
    reopened = Store(path)
    assert [r["job_id"] for r in reopened.list_jobs()] == ["j1", "j2", "j3"]
    assert reopened.get_job("j1") == {"job_id": "j1", "status": "completed"}
    assert reopened.count_jobs() == 3
    assert reopened.count_jobs("pending") == 2


def test_pages_filter_by_status_newest_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.json")
    for i in range(10):
        store.insert_job({"job_id": f"j{i}", "status": "completed" if i % 2 else "failed"})
    page = store.list_jobs(status="completed", offset=1, limit=2, newest_first=True)
    assert [r["job_id"] for r in page] == ["j7", "j5"]


# --- a write that fails changes nothing ---

def test_an_unstorable_string_is_refused_and_poisons_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    store = Store(path)
    store.save_config("good", {"max_steps": 1}, "t0")
    with pytest.raises(StoreWriteError):
        store.save_config("\ud800", {}, "t1")
    assert [c["name"] for c in store.list_configs()] == ["good"]
    store.save_config("after", {"max_steps": 2}, "t2")  # later writes still work
    assert [c["name"] for c in Store(path).list_configs()] == ["good", "after"]


def test_a_failed_job_update_leaves_the_record_as_it_was(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.json")
    store.insert_job({"job_id": "a", "status": "running", "progress": {"step": 3}})
    with pytest.raises(StoreWriteError):
        store.update_job("a", {"status": "completed", "name": "\udfff"})
    assert store.get_job("a") == {"job_id": "a", "status": "running", "progress": {"step": 3}}
    assert store.count_jobs("running") == 1
    assert store.count_jobs("completed") == 0


def test_a_failed_insert_leaves_no_phantom_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "db.json")
    store.insert_job({"job_id": "kept", "status": "pending"})

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", full)
    with pytest.raises(StoreWriteError) as caught:
        store.insert_job({"job_id": "phantom", "status": "pending"})
    monkeypatch.undo()
    assert caught.value.disk_full
    assert store.get_job("phantom") is None
    assert [r["job_id"] for r in store.list_jobs()] == ["kept"]
    assert store.count_jobs() == 1
    store.insert_job({"job_id": "next", "status": "pending"})
    assert [r["job_id"] for r in Store(tmp_path / "db.json").list_jobs()] == ["kept", "next"]


# --- crashes, damage and the old layout ---

def test_a_cut_short_last_journal_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    store = Store(path)
    store.save_config("whole", {"max_steps": 1}, "t0")
    with open(tmp_path / "db.journal", "ab") as fh:
        fh.write(b'{"t":"configs","id":"9","doc":{"name":"ha')  # a kill in the middle of a write
    reopened = Store(path)
    assert [c["name"] for c in reopened.list_configs()] == ["whole"]
    assert reopened.restored is None
    reopened.save_config("later", {}, "t1")
    assert [c["name"] for c in Store(path).list_configs()] == ["whole", "later"]


def test_the_journal_is_folded_into_the_snapshot_when_it_grows(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "COMPACT_MIN_BYTES", 2000)
    path = tmp_path / "db.json"
    store = Store(path)
    for i in range(60):
        store.save_config(f"c{i % 7}", {"max_steps": i}, "now")
    assert (tmp_path / "db.journal").stat().st_size < 4000
    assert (tmp_path / "db.json.bak").exists()
    reopened = Store(path)
    assert {c["name"]: c["config"]["max_steps"] for c in reopened.list_configs()} == {
        f"c{k}": max(i for i in range(60) if i % 7 == k) for k in range(7)}


def test_a_database_in_todays_layout_loads_whole(tmp_path: Path) -> None:
    path = tmp_path / "sft_ui.json"  # TinyDB's JSONStorage layout, as sft-ui wrote it before the journal
    path.write_text(json.dumps({"jobs": {"1": {"job_id": "old", "status": "completed"}},
                                "configs": {"1": {"config_id": "c1", "name": "kept", "config": {}}}}))
    store = Store(path)
    assert [r["job_id"] for r in store.list_jobs()] == ["old"]
    assert [c["name"] for c in store.list_configs()] == ["kept"]
    store.insert_job({"job_id": "new", "status": "pending"})
    assert [r["job_id"] for r in Store(path).list_jobs()] == ["old", "new"]


def test_a_damaged_snapshot_is_moved_aside_and_restored_from_its_backup(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "COMPACT_MIN_BYTES", 300)
    path = tmp_path / "db.json"
    store = Store(path)
    for i in range(8):  # some folded into the snapshot, the last ones only in the journal
        store.save_config(f"c{i}", {"max_steps": i}, "t0")
    assert path.exists()
    assert (tmp_path / "db.journal").stat().st_size > 0
    path.write_text('{"jobs": {"1": {"job_id": "a"')  # truncated
    reopened = Store(path)
    assert [c["name"] for c in reopened.list_configs()] == [f"c{i}" for i in range(8)]
    assert reopened.restored is not None
    assert reopened.restored["configs_from"] == "db.json.bak"
    assert list(tmp_path.glob("db.json.corrupt-*"))


def test_a_damaged_journal_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    store = Store(path)
    store.save_config("first", {}, "t0")
    with open(tmp_path / "db.journal", "ab") as fh:
        fh.write(b"garbage\n")
    with open(tmp_path / "db.journal", "ab") as fh:
        fh.write(b'{"t":"configs","id":"7","doc":{"config_id":"x","name":"after-garbage","config":{}}}\n')
    reopened = Store(path)
    assert [c["name"] for c in reopened.list_configs()] == ["first", "after-garbage"]
    assert reopened.restored is not None
    assert "line 2" in reopened.restored["reason"]
    assert reopened.restored["journal_lines_skipped"] == 1


BURST = """
import sys
from pathlib import Path
from sft_ui import storage
from sft_ui.store import Store
storage.COMPACT_MIN_BYTES = 8192  # fold every few dozen writes, so kills land in folds too
store, tag = Store(Path(sys.argv[1])), sys.argv[2]
for i in range(100000):
    store.save_config(f"{tag}-{i % 40}", {"max_steps": i, "job_name": "y" * (i % 300)}, "now")
    print(f"config {tag}-{i % 40} {i}", flush=True)
    store.insert_job({"job_id": f"{tag}-{i}", "status": "pending"})
    store.update_job(f"{tag}-{i}", {"status": "completed", "progress": {"step": i}})
    print(f"job {tag}-{i}", flush=True)
"""


def test_a_kill_in_a_burst_of_writes_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    import random
    import subprocess
    import sys
    import time

    db = tmp_path / "sft_ui.json"
    configs: dict[str, int] = {}
    jobs: set[str] = set()
    root = Path(__file__).resolve().parents[1]
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", BURST, str(db), f"k{round_}"], cwd=root,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # it has started writing
        time.sleep(random.uniform(0.1, 0.6))
        proc.kill()
        out, _ = proc.communicate()
        for line in (first + out).splitlines():
            kind, name, *value = line.split()
            if kind == "config":
                configs[name] = int(value[0])
            else:
                jobs.add(name)
        store = Store(db)  # loads after every kill, with every acknowledged write
        saved = {c["name"]: c["config"]["max_steps"] for c in store.list_configs()}
        assert all(saved.get(name, -1) >= value for name, value in configs.items())
        assert all(store.get_job(job)["status"] == "completed" for job in jobs)
        assert store.restored is None
        store.close()
    assert len(jobs) > 20
