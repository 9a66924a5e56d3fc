"""Property-based bad input against every REST endpoint (read from /openapi.json) and every named Gradio
endpoint (read from /gradio_api/info): never a 5xx, never a hang, always a JSON detail naming the problem."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sft_ui.config import SFTConfig
from sft_ui.manager import JobManager
from sft_ui.status import STATUSES
from sft_ui.store import Store
from tests.servers import live_server

FIELDS = sorted(SFTConfig.model_fields)
OK_CODES = {200, 400, 401, 404, 405}
HANG = 10.0  # seconds: any answer slower than this counts as a hang

# --- strategies ---

NASTY_STRINGS = st.sampled_from([
    "", " ", "x" * 100_000, "\x00", "a\x00b", "../../etc/passwd", "/etc/passwd", "..", ".", "C:\\Windows",
    "builtin:tiny-gpt2", "builtin:tasks", "🧠" * 300, "é" * 250, "\u202e\ufeff", "%00", "%2e%2e%2f", "\\..\\x",
    "outputs/../../x", "null", "NaN", "-1", "1e999", "sft_ui.json", "sft_ui.json/x", "a" * 255, "b/" * 150,
])
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), NASTY_STRINGS,
)
JSON_VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=8)
KEYS = st.sampled_from([*FIELDS, "trust_remote_code", "hf_token", "unknown"])
# One odd field among defaults reaches the deeper checks; several odd fields test how errors add up.
PATH_FIELDS = st.sampled_from(["output_dir", "base_model", "dataset_name", "job_name", "dataset_split"])
PATHS = NASTY_STRINGS | st.sampled_from([
    "é" * 150, "🧠" * 100, "sft_ui.json", "sft_ui.json/x", "cache", "outputs/x/../..", "x.jsonl", "../x.jsonl",
    "/etc/passwd.json", "link/x.json", "link", "~", "$HOME", "a\nb", "a/./b", "//x", "x/", "builtin:", "builtin:../x",
])
ONE_PATH = st.dictionaries(PATH_FIELDS, PATHS, min_size=1, max_size=1)
CONFIGS = st.one_of(st.dictionaries(KEYS, LEAVES, max_size=1), ONE_PATH, ONE_PATH,
                    st.dictionaries(KEYS, JSON_VALUES, max_size=6))
RAW_BODIES = st.one_of(
    st.binary(max_size=120),
    st.sampled_from([b"{", b"[" * 50_000, b"{" * 50_000, b'{"config": {"max_steps": 1e999}}',
                     b'{"config": {"max_steps": 1' + b"0" * 5000 + b"}}", b"\xff\xfe\x00", b"null", b'"str"',
                     b'{"config": {"learning_rate": NaN}}', b'{"name": "n", "config": {"seed": -Infinity}}']),
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes | None, str | None]:
    """(body, content type): JSON shaped like the real bodies, or not JSON at all."""
    kind = draw(st.sampled_from(["train", "config", "value", "raw", "none"]))
    if kind == "raw":
        return draw(RAW_BODIES), draw(st.sampled_from(["application/json", "text/plain", None]))
    if kind == "none":
        return None, draw(st.sampled_from(["application/json", None]))
    if kind == "train":
        value: Any = {"config": draw(CONFIGS | JSON_VALUES)}
    elif kind == "config":
        value = {"name": draw(NASTY_STRINGS | JSON_VALUES), "config": draw(CONFIGS | JSON_VALUES)}
    else:
        value = draw(JSON_VALUES | CONFIGS)
    if draw(st.booleans()) and isinstance(value, dict):
        value[draw(st.text(max_size=10))] = draw(JSON_VALUES)
    return json.dumps(value, allow_nan=True).encode(), draw(st.sampled_from(["application/json"] * 4 + [None]))


URL_STRINGS = NASTY_STRINGS.map(lambda s: s[:3000])  # a URL stays under what HTTP servers and clients take


def ids(known: list[str]) -> st.SearchStrategy[str]:
    """Job or config ids: ones that exist, and anything else."""
    return st.sampled_from(known) | URL_STRINGS.filter(bool) | st.text(min_size=1, max_size=30)


def query_values() -> st.SearchStrategy[str]:
    return st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), URL_STRINGS,
                     st.sampled_from([*STATUSES, "1.5", "inf"]))


# --- the served app ---


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, JobManager, list[str], list[str]]]:
    """A live app whose jobs never start (the fuzz must not train), with a pending, an ended job and a config."""
    manager = JobManager(data_dir=tmp_path_factory.mktemp("fuzz") / "data").start()
    manager._schedule = lambda: None  # type: ignore[method-assign]  # queued jobs stay queued: no workers
    pending = manager.create_job({"max_steps": 5})
    ended = manager.create_job({"max_steps": 5})
    manager.store.update_job(ended, {"status": "completed", "finished_at": "2026-01-01T00:00:00Z",
                                     "result": {"steps": 5, "final_loss": 1.0}})
    config_id = manager.save_config("kept", {"max_steps": 7})
    with live_server(manager) as url:
        yield url.rstrip("/"), manager, [pending, ended], [config_id]


@pytest.fixture(scope="module")
def http(served: tuple[str, JobManager, list[str], list[str]]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0], timeout=HANG) as client:
        yield client


def operations(http: httpx.Client) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path template, operation) for every REST endpoint the server documents."""
    spec = http.get("/openapi.json").json()
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() if path.startswith("/api/sft")
            for method, op in ops.items()]


