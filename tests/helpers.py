"""Small helpers shared by the tests."""

from __future__ import annotations

import time

import pytest

from sft_ui.jobs import JobManager


def wait_for(manager: JobManager, job_id: str, statuses: tuple[str, ...], timeout: float = 120.0) -> dict:
    """Poll until the job reaches one of `statuses`; fail with its record when it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = manager.get_job_status(job_id)
        if record["status"] in statuses:
            return record
        time.sleep(0.2)
    pytest.fail(f"job {job_id} did not reach {statuses} in {timeout}s: {manager.get_job_status(job_id)}\n"
                f"log:\n{manager.get_log(job_id)}")
