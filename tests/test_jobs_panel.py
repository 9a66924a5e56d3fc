"""The Jobs tab's reads: the panel and the table row show one read of the job's record, the plots stop at its step,
and a pick that does not send the pickers leaves them to the next tick."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from sft_ui.manager import JobManager
from sft_ui.web.ui import jobs_panel, views


def running_job(manager: JobManager, step: int, logged: int) -> str:
    """A job recorded as running at `step` whose metrics file already holds `logged` points (logged ahead)."""
    job_id = manager.create_job({"job_name": "ahead", "max_steps": 50})
    manager.store.update_job(job_id, {"status": "running", "progress": {"step": step, "total_steps": 50}})
    job_dir = Path(manager.get_job_status(job_id)["job_dir"])
    lines = [json.dumps({"step": s, "loss": 3 - s / 100, "learning_rate": 1e-3, "num_tokens": 64 * s,
                         "time": 0.1 * s}) for s in range(1, logged + 1)]
    (job_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return job_id


def panel(outputs: list[Any]) -> dict[str, Any]:
    """refresh()'s panel outputs by name (the last three table outputs come first)."""
    return dict(zip(jobs_panel.PANEL, outputs[3:], strict=False))


def test_the_row_the_progress_line_and_the_plots_show_one_step(quiet: JobManager) -> None:
    job_id = running_job(quiet, step=7, logged=10)
    outputs = jobs_panel.refresh(quiet, "all", "", job_id, views.MetricsBuffer(), 0.0, "step", tick=False,
                                 pickers=False)
    frame, _sig, _cards = outputs[:3]
    row = frame.value["data"][0]
    assert row[views.TABLE_HEADERS.index("step")] == "7/50"
    shown = panel(outputs)
    assert "Step 7/50" in shown["progress"]
    buf = outputs[-1]
    assert buf.last_step == 7  # the points logged after the step this read shows wait for the next read
    assert shown["metrics"].count("data-step=") == 7
    assert 'data-step="7"' in shown["metrics"]
    quiet.store.update_job(job_id, {"progress": {"step": 10, "total_steps": 50}})
    later = jobs_panel.refresh(quiet, "all", outputs[1], job_id, buf, 0.0, "step", tick=True, pickers=True)
    assert later[-1].last_step == 10
    assert 'data-step="10"' in panel(later[2:])["metrics"]


def test_actions_follow_the_record(quiet: JobManager) -> None:
    job_id = running_job(quiet, step=3, logged=3)
    outputs = jobs_panel.refresh(quiet, "all", "", job_id, views.MetricsBuffer(), 0.0, "step", tick=False,
                                 pickers=False)
    shown = panel(outputs)
    assert shown["stop"].interactive is True
    assert shown["try_it"].interactive is False
    assert shown["resume"].interactive is False
    quiet.store.update_job(job_id, {"status": "failed", "error": "boom"})
    shown = panel(jobs_panel.refresh(quiet, "all", "", job_id, outputs[-1], 0.0, "step", tick=True,
                                     pickers=False))
    assert shown["stop"].interactive is False
    assert shown["error_box"].visible is True
    assert "boom" in shown["error_box"].value


def test_a_pick_leaves_the_pickers_to_the_next_tick(quiet: JobManager) -> None:
    first = jobs_panel.jobs_table(quiet, "all", "")
    assert first is not None
    job_id = quiet.create_job({"job_name": "new"})
    picked = jobs_panel.jobs_table(quiet, "all", first.sig, pickers=False)
    assert picked is not None
    assert picked.choices is None
    tick = jobs_panel.jobs_table(quiet, "all", picked.sig)
    assert tick is not None
    assert [value for _, value in tick.pick_choices or []] == [job_id]
    assert (tick.pick_choices or [])[0][0].startswith(job_id)  # the Jobs picker shows the id first
    assert jobs_panel.jobs_table(quiet, "all", tick.sig) is None


def test_no_job_empties_the_panel(quiet: JobManager) -> None:
    outputs = jobs_panel.refresh(quiet, "all", "", None, views.MetricsBuffer(), 0.0, "step", tick=False,
                                 pickers=False)
    shown = panel(outputs)
    assert shown["summary"] == jobs_panel.EMPTY_PANEL
    assert all(not shown[name].interactive for name in ("stop", "resume", "try_it", "reuse"))
    gone = panel(jobs_panel.refresh(quiet, "all", "", "0123456789ab", views.MetricsBuffer(), 0.0, "step",
                                    tick=False, pickers=False))
    assert "no longer exists" in gone["summary"]
    assert isinstance(outputs[-1], views.MetricsBuffer)
    assert not isinstance(outputs[0], type(gr.skip()))
