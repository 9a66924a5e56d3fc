"""The UI's pure parts: the form generated from SFTConfig, presets, table rows, incremental plot data."""

from __future__ import annotations

import html
import math

import gradio as gr
import pytest

from sft_ui.config import SFTConfig, field_groups
from sft_ui.manager import JobManager
from sft_ui.playground import Playground
from sft_ui.presets import BUILTIN_PRESETS, preset_config
from sft_ui.web.gradio_api import API_NAMES
from sft_ui.web.ui import build_ui, form, jobs_panel, views

SPECS = [spec for group in form.form_specs().values() for spec in group]


def test_the_form_has_every_field_with_its_default_bounds_and_help() -> None:
    assert sorted(s.name for s in SPECS) == sorted([*SFTConfig.model_fields, form.TRAIN_FOR])
    # The essentials first, then the other fields in their groups (the Job group's one field is an essential).
    groups = form.form_specs()
    assert [s.name for s in groups[form.ESSENTIALS_GROUP]] == list(form.ESSENTIALS)
    assert list(groups) == [form.ESSENTIALS_GROUP, *[g for g, names in field_groups().items()
                                                     if set(names) - set(form.ESSENTIALS)]]
    by_name = {s.name: s for s in SPECS}
    assert by_name["max_steps"].info.endswith("[1 ≤ x ≤ 100,000]")
    assert (by_name["max_steps"].kind, by_name["max_steps"].optional) == ("int", False)  # None: Train for epochs
    assert by_name["learning_rate"].info == "Peak learning rate. [0 < x ≤ 1]"
    assert by_name["dataset_format"].choices == ("auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text")
    assert by_name["lora_r"].label == "LoRA rank"
    assert by_name["use_lora"].kind == "bool"


def test_the_default_form_is_the_default_config() -> None:
    values = [s.default for s in SPECS]
    assert SFTConfig(**form.form_to_config(SPECS, values)) == SFTConfig()
    assert form.config_to_form(SPECS, SFTConfig().model_dump()) == values


def test_form_values_convert_to_config_values() -> None:
    values = dict(zip([s.name for s in SPECS], [s.default for s in SPECS], strict=True))
    values.update(train_for=form.EPOCHS, max_samples=" 50 ", batch_size=4.0,
                  lora_target_modules="c_attn, c_proj\nc_fc,", job_name="  run 1 ")
    config = SFTConfig(**form.form_to_config(SPECS, list(values.values())))
    assert config.max_steps is None
    assert config.max_samples == 50
    assert config.batch_size == 4
    assert config.lora_target_modules == ["c_attn", "c_proj", "c_fc"]
    assert config.job_name == "run 1"
    back = dict(zip([s.name for s in SPECS], form.config_to_form(SPECS, config.model_dump()), strict=True))
    assert (back["train_for"], back["max_steps"]) == (form.EPOCHS, 200)  # shown at its default when epochs count
    assert back["max_samples"] == "50"
    assert back["lora_target_modules"] == "c_attn, c_proj, c_fc"


@pytest.mark.parametrize("name", list(BUILTIN_PRESETS))
def test_every_builtin_preset_is_a_valid_config(name: str) -> None:
    assert SFTConfig(**preset_config(name)).model_dump() == preset_config(name)
    assert form.config_to_form(SPECS, preset_config(name))


def test_table_rows_and_progress_text() -> None:
    record = {"job_id": "abc", "name": "run", "status": "running", "created_at": "2026-11-27T16:22:01Z",
              "config": {"base_model": "gpt2", "dataset_name": "tatsu-lab/alpaca"},
              "progress": {"step": 12, "total_steps": 200, "eta_seconds": 65}, "metrics": {"loss": 1.234567}}
    # Essentials first; the model, data set and times are in the job's detail panel.
    assert views.table_rows([record]) == [["running", "12/200", "1.235", "1m 05s", "run", "abc"]]
    html = views.progress_html(record)
    assert 'data-status="running"' in html
    assert "Step 12/200 · 6%" in html
    assert "ETA 1m 05s" in html
    queued = {**record, "status": "pending", "queue_position": 2}
    assert "position 2 in the queue" in views.progress_html(queued)
    assert views.table_rows([queued])[0][0] == "pending (#2 in queue)"
    assert views.fmt_eta(3725) == "1h 02m"
    assert views.fmt_eta(None) == ""
    done = {**record, "status": "completed", "metrics": {"eval_loss": 2.0}, "result": {"final_loss": 0.5}}
    assert views.table_rows([done])[0][2:4] == ["0.5", ""]  # last loss falls back to the final loss; no ETA


