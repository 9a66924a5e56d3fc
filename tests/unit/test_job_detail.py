"""The Jobs tab's pure parts: the shown log, loss smoothing, phase durations, the failure card, the metrics table,
the phone's cards and which actions a job allows."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from sft_ui.web.ui import common, job_detail, jobs_actions, views
from sft_ui.web.ui.job_detail import ema, error_card, filter_log, phase_durations, phases_text

LOG = (
    "[sft-ui] loading_model\n"
    "Map: 100%|██████████| 1156/1156 [00:00<00:00, 9000.12 examples/s]\n"
    "\r  0%|          | 0/30 [00:00<?, ?it/s]\r  3%|▎         | 1/30 [00:00<00:05,  5.1it/s]\r 10%|█         | 3/30 "
    "[00:00<00:02, 11.2it/s]\n"
    "{'loss': 3.1, 'grad_norm': 6.6, 'learning_rate': 0.001, 'epoch': 0.01}\n"
    "{'train_runtime': 1.7, 'train_samples_per_second': 70.1, 'train_loss': 3.6, 'epoch': 0.2}\n"
    "Tokenizing train dataset: 40%|████      | 400/1000 [00:01<00:01]\r"
    "Tokenizing train dataset: 100%|██████████| 1000/1000 [00:02<00:00]\n"
    "warning: something a person should read\n"
    "100%|██████████| 30/30 [00:02<00:00, 12.0it/s]\n"
    "[sft-ui] saving\n"
)

TRACE = (
    "[sft-ui] loading_data\n"
    "Traceback (most recent call last):\n"
    '  File "a.py", line 1, in <module>\n'
    "KeyError: 'x'\n"
    "\n"
    "During handling of the above exception, another exception occurred:\n"
    "\n"
    "Traceback (most recent call last):\n"
    '  File "b.py", line 2, in <module>\n'
    "ValueError: dataset_name: <b>bad</b> & worse\n"
    "[sft-ui] finished: failed: dataset_name: <b>bad</b> & worse\n"
)


def test_the_shown_log_leaves_out_progress_bars_and_raw_dicts() -> None:
    shown = filter_log(LOG)
    assert shown.split("\n") == ["[sft-ui] loading_model", "warning: something a person should read",
                                 "[sft-ui] saving"]


def test_the_shown_log_keeps_the_text_a_carriage_return_ends_on_and_the_last_lines() -> None:
    assert filter_log(" 10%|█  | 3/30 [00:01<00:02]\rdone: saved\n") == "done: saved"
    assert filter_log("\n".join(f"line {i}" for i in range(200)), max_lines=3) == "line 197\nline 198\nline 199"
    assert filter_log("a\n\n\n\nb") == "a\n\nb"  # runs of blank lines fold to one


def test_the_last_traceback_keeps_its_chain_and_stops_at_the_next_sft_ui_line() -> None:
    trace = job_detail.last_traceback(LOG + TRACE)
    assert trace.startswith("Traceback (most recent call last):\n  File \"a.py\"")
    assert trace.endswith("ValueError: dataset_name: <b>bad</b> & worse")
    assert "[sft-ui]" not in trace
    assert job_detail.last_traceback(LOG) == ""


def test_ema_smooths_with_a_bias_corrected_start() -> None:
    assert ema([1.0, 2.0, 3.0], 0) == [1.0, 2.0, 3.0]
    smooth = ema([4.0, 4.0, 4.0], 0.9)
    assert smooth == pytest.approx([4.0, 4.0, 4.0])  # a constant stays itself: no pull towards 0 at the start
    steps = ema([0.0, 10.0], 0.5)
    assert steps[0] == 0.0
    assert steps[1] == pytest.approx(10 * 0.5 / (1 - 0.25))
    noisy = [3.0, 1.0] * 50
    assert max(ema(noisy, 0.95)[20:]) - min(ema(noisy, 0.95)[20:]) < 0.3 < max(noisy) - min(noisy)


def test_phase_durations_are_differences_of_the_recorded_begin_times() -> None:
    # What the worker stores (StatusReporter.phase_seconds): when each phase BEGAN, and when the job finished.
    recorded = {"loading_model": 0.5, "loading_data": 3.6, "training": 4.0, "saving": 22.0, "finished": 22.4}
    durations = phase_durations(recorded)
    assert [name for name, _ in durations] == ["starting", "loading model", "loading data", "training", "saving"]
    assert [round(seconds, 1) for _, seconds in durations] == [0.5, 3.1, 0.4, 18.0, 0.4]
    assert phases_text(recorded) == ("starting 0.5 s, loading model 3.1 s, loading data 0.4 s, training 18.0 s, "
                                     "saving 0.4 s")
    assert phase_durations(None) == []
    assert phase_durations({"finished": 3.0}) == []
    shown = job_detail.result_view({"final_loss": 0.5, "phase_seconds": recorded})
    assert shown is not None
    assert "phase_seconds" not in shown
    assert shown["phase_durations"]["saving"] == "0.4 s"


def test_the_failure_card_escapes_the_cause_and_folds_the_traceback() -> None:
    error = "dataset_name: <b>bad</b> & worse"
    card = error_card(error, TRACE, resumable=True, fields=("dataset_name",))
    assert "<b>bad</b>" not in card
    assert "<details" in card and "open" not in card.split("<details", 1)[1].split(">", 1)[0]
    text = html.unescape(re.sub(r"<[^>]+>", "", card))
    assert "Failed: dataset_name: <b>bad</b> & worse" in text
    assert "change dataset_name in the form" in text
    assert "Resume" in text
    assert "ValueError" in text and "KeyError" in text
    assert error_card(None, TRACE) == ""
    assert "<details" not in error_card("boom", "")  # no traceback in the log: nothing to fold


@pytest.mark.parametrize(("error", "advice"), [
    ("out of memory: lower batch_size", "smaller"),
    ("dataset_name: file not found under the data root: x.jsonl", "Upload the file in the Data tab"),
    ("base_model: cannot download gpt2: the Hugging Face Hub is offline", "Hub"),
    ("interrupted: the server stopped while it ran", "server stopped"),
    ("something odd", "traceback"),
])
def test_what_to_do_names_an_action(error: str, advice: str) -> None:
    assert advice in job_detail.what_to_do(error, fields=("dataset_name", "base_model"))


def test_the_metrics_table_shows_the_newest_points_with_tokens_per_second() -> None:
    points = [{"step": s, "loss": 1 / s, "learning_rate": 1e-3, "grad_norm": 2.0, "num_tokens": 100 * s,
               "time": 0.5 * s} for s in range(1, 31)]
    points.insert(10, {"step": 10, "eval_loss": 0.7, "time": 5.1})  # an eval point is not a row
    rows = job_detail.metric_rows(points)
    assert len(rows) == job_detail.METRICS_ROWS
    assert rows[-1] == ["30", "0.03333", "1.00e-03", "2", "200", "15.0 s"]
    assert job_detail.metric_rows([{"step": 1, "loss": None}])[0][1] == "nan"  # a diverged loss
    table = job_detail.metrics_table_html(points)
    assert re.findall(r'data-step="(\d+)"', table)[-1] == "30"
    assert "No training step" in job_detail.metrics_table_html([])


def test_the_cards_escape_names_and_mark_the_selected_job() -> None:
    rows = views.table_rows([{"job_id": "abc", "name": "<img src=x>", "status": "running",
                              "progress": {"step": 3, "total_steps": 10}, "metrics": {"loss": 2.0}}])
    cards = job_detail.job_cards_html([dict(zip(views.TABLE_HEADERS, row, strict=True)) for row in rows], "abc")
    assert "<img" not in cards
    assert 'data-job="abc"' in cards
    assert "sft-card-selected" in cards
    assert "step 3/10" in cards and "loss 2" in cards


def test_a_job_allows_only_the_actions_that_can_work(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    (job_dir / "model").mkdir(parents=True)

    def allowed(status: str, **extra: object) -> set[str]:
        can = jobs_actions.allowed({"status": status, "job_dir": str(job_dir), **extra})
        return {name for name, ok in can.items() if ok}

    assert allowed("running") == {"stop", "reuse"}
    assert allowed("running", stop_requested=True) == {"reuse"}
    assert allowed("pending") == {"stop", "reuse"}
    assert allowed("completed") == {"reuse"}  # model/ holds no model yet
    (job_dir / "model" / "adapter_config.json").write_text("{}")
    assert allowed("completed") == {"try_it", "prepare", "push", "merge", "reuse"}
    assert allowed("running") == {"stop", "reuse"}  # a model of an earlier run is not offered while it runs
    checkpoint = job_dir / "checkpoints" / "checkpoint-10"
    checkpoint.mkdir(parents=True)
    assert "resume" not in allowed("stopped")  # an unfinished checkpoint (no trainer_state.json)
    (checkpoint / "trainer_state.json").write_text("{}")
    assert allowed("stopped") == {"resume", "try_it", "prepare", "push", "merge", "reuse"}
    assert "resume" in allowed("failed")
    assert "resume" not in allowed("completed")
    assert not any(jobs_actions.allowed(None).values())


def test_the_page_css_cuts_the_name_column() -> None:
    name = views.TABLE_HEADERS.index("name")
    assert f'[data-col="{name}"]' in common.CSS and f'[data-heading="{name}"]' in common.CSS
