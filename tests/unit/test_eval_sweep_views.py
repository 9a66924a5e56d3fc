"""The UI's pure parts of issue 16: the eval loss series, the Evaluation block (hostile text escaped), the samples
table and its incremental buffer, the Train tab's sweep rows and "Start N jobs", and the sweep ranking table; and
Start with sweep rows on a manager whose jobs never start."""

from __future__ import annotations

import html
import re

import pytest

from sft_ui.config import SFTConfig
from sft_ui.manager import JobManager
from sft_ui.web.ui import eval_views, form, sweep_views, train, train_sweep, views

SPECS = [spec for group in form.form_specs().values() for spec in group]
LABELS = form.labels(SPECS)
HOSTILE = '<script>alert(1)</script> **bold** [link](http://x) $x$ & "quote"'


def text_of(markup: str) -> str:
    """What a browser shows of `markup`: tags dropped, references resolved."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def sample(step: int, index: int, answer: str, reference: str | None = "ref") -> dict:
    return {"step": step, "index": index, "prompt": f"prompt {index}", "reference": reference, "answer": answer,
            "seconds": 0.01}


# --- the eval loss series ---
def test_the_eval_loss_is_its_own_series_only_when_the_job_has_eval_points() -> None:
    buf = views.MetricsBuffer("j")
    buf.add([{"step": s, "loss": 3.0 / s} for s in range(1, 5)])
    assert buf.legend() == ["train"]
    buf.add([{"step": 4, "eval_loss": 1.5, "eval_mean_token_accuracy": 0.4}, {"step": 5, "loss": 0.5}])
    assert buf.legend() == ["train", "eval loss"]
    frame = buf.loss_frame()
    evals = frame[frame["series"] == "eval loss"].dropna(subset=["loss"])
    assert evals[["step", "loss"]].values.tolist() == [[4.0, 1.5]]
    assert views.LOSS_COLORS["eval loss"] != views.LOSS_COLORS["train"]
    assert buf.eval_accuracy == [(4, 0.4)]


# --- the Evaluation block ---
RESULT = {
    "eval_loss": 1.2934, "perplexity": 3.644, "evaluations": 15, "eval_seconds": 9.153,
    "best": {"metric": "eval_loss", "value": 1.29, "step": 300, "kept": True},
    "early_stop": {"stopped": True, "reason": f"eval_loss did not improve {HOSTILE}", "patience": 2},
    "samples": {"prompts": 3, "rounds": 16, "seconds": 0.8, "seconds_per_round": 0.05},
    "score": {"rows": 100, "exact_match": 0.64, "f1": 0.6612, "base_exact_match": 0.0, "base_f1": 0.02,
              "seconds": 1.16, "summary": HOSTILE,
              "examples": [{"prompt": HOSTILE, "reference": "moon moon", "answer": "moon moon",
                            "base_answer": HOSTILE}]},
}


def test_the_evaluation_block_says_score_loss_best_early_stop_and_cost() -> None:
    shown = text_of(eval_views.evaluation_html(RESULT))
    assert "Score: exact match 0.64 (base 0.00) on 100 rows; F1 0.66 (base 0.02)" in shown
    assert "Eval loss 1.293 · perplexity 3.644 (of the saved model)" in shown
    assert "Best eval loss 1.29 at step 300; kept as the job's model" in shown
    assert f"Stopped early: eval_loss did not improve {HOSTILE}" in shown
    assert "Cost: evaluation 9.15 s (15 evaluations); samples 0.05 s per round (16 rounds of 3 prompts); " \
           "score 1.16 s" in shown
    not_kept = eval_views.evaluation_html({**RESULT, "best": {**RESULT["best"], "kept": False}, "early_stop": None})
    assert "not kept: the saved model is the last step's" in text_of(not_kept)
    assert "Stopped early" not in text_of(not_kept)
    accuracy = {"best": {"metric": "eval_mean_token_accuracy", "value": 0.51, "step": 20, "kept": False}}
    assert "Best eval token accuracy 0.51 at step 20" in text_of(eval_views.evaluation_html(accuracy))


def test_the_evaluation_block_escapes_what_people_and_models_wrote() -> None:
    markup = eval_views.evaluation_html(RESULT)
    assert "<script>" not in markup and "**bold**" not in markup and "[link]" not in markup and "$x$" not in markup
    assert text_of(markup).count(HOSTILE) == 3  # the early stop reason, the example's prompt and base answer


def test_the_evaluation_block_is_empty_without_evaluation_and_live_while_running() -> None:
    assert eval_views.evaluation_html(None) == "" and eval_views.evaluation_html({"final_loss": 1.0}) == ""
    points = [(10, 2.5), (20, 2.1), (30, 2.3)]
    live = eval_views.live_eval_text(points, points, "eval_loss")
    assert live == "Eval loss 2.3 at step 30 (3 evaluations); best eval loss so far 2.1 at step 20"
    accuracy = eval_views.live_eval_text(points, [(10, 0.3), (20, 0.5), (30, 0.4)], "eval_mean_token_accuracy")
    assert accuracy.endswith("best eval token accuracy so far 0.5 at step 20")
    assert "Eval loss 2.3 at step 30" in text_of(eval_views.evaluation_html(None, live))
    assert eval_views.live_eval_text([], [], "eval_loss") == ""


# --- samples ---
def test_the_samples_table_has_a_row_per_prompt_and_a_column_per_step_with_the_reference() -> None:
    lines = [sample(step, index, f"answer {index}@{step}") for step in (0, 5, 10) for index in (0, 1)]
    markup = eval_views.samples_table_html(lines)
    heads = re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", markup)
    assert heads == ["prompt", "reference", "step 0", "step 5", "step 10"]
    rows = re.findall(r'<tr data-index="(\d+)">(.*?)</tr>', markup)
    assert [index for index, _ in rows] == ["0", "1"]
    assert [text_of(cell) for cell in re.findall(r"<td[^>]*>.*?</td>", rows[1][1])] == [
        "prompt 1", "ref", "answer 1@0", "answer 1@5", "answer 1@10"]
    no_reference = eval_views.samples_table_html([sample(1, 0, "a", reference=None)])
    assert "reference" not in re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", no_reference)
    assert eval_views.samples_table_html([]) == ""


def test_the_samples_table_shows_the_first_and_the_latest_steps_and_escapes_answers() -> None:
    lines = [sample(step, 0, HOSTILE if step == 90 else "x") for step in range(0, 100, 10)]
    markup = eval_views.samples_table_html(lines, total_steps=10)
    assert re.findall(r'<th[^>]*data-step="(\d+)"', markup) == ["0", "50", "60", "70", "80", "90"]
    assert "the first and the latest 5 of 10 sample steps" in text_of(markup)
    assert "<script>" not in markup and HOSTILE in text_of(markup)


def test_the_samples_buffer_reads_only_new_lines_and_keeps_the_steps_it_shows() -> None:
    buf = eval_views.SamplesBuffer(max_columns=3)
    assert buf.since() is None
    assert buf.add([sample(0, 0, "a"), sample(0, 1, "b"), sample(5, 0, "c")])
    assert buf.since() == 4  # one step back: the rest of step 5's round is still read
    assert buf.add([sample(5, 0, "c"), sample(5, 1, "d")])
    assert not buf.add([sample(5, 0, "c"), sample(5, 1, "d")])
    buf.add([sample(10, 0, "e"), sample(15, 0, "f")])
    assert sorted({line["step"] for line in buf.lines()}) == [0, 10, 15] and buf.steps == {0, 5, 10, 15}


# --- sweep rows and Start ---
def test_start_counts_the_jobs_of_the_filled_rows() -> None:
    assert sweep_views.start_label(sweep_views.grid_size([("", ""), (None, None)])) == "Start training"
    rows = [("learning_rate", "1e-4, 3e-4"), ("lora_r", "4, 8,"), ("", "")]
    assert sweep_views.grid_size(rows) == 4 and sweep_views.start_label(4) == "Start 4 jobs"
    assert sweep_views.grid_size([("lora_r", "4, 8, 16"), ("seed", "1, 2"), ("batch_size", "")]) == 6
    assert sweep_views.start_label(sweep_views.grid_size([("lora_r", "8")])) == "Start 1 job"
    assert "2 × 2 = 4 jobs: Learning rate 1e-4, 3e-4; LoRA rank 4, 8" in text_of(
        sweep_views.rows_summary(SPECS, rows, 32))
    assert "at most 3 jobs" in sweep_views.rows_summary(SPECS, rows, 3)
    assert text_of(sweep_views.rows_summary(SPECS, [("lora_r", "4, 8, 16")], 32)) == "3 jobs: LoRA rank 4, 8, 16"
    assert sweep_views.rows_summary(SPECS, [("", "4")], 32) == ""


def test_the_sweep_rows_read_as_a_grid_and_name_row_field_and_value_when_wrong() -> None:
    names = {spec.name for spec in sweep_views.sweepable(SPECS)}
    assert {"learning_rate", "lora_r", "lr_scheduler_type", "use_lora"} <= names
    assert not names & {"metric_for_best", "job_name", "dataset_name", "sample_prompts", form.TRAIN_FOR}
    grid, errors = sweep_views.read_rows(SPECS, [("learning_rate", "1e-4, 3e-4"), ("use_lora", "on, off"),
                                                 ("lr_scheduler_type", "cosine")])
    assert (grid, errors) == ({"learning_rate": [1e-4, 3e-4], "use_lora": [True, False],
                               "lr_scheduler_type": ["cosine"]}, [])
    _, errors = sweep_views.read_rows(SPECS, [("learning_rate", "1e-4, fast"), ("lora_r", "8, 8.5, 8"),
                                              ("", "3")])
    assert [e.line(LABELS) for e in errors] == [
        "Sweep row 1, Learning rate: “fast” must be a number",
        "Sweep row 2, LoRA rank: “8.5” must be a whole number",
        "Sweep row 2, LoRA rank: “8” appears twice",
        "Sweep row 3: pick the field to vary with 3"]
    _, errors = sweep_views.read_rows(SPECS, [("lora_r", ""), ("seed", "1"), ("lr_scheduler_type", "fast")])
    assert [e.line(LABELS) for e in errors][0] == "Sweep row 1, LoRA rank: type its values, separated by commas"
    assert errors[1].message.startswith("Sweep row 3, LR scheduler type: “fast” is not one of linear, cosine")
    _, errors = sweep_views.read_rows(SPECS, [("lora_r", "4"), ("lora_r", "8")])
    assert [e.line(LABELS) for e in errors] == ["Sweep row 2, LoRA rank: the field is already varied in another row"]


def test_each_grid_point_is_checked_as_a_config_naming_field_and_value() -> None:
    config = form.form_to_config(SPECS, [spec.default for spec in SPECS])
    errors = train_sweep.point_errors(SPECS, config, {"learning_rate": [1e-4, 2.0], "lora_r": [8, 0]})
    assert [e.line(LABELS) for e in errors] == ["Sweep, LoRA rank = 0: must be at least 1 (got 0)",
                                                "Sweep, Learning rate = 2: must be at most 1 (got 2)"]
    assert train_sweep.point_errors(SPECS, config, {"learning_rate": [1e-4]}) == []
    refused = sweep_views.plan_errors(ValueError("grid.lora_r: 8 appears twice; config.max_steps: bad; other"), LABELS)
    assert [(e.field, e.line(LABELS)) for e in refused] == [
        (None, "Sweep, LoRA rank: 8 appears twice"), ("max_steps", "Max steps: bad"), (None, "Other")]


def test_start_with_sweep_rows_creates_the_sweep_or_refuses_naming_the_value(quiet: JobManager) -> None:
    values = form.config_to_form(SPECS, {"max_steps": 8, "eval_split": 0.2})
    bad = train.start_sweep(quiet, SPECS, tuple(values), {}, [("learning_rate", "1e-4, 5"), ("lora_r", "4, 8")])
    assert "Sweep, Learning rate = 5: must be at most 1 (got 5)" in text_of(bad[0]) and bad[-1] is None
    assert quiet.list_jobs() == []  # nothing was created
    made = train.start_sweep(quiet, SPECS, tuple(values), {}, [("learning_rate", "1e-4, 3e-4"), ("lora_r", "4, 8")])
    sweep_id = made[-1]["sweep_id"]
    assert f"Sweep {sweep_id} started: 4 jobs queued" in text_of(made[0])
    jobs = [job for job in quiet.list_jobs() if job.get("sweep_id") == sweep_id]
    assert len(jobs) == 4 and {(j["config"]["learning_rate"], j["config"]["lora_r"]) for j in jobs} == {
        (1e-4, 4), (1e-4, 8), (3e-4, 4), (3e-4, 8)}
    assert all(SFTConfig(**j["config"]).max_steps == 8 for j in jobs)


# --- the ranking ---
def test_the_ranking_table_keeps_the_sweeps_order_marks_the_best_and_escapes_names() -> None:
    jobs = [{"job_id": "b2", "name": f"second {HOSTILE}", "status": "completed", "point": {"learning_rate": 3e-4,
             "lora_r": 8}, "rank": 1, "best": True, "best_eval": {"value": 1.234, "step": 8}, "final_loss": 2.5,
             "score": {"exact_match": 0.5, "base_exact_match": 0.0}, "step": 8, "total_steps": 8},
            {"job_id": "a1", "name": "first", "status": "running", "point": {"learning_rate": 1e-4, "lora_r": 4},
             "rank": 2, "best": False, "best_eval": None, "final_loss": 3.1, "score": None, "step": 3,
             "total_steps": 8}]
    sweep = {"sweep_id": "s1", "name": "demo", "fields": ["learning_rate", "lora_r"], "metric": "eval_loss",
             "jobs": jobs, "job_ids": ["a1", "b2"]}
    markup = sweep_views.ranking_html(sweep, LABELS)
    assert re.findall(r'<tr data-job="(\w+)" data-rank="(\d)" data-best="(\w+)"', markup) == [
        ("b2", "1", "true"), ("a1", "2", "false")]
    assert re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", markup) == [
        "rank", "job", "Learning rate", "LoRA rank", "status", "best eval loss", "final train loss", "exact match"]
    first, second = (text_of(row) for row in re.findall(r"<tr data-job.*?</tr>", markup))
    assert "1 ★ best" in first and "0.0003" in first and "1.234 at step 8" in first and "0.50 (base 0.00)" in first
    assert "running 3/8" in second and "★" not in second
    assert "<script>" not in markup and HOSTILE in text_of(markup)
    assert "Best so far: second" in text_of(sweep_views.ranking_caption(sweep))


@pytest.mark.parametrize("metric, header", [("eval_loss", "best eval loss"),
                                            ("eval_mean_token_accuracy", "best eval token accuracy")])
def test_the_ranking_names_the_sweeps_metric(metric: str, header: str) -> None:
    sweep = {"sweep_id": "s", "fields": [], "metric": metric, "jobs": [
        {"job_id": "a", "name": "a", "status": "pending", "rank": 1, "best": False}]}
    assert header in re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", sweep_views.ranking_html(sweep, LABELS))
