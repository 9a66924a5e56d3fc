"""What the Compare, Playground and Resources tabs compute and render (no process, no torch, no browser)."""

from __future__ import annotations

import json
from pathlib import Path

from sft_ui.builtin import builtin_rows
from sft_ui.config import BUILTIN_DATASET, SFTConfig
from sft_ui.playground import MAX_PROMPT_CHARS, examples, row_task
from sft_ui.web.ui import compare, playground, resources


def test_differences_are_the_fields_whose_values_are_not_all_equal_in_first_seen_order() -> None:
    a = SFTConfig(job_name="a", learning_rate=1e-3).model_dump()
    b = SFTConfig(job_name="b", learning_rate=5e-4, lora_r=32).model_dump()
    c = SFTConfig(job_name="c", learning_rate=1e-3).model_dump()
    found = compare.differences([a, b, c])
    assert a["lora_r"] != 32
    assert found == [("learning_rate", [1e-3, 5e-4, 1e-3]), ("lora_r", [a["lora_r"], 32, a["lora_r"]])]
    assert [field for field, _ in found] == [f for f in a if f in ("learning_rate", "lora_r")]  # the config's order
    assert compare.differences([a, dict(a, job_name="other")]) == []  # names differ always: the runs table has them
    assert compare.differences([a]) == []
    assert compare.differences([]) == []


def test_differences_compare_nested_values_and_count_a_missing_field_as_none() -> None:
    found = compare.differences([{"column_map": {"q": "instruction"}, "seed": 1},
                                 {"column_map": {"q": "instruction"}, "seed": 1, "extra": None},
                                 {"column_map": {"q": "prompt"}, "seed": 1, "extra": 3}])
    assert found == [("column_map", [{"q": "instruction"}, {"q": "instruction"}, {"q": "prompt"}]),
                     ("extra", [None, None, 3])]
    assert compare.differences([{"x": 1}, {"x": 1.0}]) == []  # the same number written two ways


def test_settings_table_shows_each_jobs_value_escaped_and_says_so_when_nothing_differs() -> None:
    records = [{"job_id": "aaa111", "name": "<b>one</b>", "config": {"learning_rate": 0.001, "job_name": "x"}},
               {"job_id": "bbb222", "name": "two", "config": {"learning_rate": 0.0005, "dataset_name": "<i>d</i>"}}]
    html = compare.settings_html(records)
    assert 'data-setting="learning&#95;rate"' in html and "0&#46;001" in html and "0&#46;0005" in html
    assert "<b>one</b>" not in html and "<i>d</i>" not in html  # names and values are text
    assert "—" in html  # dataset_name is missing from the first config
    same = [dict(r, config={"seed": 1}) for r in records]
    assert "same settings" in compare.settings_html(same)
    assert compare.settings_html(records[:1]) == ""


def test_a_runs_summary_is_its_last_logged_loss_best_eval_loss_steps_and_runtime() -> None:
    points = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0, "eval_loss": 2.5}, {"step": 3, "eval_loss": 2.2},
              {"step": 4, "loss": 1.5}, {"step": 4, "eval_loss": 2.4}]
    record = {"job_id": "j", "status": "completed", "progress": {"step": 4}, "result": {"runtime_seconds": 75.2},
              "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:00Z"}
    assert compare.summary(record, points) == {"final_loss": 1.5, "best_eval_loss": 2.2, "steps": 4, "runtime": 75.2}
    no_result = {**record, "result": None}
    assert compare.summary(no_result, [])["runtime"] == 60.0  # from its start to its end
    assert compare.summary({"job_id": "j", "status": "pending"}, []) == {
        "final_loss": None, "best_eval_loss": None, "steps": None, "runtime": None}
    assert (compare.fmt_seconds(8.44), compare.fmt_seconds(185), compare.fmt_seconds(None)) == ("8.4 s", "3m 05s", "")


def test_each_run_gets_its_own_color_and_dash_and_the_css_names_only_plain_ids() -> None:
    swatches = [compare.swatch(i) for i in range(10)]
    assert len(set(swatches)) == 10
    css = compare.line_css(["abc123", 'x"]{} body{display:none', "def456"])
    assert css.count("stroke-dasharray") == 2 and "display:none" not in css
    assert '[aria-label*="def456"]' in css and "stroke-dasharray: 2 3" in css  # the third run's pattern


def test_example_prompts_of_the_builtin_data_set_are_its_held_out_rows() -> None:
    held_out = builtin_rows("test")
    found = examples({"config": {"dataset_name": BUILTIN_DATASET}}, Path("/nonexistent"))
    assert found == list(dict.fromkeys((r["instruction"], r["input"]) for r in held_out))[:5]
    assert len(found) == 5
    assert not {r["instruction"] + r["input"] for r in builtin_rows("train")} & {a + b for a, b in found}


