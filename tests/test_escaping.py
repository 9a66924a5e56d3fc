"""Text people wrote reaches the page as text: the views' Markdown, rendered, holds no markup made from it."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from markdown_it import MarkdownIt

from sft_ui.escaping import escape
from sft_ui.web.ui import job_detail, views

HOSTILE = ["x`<img src=x onerror=alert(1)>`", "**bold**", "[link](javascript:alert(1))", "<b>b</b> $$x$$ ~~s~~"]


def render(markdown: str) -> str:
    """Markdown as a permissive renderer turns it into HTML (raw HTML on, every link target taken, like marked)."""
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md.render(markdown)


def markup_from(rendered: str) -> list[str]:
    """The tags in rendered HTML that can only have come from the hostile text."""
    return re.findall(r"<(?:img|a|strong|em|b|s|del)\b", rendered)


def text_of(rendered: str) -> str:
    """What a reader sees: the rendered HTML without tags, references decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered))


def record(**fields: Any) -> dict[str, Any]:
    """A failed job record whose name, model or data set is `fields`."""
    config = {"base_model": "gpt2", "dataset_name": "builtin:tasks"}
    config.update({k: v for k, v in fields.items() if k != "name"})
    return {"job_id": "abc123", "name": fields.get("name", "run"), "status": "failed", "config": config,
            "created_at": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize("text", HOSTILE[1:])  # the first was HTML-escaped before, but shown without its backticks
def test_the_job_summary_renders_no_markup_from_the_job_name(text: str) -> None:
    own = markup_from(render(views.summary_markdown(record())))  # the summary's own bold status
    assert markup_from(render(views.summary_markdown(record(name=text)))) == own


@pytest.mark.parametrize("text", HOSTILE)
def test_the_job_summary_shows_the_job_name_as_written(text: str) -> None:
    assert text in text_of(render(views.summary_markdown(record(name=text))))


@pytest.mark.parametrize("field", ["base_model", "dataset_name"])
def test_a_backtick_in_a_model_or_data_set_name_ends_no_code_span(field: str) -> None:
    own = markup_from(render(views.summary_markdown(record())))
    assert markup_from(render(views.summary_markdown(record(**{field: HOSTILE[0]})))) == own


@pytest.mark.parametrize("field", ["base_model", "dataset_name"])
def test_a_model_or_data_set_name_with_a_backtick_shows_as_written(field: str) -> None:
    assert HOSTILE[0] in text_of(render(views.summary_markdown(record(**{field: HOSTILE[0]}))))


@pytest.mark.parametrize("text", HOSTILE)
def test_the_failure_card_renders_no_markup_from_the_error(text: str) -> None:
    own = markup_from(render(job_detail.error_card("plain")))  # the card's own bold "Failed:", ...
    rendered = render(job_detail.error_card(f"dataset_name: file not found: {text}\nline two"))
    assert markup_from(rendered) == own


@pytest.mark.parametrize("text", HOSTILE)
def test_the_failure_card_shows_the_error_as_written(text: str) -> None:
    assert f"file not found: {text}" in text_of(render(job_detail.error_card(f"file not found: {text}")))


@pytest.mark.parametrize("text", [*HOSTILE, "# heading", "1. item", "> quote", "a | b\n--|--", "&amp; \\*"])
def test_escape_reads_the_same_in_html(text: str) -> None:
    assert html.unescape(escape(text)) == text