def assert_clean(response: httpx.Response, what: str) -> None:
    """No 5xx; errors are JSON with a non-empty string detail."""
    assert response.status_code in OK_CODES, f"{what} -> {response.status_code}: {response.text[:500]}"
    if response.status_code != 200:
        assert response.headers["content-type"].startswith("application/json"), (what, response.text[:300])
        detail = response.json()["detail"]
        assert isinstance(detail, str), (what, response.text[:300])
        assert detail, (what, response.text[:300])


def test_rest_fuzz_never_answers_5xx(served: tuple[str, JobManager, list[str], list[str]],
                                     http: httpx.Client) -> None:
    _, manager, job_ids, config_ids = served
    ops = operations(http)
    assert len(ops) >= 12, [f"{m} {p}" for m, p, _ in ops]

    @settings(max_examples=600, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def one_request(data: st.DataObject) -> None:
        method, template, op = data.draw(st.sampled_from(ops), label="operation")
        path = template
        params: dict[str, str] = {}
        for param in op.get("parameters", []):
            if param["in"] == "path":
                known = config_ids if "config" in param["name"] else job_ids
                path = path.replace("{" + param["name"] + "}", quote(data.draw(ids(known)), safe=""))
            elif param["in"] == "query" and data.draw(st.booleans()):
                params[param["name"]] = data.draw(query_values())
        if data.draw(st.booleans()):
            params[data.draw(st.text(min_size=1, max_size=8))] = data.draw(query_values())
        body, content_type = data.draw(bodies()) if method in ("POST", "PUT", "PATCH") else (None, None)
        headers = {"Content-Type": content_type} if content_type else {}
        began = time.monotonic()
        response = http.request(method, path, params=params, content=body, headers=headers)
        what = f"{method} {path[:120]} params={str(params)[:120]} body={(body or b'')[:200]!r}"
        assert time.monotonic() - began < HANG, what
        assert_clean(response, what)

    one_request()
    assert http.get("/api/sft/health").status_code == 200
    reopened = Store(manager.database_path)  # what the fuzz wrote reloads whole
    assert reopened.list_jobs() == manager.store.list_jobs()
    assert reopened.list_configs() == manager.list_configs()
    for config in reopened.list_configs():
        SFTConfig(**config["config"])  # every saved config is still a valid config


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of a Gradio /call/{name}/{event_id} stream."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines.get("data", "null"))))
    return events


def test_gradio_fuzz_errors_are_named_never_faults(served: tuple[str, JobManager, list[str], list[str]],
                                                   http: httpx.Client) -> None:
    _, _, job_ids, config_ids = served
    info = http.get("/gradio_api/info").json()["named_endpoints"]
    endpoints = {name.lstrip("/"): [p["parameter_name"] for p in ep["parameters"]] for name, ep in info.items()}
    assert {"train", "get_job", "save_config"} <= set(endpoints)

    def arg(name: str) -> st.SearchStrategy[Any]:
        if name == "job_id":
            return ids(job_ids) | JSON_VALUES
        if name == "config_id":
            return ids(config_ids) | JSON_VALUES
        if name == "config":
            return CONFIGS | JSON_VALUES
        return NASTY_STRINGS | JSON_VALUES

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def one_call(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(endpoints)) | st.sampled_from(["nosuch", "x" * 300, "🧠"]),
                         label="endpoint")
        args = [data.draw(arg(p), label=p) for p in endpoints.get(name, ["x"])]
        posted = http.post(f"/gradio_api/call/{quote(name, safe='')}",
                           content=json.dumps({"data": args}, allow_nan=True),
                           headers={"Content-Type": "application/json"})
        what = f"{name}({str(args)[:300]})"
        if name not in endpoints:
            assert_clean(posted, what)
            assert posted.status_code == 404, what
            return
        assert posted.status_code == 200, (what, posted.status_code, posted.text[:300])
        stream = http.get(f"/gradio_api/call/{name}/{posted.json()['event_id']}")
        events = sse_events(stream.text)
        assert events, (what, stream.text[:500])
        assert events[-1][0] in ("complete", "error"), (what, stream.text[:500])
        if events[-1][0] == "error":
            # gr.Error (what the endpoints raise for bad input) carries a title; an unexpected exception does not.
            payload = events[-1][1]
            assert isinstance(payload, dict), (what, payload)
            assert payload.get("title"), (what, payload)
            assert payload.get("error"), (what, payload)

    one_call()
    assert http.get("/api/sft/health").status_code == 200


