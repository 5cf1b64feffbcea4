"""The default clock. Everything that reads the time takes a ``clock`` argument instead of
calling ``datetime.now`` itself, so tests pass a fake clock rather than sleeping."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["utc_now"]


def utc_now() -> datetime:
    """The current time, as an aware datetime in UTC."""
    return datetime.now(timezone.utc)
