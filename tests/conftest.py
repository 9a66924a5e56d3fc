"""Shared fixtures: offline hub, one built-in model cache per test session, fresh managers."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A spare worker costs each manager a few seconds of CPU and ~0.5 GB; only tests/test_spare.py turns it on.
os.environ.setdefault("SFT_UI_SPARE_WORKER", "0")

from sft_ui.manager import JobManager  # noqa: E402
from sft_ui.status import ENDED  # noqa: E402
from tests.helpers import rest_client  # noqa: E402
from tests.servers import AppServer  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def builtin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the built-in model across the session (workers inherit the env var)."""
    if "SFT_UI_CACHE_DIR" not in os.environ:
        os.environ["SFT_UI_CACHE_DIR"] = str(tmp_path_factory.mktemp("builtin-cache"))
    return Path(os.environ["SFT_UI_CACHE_DIR"])


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[JobManager]:
    """A JobManager on a fresh data dir; its running jobs are stopped afterwards."""
    mgr = JobManager(data_dir=tmp_path / "data").start()
    yield mgr
    mgr.shutdown()


@pytest.fixture(scope="session")
def trained_job(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[tuple[JobManager, str]]:
    """A LoRA job of the default SFTConfig (the built-in demo) at half its steps, shared by the tests that use it."""
    from tests.helpers import wait_for

    mgr = JobManager(data_dir=tmp_path_factory.mktemp("trained") / "data").start()
    job_id = mgr.create_job({"job_name": "default demo", "max_steps": 100})  # 100 of 200 steps already suffice
    mgr.start_job(job_id)
    record = wait_for(mgr, job_id, ENDED, timeout=600)
    assert record["status"] == "completed", (record["error"], mgr.get_log(job_id)[-3000:])
    yield mgr, job_id
    mgr.shutdown()


@pytest.fixture(scope="session")
def sft_server(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[str]:
    """README's run command, `python app.py`, serving on a free port; yields its base URL."""
    data = tmp_path_factory.mktemp("server") / "data"
    with AppServer(data, log_path=data.parent / "server.log", SFT_UI_MAX_CONCURRENT_JOBS="1") as server:
        yield server.url


@pytest.fixture
def api_manager(manager: JobManager) -> JobManager:
    """The manager `client` serves: `manager`; a module whose jobs must never start overrides it with `quiet`."""
    return manager


@pytest.fixture
def client(api_manager: JobManager) -> Iterator[TestClient]:
    """A TestClient over the REST routers alone (helpers.api_app) on `api_manager`, its start-up run."""
    with rest_client(api_manager) as test_client:
        yield test_client


def find_chromium() -> str | None:
    """SFT_UI_CHROMIUM (a path or a command name), else `chromium` on PATH, else /usr/bin/chromium."""
    wanted = os.environ.get("SFT_UI_CHROMIUM")
    if wanted:
        return shutil.which(wanted)
    return shutil.which("chromium") or shutil.which("/usr/bin/chromium")


CHROMIUM = find_chromium()
NO_CHROMIUM = (f"no Chromium ({os.environ.get('SFT_UI_CHROMIUM') or 'chromium on PATH or /usr/bin/chromium'}): "
               "run scripts/test as root to apt-get it, or `apt-get install chromium`, or set SFT_UI_CHROMIUM=/path")
# `slow`: a test that starts a worker process, another process or a server, or makes the built-in model in the
# test process (builtin_model_path pre-trains it when the shipped one is stale), judged by what its code calls:
# the test, the fixtures it uses and the helpers they call, where those live in tests/ (trained_job, sft_server, ...).
STARTS = re.compile(r"\b(start_job|resume_job|wait_for|live_server|Popen|builtin_model_path)\("
                    r"|\bsubprocess\.|\bmultiprocessing\b|SFT_UI_SPARE_WORKER")
TESTS = Path(__file__).resolve().parent
UNIT = TESTS / "unit"


def pytest_report_header() -> str:
    return f"chromium: {CHROMIUM or 'none, browser tests skip'}"


def names(code: types.CodeType) -> set[str]:
    """The global names a function's code (and the comprehensions and lambdas in it) refers to."""
    return set(code.co_names).union(*(names(c) for c in code.co_consts if isinstance(c, types.CodeType)))


def in_tests(obj: object) -> bool:
    return (inspect.isfunction(obj) or inspect.isclass(obj)) and Path(inspect.getfile(obj)).is_relative_to(TESTS)


def starts_processes(objs: list[object], seen: set[object]) -> bool:
    """Whether one of these functions or classes (or one in tests/ that they name) matches STARTS."""
    for obj in objs:
        if not in_tests(obj) or obj in seen:
            continue
        seen.add(obj)
        if inspect.isclass(obj):
            inner = list(vars(obj).values())
        else:
            inner = [obj.__globals__.get(name) for name in names(obj.__code__)]
        try:
            source = inspect.getsource(obj)
        except (OSError, TypeError):  # made at run time: judged by what it names
            source = ""
        if STARTS.search(source) or starts_processes(inner, seen):
            return True
    return False


def is_slow(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    fixtures = [d.func for defs in (info.name2fixturedefs.values() if info else ()) for d in defs]
    return starts_processes([getattr(item, "function", None), *fixtures], set())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `browser` the tests that drive Chromium and `slow` those that start workers or servers."""
    for item in items:
        browser = "page" in getattr(item, "fixturenames", ()) or item.path.name.endswith("_browser.py")
        if browser:
            item.add_marker(pytest.mark.browser)
        if browser or is_slow(item):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") and item.path.is_relative_to(UNIT):
            raise pytest.UsageError(f"{item.nodeid} starts a process or a server: it belongs in tests/, not "
                                    "tests/unit/ (which starts none; DESIGN.md, Layout)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without Chromium the browser tests skip (one summary line), before their servers start."""
    if CHROMIUM is None and item.get_closest_marker("browser"):
        pytest.skip(NO_CHROMIUM)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright launches Debian's Chromium (playwright cannot download browsers here)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run"]}


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[JobManager]:
    """A manager whose jobs never start a worker (these tests are about what is let in)."""
    manager = JobManager(data_dir=tmp_path / "data").start()
    manager._schedule = lambda: None  # type: ignore[method-assign]
    yield manager