def test_unknown_gradio_api_names_are_404_on_every_route(http: httpx.Client) -> None:
    body = {"data": [1]}
    for route in ("call", "call/v2", "run", "api"):
        response = http.post(f"/gradio_api/{route}/nosuch", json=body)
        assert_clean(response, route)
        assert response.status_code == 404, (route, response.text)


def test_a_trailing_slash_is_a_json_404_whatever_the_id(http: httpx.Client) -> None:
    """Found by the fuzz: an id with a newline and a trailing slash got a bare 307 while others got a 404."""
    for path in ("/api/sft/jobs/%0A%2F", "/api/sft/jobs/abc/", "/api/sft/configs/a%0Db/", "/api/sft/health/"):
        response = http.get(path)
        assert_clean(response, path)
        assert response.status_code == 404, (path, response.text)


def test_outputs_reload_after_fuzz(served: tuple[str, JobManager, list[str], list[str]]) -> None:
    """Nothing the fuzz sent left a job directory outside the data root."""
    _, manager, _, _ = served
    root = manager.store_root()
    for record in manager.list_jobs():
        assert Path(record["job_dir"]).resolve().is_relative_to(root)


def test_a_diverged_loss_is_served_as_null_not_a_500(served: tuple[str, JobManager, list[str], list[str]],
                                                     http: httpx.Client) -> None:
    """Training can log NaN or infinity; JSON cannot carry them, so they read as null."""
    _, manager, _, _ = served
    job_dir = manager.store_root() / "diverged"
    job_dir.mkdir()
    manager.store.insert_job({"job_id": "diverged", "name": "d", "status": "failed", "created_at": "2026-01-01",
                              "config": SFTConfig().model_dump(), "job_dir": str(job_dir),
                              "progress": {"step": 2, "total_steps": 2, "epoch": 0.0, "eta_seconds": None}})
    lines = ['{"step": 1, "loss": 2.5}', '{"step": 2, "loss": NaN, "grad_norm": Infinity}']
    (job_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    points = http.get("/api/sft/jobs/diverged/metrics")
    assert points.status_code == 200
    assert points.json()["points"][1] == {"step": 2, "loss": None, "grad_norm": None}
    assert http.get("/api/sft/jobs/diverged").status_code == 200
