"""How an exception is told to a person: its first line, short."""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The exception's first non-empty line, cut to `limit` characters; its type name when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