def test_metrics_buffer_reads_incrementally_without_losing_or_repeating_points() -> None:
    points = [{"step": s, "loss": 1 / s, "learning_rate": 0.1} for s in range(1, 6)]
    buf = views.MetricsBuffer("j")
    assert buf.since() is None
    assert buf.add(points[:3])
    assert buf.since() == 2  # one step back: a point logged late at step 3 is still read
    eval_point = {"step": 3, "eval_loss": 0.9}
    assert buf.add([p for p in [*points[:3], eval_point, *points[3:]] if p["step"] > buf.since()])
    assert not buf.add([p for p in [*points[:3], eval_point, *points[3:]] if p["step"] > buf.since()])
    assert [p[0] for p in buf.loss if p[2] == "train"] == [1, 2, 3, 4, 5]
    assert [p[:2] for p in buf.loss if p[2] == "eval loss"] == [(3, 0.9)]
    frame = buf.loss_frame()
    assert list(frame.columns) == ["step", "elapsed", "loss", "series"]
    assert frame["loss"].notna().sum() == 6
    assert set(frame["series"]) == set(views.LOSS_SERIES)  # a NaN row per series keeps the plot's colors stable
    assert buf.legend() == ["train", "eval loss"]  # but only the series with points are in the legend
    assert views.MetricsBuffer("k").legend() == ["train"]


def test_metrics_buffer_after_a_thinned_first_read_misses_no_point_at_the_last_step() -> None:
    history = [{"step": s, "loss": 1 / s} for s in range(1, 3001)] + [{"step": 3000, "eval_loss": 0.5}]
    buf = views.MetricsBuffer("j")
    assert buf.add(views.decimate(history))
    assert len(buf.loss) == views.MAX_PLOT_POINTS  # the eval point was left out
    later = [*history, {"step": 3001, "loss": 0.1}]
    assert buf.add([p for p in later if p["step"] > buf.since()])
    tail = sorted(p for p in buf.loss if p[0] >= 3000)
    assert tail == [(3000, 1 / 3000, "train"), (3000, 0.5, "eval loss"), (3001, 0.1, "train")]
    assert not buf.add([p for p in later if p["step"] > buf.since()])


def test_jobs_table_shows_the_newest_page_and_reads_nothing_when_nothing_changed(tmp_path) -> None:
    manager = JobManager(data_dir=tmp_path / "data").start()
    ids = [manager.create_job({"job_name": f"run {i:02d}"}) for i in range(60)]
    manager.stop_job(ids[0])
    first = jobs_panel.jobs_table(manager, "all", "")
    assert first is not None
    assert first.frame is not None
    assert first.choices is not None
    assert list(first.frame["name"]) == [f"run {i:02d}" for i in range(59, 9, -1)]  # the newest 50
    assert "newest 50 of 60" in first.label
    assert len(first.choices) == 60
    assert jobs_panel.jobs_table(manager, "all", first.sig) is None  # unchanged: no table, no pickers sent
    stopped = jobs_panel.jobs_table(manager, "stopped", "")
    assert stopped is not None
    assert list(stopped.frame["id"]) == [ids[0]]
    assert " of " not in stopped.label
    manager.store.update_job(ids[0], {"name": "oldest"})  # not on the page: only the pickers change
    after = jobs_panel.jobs_table(manager, "all", first.sig)
    assert after is not None
    assert after.frame is None
    assert (after.choices or [])[-1] == ("oldest · " + ids[0], ids[0])
    manager.delete_job(ids[0])
    deleted = jobs_panel.jobs_table(manager, "all", after.sig)
    assert deleted is not None
    assert "newest 50 of 59" in deleted.label
    assert len(deleted.choices or []) == 59


