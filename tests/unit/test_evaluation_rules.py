"""The evaluation settings' rules and the answer grading (exact match, token F1), without training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from sft_ui import jobdir, resume
from sft_ui.config import SFTConfig, describe_errors
from sft_ui.worker.evaluation import exact_match, held_out_task, normalize, summary, token_f1
from tests.helpers import small_tokenizer


def refused(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        SFTConfig(**fields)
    return describe_errors(caught.value)


def test_early_stopping_needs_evaluations() -> None:
    assert "early_stopping_patience: needs evaluations" in refused(early_stopping_patience=2)


def test_keeping_the_best_model_needs_evaluations() -> None:
    assert "keep_best_model: needs evaluations" in refused(keep_best_model=True)


def test_auto_samples_need_held_out_rows_outside_the_builtin_data() -> None:
    assert 'sample_prompts: "auto" needs held-out rows' in refused(sample_prompts="auto", dataset_name="mine.jsonl")


def test_auto_samples_use_the_builtin_test_split() -> None:
    assert SFTConfig(sample_prompts="auto").sample_prompts == ["auto"]


def test_eval_split_and_eval_dataset_exclude_each_other() -> None:
    assert "choose one source of held-out rows" in refused(eval_split=0.1, eval_dataset="held.jsonl")


def test_eval_steps_beyond_max_steps_are_refused() -> None:
    assert "eval_steps (300) is larger than max_steps (200)" in refused(eval_split=0.1, eval_steps=300)


def test_sample_prompts_from_the_form_are_one_per_line() -> None:
    assert SFTConfig(sample_prompts="Say hi.\n\n  \nCount to three.\n").sample_prompts == ["Say hi.", "Count to three."]


def test_sample_prompts_from_the_api_may_span_lines() -> None:
    assert SFTConfig(sample_prompts=["Line one\nline two"]).sample_prompts == ["Line one\nline two"]


def test_auto_stands_alone() -> None:
    assert '"auto" stands alone' in refused(sample_prompts=["auto", "Say hi."])


def test_a_sample_prompt_with_a_control_character_is_refused() -> None:
    assert "sample_prompts" in refused(sample_prompts=["bad\x07bell"])


def test_more_than_eight_sample_prompts_are_refused() -> None:
    assert "sample_prompts" in refused(sample_prompts=[f"p{i}" for i in range(9)])


def test_normalize_drops_case_punctuation_and_articles() -> None:
    assert normalize("The  Cat, sat!") == ["cat", "sat"]


def test_exact_match_ignores_case_and_punctuation() -> None:
    assert exact_match("GOAT.", "goat")


def test_exact_match_needs_the_same_words() -> None:
    assert not exact_match("goat goat", "goat")


def test_token_f1_counts_shared_words() -> None:
    assert token_f1("ocean ocean ocean", "ocean ocean") == pytest.approx(0.8)


def test_token_f1_of_unrelated_answers_is_zero() -> None:
    assert token_f1("red", "blue") == 0.0


def test_the_summary_reads_tuned_against_base() -> None:
    line = summary({"rows": 204, "exact_match": 0.48, "base_exact_match": 0.0, "f1": 0.61, "base_f1": 0.1})
    assert line == "exact match 0.48 (base 0.00) on 204 rows; F1 0.61 (base 0.10)"


TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")


def test_a_prompt_completion_row_is_asked_its_prompt_and_graded_on_its_completion() -> None:
    tokenizer = small_tokenizer(TEMPLATE)
    task = held_out_task({"prompt": "Add one.\n", "completion": "3" + tokenizer.eos_token}, tokenizer)
    assert (task.prompt, task.reference) == ("Add one.\n", "3")


def test_a_conversation_is_asked_up_to_its_last_reply() -> None:
    tokenizer = small_tokenizer(TEMPLATE)
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
             {"role": "user", "content": "c"}, {"role": "assistant", "content": [{"type": "text", "text": "d"}]}]
    task = held_out_task({"messages": turns}, tokenizer)
    assert (task.prompt, task.reference) == ("<user>a<assistant>b<user>c<assistant>", "d")


def test_text_rows_and_tool_call_replies_have_nothing_to_grade() -> None:
    tokenizer = small_tokenizer(TEMPLATE)
    call = [{"role": "user", "content": "a"}, {"role": "assistant", "content": None, "tool_calls": []}]
    assert held_out_task({"text": "just text"}, tokenizer) is None
    assert held_out_task({"messages": call}, tokenizer) is None


def test_a_resume_drops_the_sample_answers_it_will_give_again(tmp_path: Path) -> None:
    lines = [{"step": step, "index": 0, "answer": str(step)} for step in (0, 2, 4, 6)]
    (tmp_path / jobdir.SAMPLES).write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    resume.clean(tmp_path, 4)  # the run goes on from checkpoint-4 and answers at step 4 first
    kept = [json.loads(line)["step"] for line in (tmp_path / jobdir.SAMPLES).read_text().splitlines()]
    assert kept == [0, 2]
