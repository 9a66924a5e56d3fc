"""The job manager end to end: real training of the built-in model in worker processes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sft_ui import SFTConfig, jobdir
from sft_ui.builtin import builtin_rows
from sft_ui.manager import INTERRUPTED, JobManager, NotFoundError, StateError
from sft_ui.status import ENDED
from sft_ui.store import Store
from tests.helpers import wait_for

FAST = {"max_steps": 40, "batch_size": 8, "logging_steps": 1}
LONG = {"max_steps": 100_000, "logging_steps": 1}


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def losses(manager: JobManager, job_id: str) -> list[float]:
    return [p["loss"] for p in manager.get_metrics(job_id) if "loss" in p]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    """One manager that trains the seed's example once (LoRA) for several assertions."""
    mgr = JobManager(data_dir=tmp_path_factory.mktemp("shared") / "data", max_concurrent_jobs=2).start()
    config = SFTConfig(max_steps=60, dataset_format="alpaca")
    job_id = mgr.create_job(config)
    seen = [mgr.get_job_status(job_id)["status"]]
    mgr.start_job(job_id)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = mgr.get_job_status(job_id)["status"]
        if status != seen[-1]:
            seen.append(status)
        if status in ENDED:
            break
        time.sleep(0.1)
    yield mgr, job_id, seen
    mgr.shutdown()


def test_seed_usage_goes_pending_running_completed(shared) -> None:
    mgr, job_id, seen = shared
    assert seen == ["pending", "running", "completed"], mgr.get_log(job_id)
    status = mgr.get_job_status(job_id)
    assert status["created_at"]
    assert status["started_at"]
    assert status["finished_at"]
    assert status["progress"]["step"] == 60
    assert status["progress"]["total_steps"] == 60
    assert status["error"] is None
    assert status["result"]["saved"] == "lora_adapter"
    assert status["result"]["steps"] == 60
    assert status["metrics"]["loss"] == pytest.approx(status["result"]["final_loss"])


def test_loss_falls_and_metrics_have_the_logged_fields(shared) -> None:
    mgr, job_id, _ = shared
    points = mgr.get_metrics(job_id)
    assert [p["step"] for p in points if "loss" in p] == list(range(1, 61))
    assert {"loss", "learning_rate", "grad_norm", "epoch"} <= set(points[0])
    values = losses(mgr, job_id)
    assert mean(values[-10:]) < 0.8 * mean(values[:10])
    assert [p["step"] for p in mgr.get_metrics(job_id, since=55)] == [56, 57, 58, 59, 60]


def test_saved_adapter_loads_and_generates(shared) -> None:
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    mgr, job_id, _ = shared
    out = Path(mgr.get_job_status(job_id)["result"]["output_dir"])
    assert (out / "adapter_config.json").exists()
    model = AutoPeftModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("### Instruction:\nReverse the word.", return_tensors="pt")
    generated = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > ids["input_ids"].shape[1]
    log = mgr.get_log(job_id)
    assert "finished: completed" in log


def test_full_fine_tune_saves_a_whole_model(manager: JobManager) -> None:
    from transformers import AutoModelForCausalLM

    job_id = manager.create_job({**FAST, "use_lora": False, "learning_rate": 5e-4})
    manager.start_job(job_id)
    record = wait_for(manager, job_id, ("completed", "failed"))
    assert record["status"] == "completed", record["error"]
    assert record["result"]["saved"] == "full_model"
    AutoModelForCausalLM.from_pretrained(record["result"]["output_dir"])
    values = losses(manager, job_id)
    assert mean(values[-10:]) < 0.8 * mean(values[:10])


def _write_formats(root: Path) -> dict[str, str]:
    rows = builtin_rows()[:400]
    def prompt(r: dict) -> str:
        return r["instruction"] + (f"\n{r['input']}" if r["input"] else "")
    files = {
        "alpaca": ("alpaca.json", rows),
        "sharegpt": ("sharegpt.jsonl", [{"conversations": [{"from": "human", "value": prompt(r)},
                                                           {"from": "gpt", "value": r["output"]}]} for r in rows]),
        "messages": ("messages.jsonl", [{"messages": [{"role": "user", "content": prompt(r)},
                                                      {"role": "assistant", "content": r["output"]}]} for r in rows]),
        "prompt_completion": ("pc.jsonl", [{"prompt": prompt(r) + "\n", "completion": r["output"]} for r in rows]),
        "text": ("text.jsonl", [{"text": prompt(r) + " => " + r["output"]} for r in rows]),
    }
    names = {}
    for fmt, (name, data) in files.items():
        path = root / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".json"):
            path.write_text(json.dumps(data))
        else:
            path.write_text("\n".join(json.dumps(d) for d in data))
        names[fmt] = f"files/{name}"
    return names


