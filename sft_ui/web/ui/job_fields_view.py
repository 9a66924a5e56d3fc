"""The selected job's added fields in the Jobs panel: metadata, tokens trained, estimated finish, tracker views."""

from pathlib import Path
from typing import Any

from sft_ui import tracking
from sft_ui.escaping import escape
from sft_ui.web.ui import views


def fields_markdown(record: dict[str, Any], data_root: Path) -> str:
    """Lines under the job's heading (escaped): metadata pairs, tokens, finish time, how to open its trackers."""
    lines = []
    facts = []
    if record.get("trained_tokens"):
        facts.append(f"{record['trained_tokens']:,} tokens trained")
    if record.get("estimated_finish"):
        facts.append(f"estimated finish {views.fmt_time(record['estimated_finish'])}")
    if facts:
        lines.append(" · ".join(facts))
    metadata = record.get("metadata") or {}
    if metadata:
        pairs = ", ".join(f"{escape(key)} = {escape(value)}" for key, value in metadata.items())
        lines.append(f"metadata: {pairs}")
    for line in tracking.views(record, data_root):
        lines.append(f"<code>{escape(line)}</code>")
    return "".join(f"\n\n{line}" for line in lines)