def test_example_prompts_of_a_local_file_are_its_first_rows_as_the_model_is_asked(tmp_path: Path) -> None:
    rows = [{"question": "What is 2+2?", "context": "math", "output": "4"},
            {"question": "What is 2+2?", "context": "math", "output": "four"},  # the same task once
            {"question": "Name a color.", "output": "red"}]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"dataset_name": "qa.jsonl", "column_map": {"question": "instruction", "context": "input"}}
    assert examples({"config": config}, tmp_path) == [("What is 2+2?", "math"), ("Name a color.", "")]
    assert examples({"config": config}, tmp_path, n=1) == [("What is 2+2?", "math")]
    for name in ("missing.jsonl", "../outside.jsonl", "org/hub-data-set"):
        assert examples({"config": {"dataset_name": name}}, tmp_path) == []
    (tmp_path / "broken.json").write_text("{not json")
    assert examples({"config": {"dataset_name": "broken.json"}}, tmp_path) == []


def test_row_task_reads_every_format_the_data_sets_use() -> None:
    assert row_task({"instruction": "Add", "input": "1 2", "output": "3"}) == ("Add", "1 2")
    assert row_task({"prompt": "Say hi", "completion": "hi"}) == ("Say hi", "")
    assert row_task({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                                  {"role": "assistant", "content": "Hello."}]}) == ("Hi?", "")
    parts = [{"type": "text", "text": "Look"}, {"type": "image"}, {"type": "text", "text": "here"}]
    assert row_task({"messages": [{"role": "user", "content": parts}]}) == ("Look\nhere", "")
    assert row_task({"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A"}]}) == ("Q?", "")
    long_text = "word " * 100
    prompt, _ = row_task({"text": long_text})
    assert len(prompt) <= 200 and long_text.startswith(prompt) and prompt.endswith("word")
    assert row_task({"text": "short"}) == ("short", "")
    assert row_task({"instruction": "x" * (MAX_PROMPT_CHARS + 5)})[0] == "x" * MAX_PROMPT_CHARS
    for empty in ({}, {"text": "  "}, {"messages": [{"role": "assistant", "content": "A"}]}, {"messages": "odd"}):
        assert row_task(empty) is None


def test_the_playground_picks_the_job_that_finished_last_and_remembers_ten_prompts() -> None:
    records = [{"job_id": "new", "finished_at": "2026-01-01T00:00:00Z"},
               {"job_id": "old", "finished_at": "2026-01-02T00:00:00Z"},
               {"job_id": "tie", "finished_at": "2026-01-02T00:00:00Z"}]
    assert playground.newest(records) == "old"  # finished last; on a tie the newer job (listed first)
    assert playground.newest([]) is None
    history: list[list[str]] = []
    for i in range(12):
        history = playground.remember(history, f"p{i}", "")
    assert [p for p, _ in history] == [f"p{i}" for i in range(11, 1, -1)]
    history = playground.remember(history, "p5", "")
    assert [p for p, _ in history][:2] == ["p5", "p11"] and len(history) == 10
    assert playground.label("Add\nthese", "1 2") == "Add these — 1 2"
    assert len(playground.label("x" * 500)) == 120


def test_the_resources_panel_names_each_holder_escaped_with_its_memory() -> None:
    snap = {"cpu_percent": 12.5, "cpu_count": 4, "memory": {"total_bytes": 8 << 30, "available_bytes": 6 << 30},
            "gpus": [{"index": 0, "name": "H200", "memory_used_bytes": 3 << 30, "memory_total_bytes": 141 << 30,
                      "utilization_percent": 87.0}],
            "processes": [{"holder": "job j1 (<b>mine</b>)", "pid": 42, "rss_bytes": 300 << 20}]}
    html = resources.panel_html(snap)
    assert 'data-value="12.5"' in html and "12.5 %" in html and "of 4 cores" in html
    assert "2.00 GiB</b> of 8.00 GiB" in html and "(25 %)" in html
    assert "<b>mine</b>" not in html and 'data-pid="42"' in html and "300 MiB" in html
    assert "3.00 GiB of 141 GiB" in html and "87 %" in html
    none = resources.panel_html({"cpu_percent": None, "memory": None, "gpus": [], "processes": []})
    assert "unknown" in none and "No GPU" in none
    assert [resources.fmt_bytes(n) for n in (None, 512, 2048, 15 << 20, 150 << 20)] == [
        "", "512 B", "2.00 KiB", "15.0 MiB", "150 MiB"]