def test_every_format_trains_and_loss_falls(tmp_path: Path) -> None:
    mgr = JobManager(data_dir=tmp_path / "data", max_concurrent_jobs=2).start()
    try:
        files = _write_formats(mgr.store_root())
        jobs = {}
        for fmt, name in files.items():
            for given in (fmt, "auto"):
                if given == "auto" and fmt not in ("sharegpt", "text"):
                    continue
                job_id = mgr.create_job({**FAST, "dataset_name": name, "dataset_format": given})
                mgr.start_job(job_id)
                jobs[(fmt, given)] = job_id
        for key, job_id in jobs.items():
            record = wait_for(mgr, job_id, ENDED, timeout=300)
            assert record["status"] == "completed", (key, record["error"], mgr.get_log(job_id)[-2000:])
            values = losses(mgr, job_id)
            assert mean(values[-10:]) < 0.85 * mean(values[:10]), (key, values)
    finally:
        mgr.shutdown()


def test_stop_a_running_job_saves_what_it_trained(manager: JobManager) -> None:
    job_id = manager.create_job(LONG)
    manager.start_job(job_id)
    deadline = time.monotonic() + 120
    while manager.get_job_status(job_id)["progress"]["step"] < 5:
        assert time.monotonic() < deadline, manager.get_log(job_id)
        time.sleep(0.1)
    asked = time.monotonic()
    record = manager.stop_job(job_id)
    assert record["status"] == "stopped", record
    assert time.monotonic() - asked < 10
    assert record["result"]["stopped_early"]
    assert record["result"]["steps"] >= 5
    assert (Path(record["result"]["output_dir"]) / "adapter_config.json").exists()
    with pytest.raises(StateError, match="stopped"):
        manager.stop_job(job_id)


def test_stop_while_the_worker_starts(manager: JobManager) -> None:
    job_id = manager.create_job(LONG)
    manager.start_job(job_id)
    time.sleep(0.3)  # the worker is importing torch
    record = manager.stop_job(job_id)
    assert record["status"] == "stopped"
    assert record["progress"]["step"] == 0


def test_queue_order_with_one_slot_and_stop_of_a_pending_job(manager: JobManager) -> None:
    first = manager.create_job({**FAST, "max_steps": 20})
    second = manager.create_job({**FAST, "max_steps": 20})
    third = manager.create_job(FAST)
    assert manager.start_job(first)["status"] == "running"
    queued = manager.start_job(second)
    assert queued["status"] == "pending"
    assert queued["queue_position"] == 1
    assert manager.start_job(third)["queue_position"] == 2
    assert manager.stop_job(third)["status"] == "stopped"  # a pending job stops without running
    assert manager.get_job_status(second)["queue_position"] == 1
    a = wait_for(manager, first, ("completed", "failed"))
    b = wait_for(manager, second, ("completed", "failed"))
    assert a["status"] == b["status"] == "completed"
    assert b["started_at"] >= a["finished_at"]
    never = manager.get_job_status(third)
    assert never["started_at"] is None
    assert not manager.get_metrics(third)
    assert [j["job_id"] for j in manager.list_jobs()] == [third, second, first]  # newest first
    assert [j["job_id"] for j in manager.list_jobs(status="stopped")] == [third]


@pytest.mark.parametrize(
    ("config", "expected"),
    [({"base_model": "no-such-org/no-such-model"}, "base_model"),
     ({"base_model": "builtin:nope"}, "builtin:tiny-gpt2"),
     ({"dataset_name": "missing.jsonl"}, "not found")],
)
def test_failures_end_the_job_with_a_readable_cause(manager: JobManager, config: dict, expected: str) -> None:
    job_id = manager.create_job({**FAST, **config})
    manager.start_job(job_id)
    record = wait_for(manager, job_id, ("completed", "failed"), timeout=90)
    assert record["status"] == "failed"
    assert expected in record["error"]
    assert "\n" not in record["error"]
    assert "Traceback" in manager.get_log(job_id)


