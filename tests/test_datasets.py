"""The upload library over REST: upload, list, preview, delete; the size limit; Start refusing data Preview refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from sft_ui.web import rest, rest_datasets
from tests.helpers import error, wait_for
from tests.servers import live_server

ALPACA = b"".join(json.dumps({"instruction": f"Upper-case {w}.", "output": w.upper()}).encode() + b"\n"
                  for w in ("fox", "owl", "cat", "elk", "yak", "bee"))


def serve(manager: JobManager) -> TestClient:
    """A TestClient over the jobs and data set routers on `manager`."""
    app = FastAPI()
    app.state.sft_manager = manager
    rest.install_error_handlers(app)
    app.include_router(rest.router)
    app.include_router(rest_datasets.router)
    return TestClient(app)


@pytest.fixture
def api(quiet: JobManager) -> Iterator[TestClient]:
    """The jobs and data set routers over a manager whose jobs stay pending."""
    with serve(quiet) as client:
        yield client


def upload(api: TestClient, name: str, content: bytes) -> object:
    """POST /datasets with `content` as the multipart field `file` named `name`."""
    return api.post("/api/sft/datasets", files={"file": (name, content, "application/octet-stream")})


def library(manager: JobManager) -> list[str]:
    """Every file in <data dir>/datasets/, hidden ones included."""
    folder = manager.store_root() / "datasets"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_an_uploaded_file_is_listed_with_its_rows_and_format_and_trains_by_its_path(api: TestClient,
                                                                                   quiet: JobManager) -> None:
    response = upload(api, "tasks.jsonl", ALPACA)
    assert response.status_code == 200, response.text
    entry = response.json()
    assert entry["name"] == "tasks.jsonl"
    assert entry["path"] == "datasets/tasks.jsonl"
    assert entry["rows"] == 6
    assert entry["format"] == "alpaca"
    assert entry["size_bytes"] == len(ALPACA)
    assert (quiet.store_root() / "datasets" / "tasks.jsonl").read_bytes() == ALPACA
    listed = api.get("/api/sft/datasets").json()["datasets"]
    assert [(e["name"], e["rows"], e["format"]) for e in listed] == [("tasks.jsonl", 6, "alpaca")]
    assert listed[0]["uploaded_at"].endswith("Z")
    started = api.post("/api/sft/train", json={"config": {"dataset_name": entry["path"]}})
    assert started.status_code == 200, started.text


@pytest.mark.parametrize(("name", "content", "rows", "fmt"), [
    ("pairs.csv", b"prompt,completion\nWhat is 2+2?,4\n\"Say \"\"hi\"\"\",\"hi,\nthere\"\n", 2, "prompt_completion"),
    ("notes.txt", b"First document.\nStill first.\n\nSecond document.\n\n\nThird.\n", 3, "text"),
    ("chats.json", json.dumps([{"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}] * 4).encode(), 4, "messages"),
])
def test_each_accepted_kind_of_file_is_counted_and_detected(api: TestClient, name: str, content: bytes, rows: int,
                                                            fmt: str) -> None:
    entry = upload(api, name, content).json()
    assert entry["rows"] == rows
    assert entry["format"] == fmt


def test_a_parquet_file_is_counted_from_its_metadata(api: TestClient, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(123)]}), path)
    entry = upload(api, "rows.parquet", path.read_bytes()).json()
    assert entry["rows"] == 123
    assert entry["format"] == "text"


def test_a_large_json_array_is_counted_by_streaming_through_it(api: TestClient) -> None:
    rows = [{"prompt": f"question {i} " + "x" * 40, "completion": f"answer {i}"} for i in range(3000)]
    entry = upload(api, "big.json", json.dumps(rows, indent=1).encode()).json()
    assert entry["rows"] == 3000
    assert entry["format"] == "prompt_completion"


def test_a_file_copied_into_the_library_by_hand_is_listed_and_a_changed_one_counted_again(
        api: TestClient, quiet: JobManager) -> None:
    folder = quiet.store_root() / "datasets"
    folder.mkdir()
    (folder / "copied.jsonl").write_bytes(ALPACA)
    assert [(e["name"], e["rows"]) for e in api.get("/api/sft/datasets").json()["datasets"]] == [("copied.jsonl", 6)]
    (folder / "copied.jsonl").write_bytes(ALPACA + ALPACA[:-1] + b"\n{\"text\": \"more\"}\n")
    assert api.get("/api/sft/datasets").json()["datasets"][0]["rows"] == 13


def test_the_same_content_twice_is_kept_once_and_another_content_gets_a_new_name(api: TestClient,
                                                                                 quiet: JobManager) -> None:
    first = upload(api, "tasks.jsonl", ALPACA).json()
    again = upload(api, "copy of tasks.jsonl", ALPACA).json()
    assert again["path"] == first["path"]
    assert again["already_uploaded"] is True
    other = upload(api, "tasks.jsonl", ALPACA + ALPACA).json()
    assert other["name"] == "tasks-2.jsonl"
    assert other["rows"] == 12
    assert [n for n in library(quiet) if not n.startswith(".")] == ["tasks-2.jsonl", "tasks.jsonl"]


@pytest.mark.parametrize(("given", "kept"), [("../../x.jsonl", "x.jsonl"), ("<img src=x>.csv", "img_src_x.csv"),
                                              ("..\\..\\evil.JSONL", "evil.jsonl"), (".hidden.txt", "hidden.txt")])
def test_hostile_names_are_kept_under_a_safe_name_inside_the_library(api: TestClient, quiet: JobManager,
                                                                     given: str, kept: str) -> None:
    content = b"text\nhello\n" if kept.endswith(".csv") else b'{"text": "hello"}\n'
    entry = upload(api, given, content).json()
    assert entry["name"] == kept
    assert (quiet.store_root() / "datasets" / kept).is_file()
    assert not (quiet.store_root().parent / "x.jsonl").exists()


@pytest.mark.parametrize(("given", "words"), [("<>.csv", ("file", "no usable name")), ("...jsonl", ("file",)),
                                              ("model.bin", ("file", ".jsonl")), ("", ("file",))])
def test_names_that_are_empty_once_sanitised_or_of_other_kinds_are_400(api: TestClient, quiet: JobManager,
                                                                      given: str, words: tuple[str, ...]) -> None:
    error(upload(api, given, b'{"text": "a"}\n'), 400, *words)
    assert [n for n in library(quiet) if not n.startswith(".")] == []


def test_an_unreadable_file_is_400_and_not_kept(api: TestClient, quiet: JobManager) -> None:
    error(upload(api, "broken.json", b"{not json"), 400, "file", "could not read broken.json")
    error(upload(api, "empty.jsonl", b""), 400, "file", "no rows")
    assert library(quiet) == []


def test_a_body_without_a_file_field_is_400(api: TestClient) -> None:
    error(api.post("/api/sft/datasets", data={"other": "x"}, files={"nope": ("a.jsonl", b"{}")}), 400, "file")
    error(api.post("/api/sft/datasets", json={"file": "a.jsonl"}), 400, "multipart/form-data")


def test_over_the_size_limit_is_413_and_leaves_nothing_on_disk(api: TestClient, quiet: JobManager,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_UI_MAX_UPLOAD_MB", "0.25")
    big = b'{"text": "' + b"a" * 400_000 + b'"}\n'
    error(upload(api, "big.jsonl", big), 413, "file", "SFT_UI_MAX_UPLOAD_MB")
    assert library(quiet) == []
    streamed = api.post("/api/sft/datasets", content=_multipart_chunks("big.jsonl", big),
                        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
    error(streamed, 413, "SFT_UI_MAX_UPLOAD_MB")
    assert library(quiet) == []
    assert upload(api, "small.jsonl", ALPACA).status_code == 200


BOUNDARY = "sftuiboundary"


def _multipart_chunks(name: str, content: bytes) -> Iterator[bytes]:
    """A multipart body sent in pieces without a Content-Length (the server must count as it writes)."""
    yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
    for start in range(0, len(content), 50_000):
        yield content[start:start + 50_000]
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def test_preview_shows_the_rows_as_the_train_tab_does(api: TestClient, quiet: JobManager) -> None:
    upload(api, "tasks.jsonl", ALPACA)
    answer = api.get("/api/sft/datasets/tasks.jsonl/preview", params={"n": 2}).json()
    same = quiet.preview({"dataset_name": "datasets/tasks.jsonl"}, 2)
    assert answer["preview"] == same
    assert answer["rows"] == 6
    assert answer["summary"]["rows"]["read"] == 6
    assert answer["summary"]["rows"]["used"] == 6
    assert answer["summary"]["dataset_format"] == "alpaca"
    assert "Upper-case fox." in answer["preview"][0]["prompt"]


def test_unknown_and_bad_names_are_404_and_400(api: TestClient) -> None:
    error(api.get("/api/sft/datasets/missing.jsonl/preview"), 404, "missing.jsonl")
    error(api.delete("/api/sft/datasets/missing.jsonl"), 404, "missing.jsonl")
    error(api.delete("/api/sft/datasets/.hidden.jsonl"), 400, "name")
    error(api.get("/api/sft/datasets/x.exe/preview"), 400, "name")


def test_delete_is_refused_while_a_pending_job_uses_the_file(api: TestClient, quiet: JobManager) -> None:
    upload(api, "tasks.jsonl", ALPACA)
    job_id = api.post("/api/sft/train", json={"config": {"dataset_name": "datasets/tasks.jsonl"}}).json()["job_id"]
    error(api.delete("/api/sft/datasets/tasks.jsonl"), 400, "tasks.jsonl", job_id)
    assert (quiet.store_root() / "datasets" / "tasks.jsonl").is_file()
    assert api.post(f"/api/sft/jobs/{job_id}/stop").status_code == 200
    assert api.delete("/api/sft/datasets/tasks.jsonl").status_code == 200
    assert api.get("/api/sft/datasets").json()["datasets"] == []
    assert library(quiet) == []


@pytest.mark.parametrize(("content", "words"), [
    (b"{not json", ("dataset_name", "could not read bad.jsonl")),
    (b'{"question": "a", "answer": "b"}\n', ("dataset_name", "no usable columns", "question")),
    (b"", ("dataset_name", "no rows")),
])
def test_start_refuses_a_file_that_preview_refuses_without_creating_a_job(
        api: TestClient, quiet: JobManager, content: bytes, words: tuple[str, ...]) -> None:
    (quiet.store_root() / "bad.jsonl").write_bytes(content)
    error(api.post("/api/sft/train", json={"config": {"dataset_name": "bad.jsonl"}}), 400, *words)
    assert quiet.list_jobs() == []


def test_start_refuses_a_format_the_file_lacks_the_columns_of(api: TestClient, quiet: JobManager) -> None:
    upload(api, "tasks.jsonl", ALPACA)
    config = {"dataset_name": "datasets/tasks.jsonl", "dataset_format": "messages"}
    error(api.post("/api/sft/train", json={"config": config}), 400, "dataset_format", "messages")
    assert quiet.list_jobs() == []


def test_start_reads_only_the_first_rows_of_a_file(api: TestClient, quiet: JobManager) -> None:
    good = b'{"text": "fine"}\n' * 60
    (quiet.store_root() / "late.jsonl").write_bytes(good + b"{broken at row 61\n")
    response = api.post("/api/sft/train", json={"config": {"dataset_name": "late.jsonl"}})
    assert response.status_code == 200, response.text


def test_hub_and_builtin_ids_are_not_fetched_at_start(api: TestClient, quiet: JobManager) -> None:
    for name in ("tatsu-lab/alpaca", "builtin:tasks"):
        response = api.post("/api/sft/train", json={"config": {"dataset_name": name}})
        assert response.status_code == 200, response.text
    assert len(quiet.list_jobs()) == 2


def test_a_job_on_an_uploaded_file_trains_to_completion(manager: JobManager) -> None:
    with serve(manager) as client:
        path = upload(client, "tasks.jsonl", ALPACA * 4).json()["path"]
        config = {"dataset_name": path, "max_steps": 3, "batch_size": 2, "logging_steps": 1}
        job_id = client.post("/api/sft/train", json={"config": config}).json()["job_id"]
        record = wait_for(manager, job_id, ENDED, timeout=300)
    assert record["status"] == "completed", (record["error"], manager.get_log(job_id)[-2000:])
    assert record["progress"]["step"] == 3
    assert record["config"]["dataset_name"] == "datasets/tasks.jsonl"


def test_the_gradio_api_uploads_lists_and_previews_like_rest(quiet: JobManager, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio_client import Client, handle_file

    monkeypatch.setenv("SFT_UI_MAX_UPLOAD_MB", "0.002")  # 2 kB: ALPACA fits, `big` does not
    source, big = tmp_path / "my tasks.jsonl", tmp_path / "big.jsonl"
    source.write_bytes(ALPACA)
    big.write_bytes(ALPACA * 20)
    with live_server(quiet) as url:
        client = Client(url, verbose=False)
        with pytest.raises(ValueError, match="exceeds the maximum file size"):
            client.predict(handle_file(str(big)), api_name="/upload_dataset")
        assert library(quiet) == []
        entry = client.predict(handle_file(str(source)), api_name="/upload_dataset")
        listed = client.predict(api_name="/list_datasets")
        shown = client.predict("my_tasks.jsonl", 2, api_name="/preview_dataset")
        again = client.predict(handle_file(str(source)), api_name="/upload_dataset")
    rest_entry = quiet.list_datasets()[0]
    assert entry["name"] == "my_tasks.jsonl"
    assert entry["dataset_name"] == "datasets/my_tasks.jsonl"
    assert entry["rows"] == 6
    assert entry["format"] == "alpaca"
    assert entry["size_bytes"] == len(ALPACA)
    assert {k: v for k, v in rest_entry.items() if k != "path"} == {k: v for k, v in entry.items()
                                                                     if k != "already_uploaded"}
    assert [e["name"] for e in listed["datasets"]] == ["my_tasks.jsonl"]
    assert shown["preview"] == quiet.preview({"dataset_name": "datasets/my_tasks.jsonl"}, 2)
    assert again["already_uploaded"] is True
    assert [n for n in library(quiet) if not n.startswith(".")] == ["my_tasks.jsonl"]


def test_an_upload_onto_a_full_disk_is_507_and_leaves_nothing(tmp_path: Path) -> None:
    from tests.helpers import fill_disk, tiny_disk

    with tiny_disk(tmp_path, "1m") as disk:
        manager = JobManager(data_dir=disk / "data").start()
        with serve(manager) as client:
            (disk / "data" / "datasets").mkdir()
            fill_disk(disk)
            answer = client.post("/api/sft/datasets", files={"file": ("big.jsonl", b'{"text": "x"}\n' * 20_000)})
            assert answer.status_code == 507
            assert "nothing changed" in answer.json()["detail"]
            assert [p.name for p in (disk / "data" / "datasets").iterdir()] == []


def test_the_served_app_takes_an_upload_over_rest(quiet: JobManager) -> None:
    from sft_ui.web.app import build_app

    with TestClient(build_app(quiet)) as client:  # the app python app.py serves, routers and middleware as built
        answer = client.post("/api/sft/datasets", files={"file": ("served.jsonl", b'{"text": "a"}\n{"text": "b"}\n')})
        assert answer.status_code == 200
        assert answer.json()["rows"] == 2
        assert [e["name"] for e in client.get("/api/sft/datasets").json()["datasets"]] == ["served.jsonl"]


def test_a_txt_files_library_count_is_the_jobs_row_count(api: TestClient, quiet: JobManager) -> None:
    from sft_ui import data
    from sft_ui.config import SFTConfig

    content = b"First doc.\r\n  indented line\r\n \t \r\nSecond doc.\n\n\n\x0cThird doc.\n"
    entry = upload(api, "docs.txt", content).json()  # type: ignore[attr-defined]
    rows = data.load_source(SFTConfig(dataset_name=entry["path"]), quiet.store_root()).to_list()
    assert entry["rows"] == len(rows)
    assert rows[0]["text"] == "First doc.\n  indented line"
