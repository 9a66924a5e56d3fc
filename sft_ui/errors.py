"""The errors every layer shares (unknown thing, wrong state) and how an exception is told to a person."""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The exception's first non-empty line, cut to `limit` characters; its type name when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class NotFoundError(LookupError):
    """An unknown job, config, data set or model (HTTP 404)."""


class StateError(ValueError):
    """An operation the thing's state does not allow now, e.g. stopping a finished job (HTTP 400)."""