@pytest.mark.parametrize(
    ("config", "expected"),
    [({"dataset_name": "files/cols.jsonl", "dataset_format": "alpaca"}, "dataset_format"),
     ({"dataset_name": "files/cols.jsonl"}, "question")],
)
def test_data_the_worker_would_refuse_is_refused_before_a_job_exists(quiet: JobManager, config: dict,
                                                                     expected: str) -> None:
    cols = quiet.store_root() / "files" / "cols.jsonl"
    cols.parent.mkdir(parents=True, exist_ok=True)
    cols.write_text('{"question": "a", "answer": "b"}\n' * 20)
    with pytest.raises(ValueError, match=expected):
        quiet.create_job({**FAST, **config})
    assert quiet.list_jobs() == []


def test_a_killed_worker_fails_the_job_and_the_queue_moves_on(manager: JobManager) -> None:
    victim = manager.create_job(LONG)
    after = manager.create_job({**FAST, "max_steps": 10})
    manager.start_job(victim)
    manager.start_job(after)
    deadline = time.monotonic() + 120
    while manager.get_job_status(victim)["progress"]["step"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(manager.get_job_status(victim)["worker_pid"], signal.SIGKILL)
    record = wait_for(manager, victim, ("failed",), timeout=30)
    assert "killed by signal 9" in record["error"]
    assert manager.get_metrics(victim)  # partial metrics are kept
    assert wait_for(manager, after, ("completed", "failed"))["status"] == "completed"


def test_restart_marks_running_jobs_interrupted_and_requeues_waiting_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = JobManager(data_dir=data).start()
    ran = first.create_job(FAST)
    waiting = first.create_job({**FAST, "max_steps": 5})
    store = first.store
    store.update_job(ran, {"status": "running", "started_at": "2026-01-01T00:00:00Z", "worker_pid": 999_999_999})
    store.update_job(waiting, {"queued_at": "2026-01-01T00:00:00Z"})
    (Path(first.get_job_status(ran)["job_dir"]) / jobdir.METRICS).write_text('{"step": 1, "loss": 3.0}\n')

    second = JobManager(data_dir=data).start()  # a server started on the same data dir after a crash
    try:
        record = second.get_job_status(ran)
        assert record["status"] == "failed"
        assert record["error"] == INTERRUPTED
        assert second.get_metrics(ran) == [{"step": 1, "loss": 3.0}]
        assert wait_for(second, waiting, ("completed", "failed"))["status"] == "completed"
    finally:
        second.shutdown()


def test_configs_and_unknown_ids(manager: JobManager) -> None:
    seed = {"base_model": "gpt2", "dataset_name": "tatsu-lab/alpaca", "use_lora": True}
    config_id = manager.save_config("my_config", seed)
    saved = manager.get_config(config_id)
    assert saved["name"] == "my_config"
    assert saved["config"]["base_model"] == "gpt2"
    assert manager.save_config("my_config", {**seed, "lora_r": 8}) == config_id
    assert manager.get_config(config_id)["config"]["lora_r"] == 8
    assert [c["config_id"] for c in manager.list_configs()] == [config_id]
    manager.delete_config(config_id)
    for call in (manager.get_job_status, manager.stop_job, manager.get_metrics, manager.get_config):
        with pytest.raises(NotFoundError, match="nope"):
            call("nope")


def test_concurrent_calls_from_threads_keep_the_database_whole(manager: JobManager) -> None:
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            for i in range(10):
                job_id = manager.create_job({**FAST, "job_name": f"t{n}-{i}"})
                manager.save_config(f"c{n}", {"max_steps": i + 1})
                manager.get_job_status(job_id)
                manager.list_jobs()
                manager.stop_job(job_id)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reopened = Store(manager.database_path)
    assert len(reopened.list_jobs()) == 80
    assert {j["status"] for j in reopened.list_jobs()} == {"stopped"}
    assert {c["name"]: c["config"]["max_steps"] for c in reopened.list_configs()} == {f"c{n}": 10 for n in range(8)}