def test_plots_stay_under_the_point_limit() -> None:
    buf = views.MetricsBuffer("j")
    buf.add([{"step": s, "loss": 1.0, "learning_rate": 0.1} for s in range(1, 20_001)])
    frame = buf.loss_frame()
    steps = frame["step"].dropna().tolist()
    assert len(steps) == views.MAX_PLOT_POINTS
    assert steps[0] == 1
    assert steps[-1] == 20_000
    assert len(buf.lr_frame()) == views.MAX_PLOT_POINTS
    curves = {f"job{i}": [{"step": s, "loss": 1.0} for s in range(1, 5001)] for i in range(4)}
    assert views.compare_frame(curves)["loss"].notna().sum() <= views.MAX_PLOT_POINTS
    assert views.decimate([1, 2, 3]) == [1, 2, 3]
    assert math.isnan(views.plot_frame([], "loss", "job", ["a"])["step"][0])


def test_preview_html_marks_what_carries_the_loss() -> None:
    rows = [{"prompt": "Q: <hi>", "response": "A: yes", "text": "Q: <hi>A: yes", "tokens": 9, "loss_tokens": 3,
             "loss_on": "completion only", "truncated": False}]
    html = views.preview_html(rows)
    assert "9 tokens" in html
    assert "loss on 3 tokens" in html
    assert "&#60;hi&#62;" in html
    assert "<hi>" not in html
    assert 'title="response: carries the loss"' in html


def test_build_ui_touches_no_data_and_exposes_exactly_the_named_endpoints(tmp_path) -> None:
    manager = JobManager(data_dir=tmp_path / "data")
    demo = build_ui(manager, Playground(manager))
    assert isinstance(demo, gr.Blocks)
    assert not (tmp_path / "data").exists()  # building the page opens nothing and starts nothing
    public = sorted(fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public")
    assert public == sorted(API_NAMES)


def test_the_restore_banner_says_what_happened_and_escapes_the_reason() -> None:
    banner = views.restore_banner({"at": "2026-12-02T03:00:00Z", "reason": "sft_ui.json: <bad> line",
                                   "moved_aside": ["sft_ui.json.corrupt-1"], "configs_from": "sft_ui.json.bak",
                                   "configs": 2, "jobs_rebuilt": 5})
    assert "5 job records were rebuilt" in banner
    assert "2 saved configs came from sft&#95;ui&#46;json&#46;bak" in banner
    assert "<bad>" not in banner


def test_no_restore_no_banner() -> None:
    assert views.restore_banner(None) == ""


@pytest.mark.slow  # the preview loads the built-in tokenizer (and makes the model on an empty cache)
def test_the_train_tabs_preview_counts_rows_beside_them(quiet: JobManager) -> None:
    from sft_ui.web.ui import train

    values = form.config_to_form(SPECS, {**SFTConfig().model_dump(), "max_samples": 40})
    shown = html.unescape(train.preview(quiet, SPECS, tuple(values)))
    assert "rows: read 40, used 40" in shown
    assert "tokens per row" in shown


def test_the_restore_banner_counts_unreadable_journal_lines() -> None:
    banner = html.unescape(views.restore_banner({"at": "t", "reason": "r", "configs": 0, "jobs_rebuilt": 0,
                                                 "journal_lines_skipped": 2}))
    assert "2 unreadable journal line(s)" in banner


def test_the_job_pickers_list_only_the_newest_jobs(quiet: JobManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs_panel, "PICKER_JOBS", 3)
    ids = [quiet.create_job({"job_name": f"run {i}"}) for i in range(5)]
    update = jobs_panel.jobs_table(quiet, "all", "")
    assert update is not None
    assert [job_id for _, job_id in update.choices or []] == ids[:1:-1]
