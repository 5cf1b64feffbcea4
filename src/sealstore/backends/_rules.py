"""What every backend accepts: object names, metadata and byte ranges, and how storage
errors about a name read.

A name is a non-empty ``/``-separated string of at most :data:`MAX_NAME_BYTES` UTF-8 bytes.
No segment is empty, ``.`` or ``..``, or starts with :data:`RESERVED_PREFIX` (backends keep
their temporary files under that prefix); no character is a control character or a backslash.
These rules make every name a safe relative path on a file system and a valid S3 key, so an
application that works on one backend works on all of them. Metadata follows S3's rules
(:func:`check_metadata`) on every backend that keeps it, for the same reason.
"""

from __future__ import annotations

import errno
import unicodedata
from collections.abc import Mapping
from typing import Final

from sealstore.errors import BackendError, InvalidNameError, ObjectNotFoundError

__all__ = [
    "MAX_METADATA_SIZE",
    "MAX_NAME_BYTES",
    "RESERVED_PREFIX",
    "check_metadata",
    "check_name",
    "check_range",
    "is_valid_name",
    "prefix_directory",
    "shown",
    "storage_error",
]

MAX_NAME_BYTES: Final = 1024
"""The longest name, in UTF-8 bytes: the longest key S3 accepts."""

RESERVED_PREFIX: Final = ".sealstore-"
"""Segments starting with this belong to the backends (temporary files), never to objects."""

MAX_METADATA_SIZE: Final = 2048
"""The most metadata bytes (keys and values) any backend keeps: S3's limit."""

_SHOWN_CHARS: Final = 80
_KEY_CHARACTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def shown(name: object) -> str:
    """``repr(name)``, cut short so that a huge name cannot flood a message."""
    text = repr(name)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _problem(name: object) -> str | None:
    """What is wrong with ``name``, or ``None`` when it is a valid object name."""
    if not isinstance(name, str):
        return f"names are str, not {type(name).__name__}"
    if not name:
        return "the name is empty"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "the name is not valid Unicode (it holds a lone surrogate)"
    if size > MAX_NAME_BYTES:
        return f"the name is {size} UTF-8 bytes long; the limit is {MAX_NAME_BYTES}"
    return _character_problem(name) or _segment_problem(name)


def _character_problem(name: str) -> str | None:
    if name.startswith("/"):
        return "the name starts with '/'; names are relative"
    if "\\" in name:
        return "the name holds a backslash; use '/' to separate segments"
    for char in name:
        if unicodedata.category(char) == "Cc":
            return f"the name holds the control character U+{ord(char):04X}"
    return None


def _segment_problem(name: str) -> str | None:
    for segment in name.split("/"):
        if not segment:
            return "the name has an empty segment ('//' or a trailing '/')"
        if segment in {".", ".."}:
            return f"the name has a {segment!r} segment"
        if segment.startswith(RESERVED_PREFIX):
            return f"segments starting with {RESERVED_PREFIX!r} are reserved for the backend"
    return None


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid object name; raise :class:`InvalidNameError` if not.

    >>> check_name("reports/2024/q1.pdf")
    'reports/2024/q1.pdf'
    >>> try:
    ...     check_name("../etc/passwd")
    ... except InvalidNameError as error:
    ...     print(error)
    invalid object name '../etc/passwd': the name has a '..' segment
    """
    problem = _problem(name)
    if problem is not None:
        raise InvalidNameError(f"invalid object name {shown(name)}: {problem}")
    return name


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a valid object name (listings skip anything else they find)."""
    return _problem(name) is None


def prefix_directory(prefix: str) -> str | None:
    """The ``/``-separated part of ``prefix`` before its last ``/``: "" when it has none.

    Every name starting with ``prefix`` lies under that directory. ``None`` means no valid
    name can start with ``prefix`` (its directory part is itself invalid), so a listing is
    empty without looking.

    >>> prefix_directory("logs/2024-0"), prefix_directory("logs"), prefix_directory("../x")
    ('logs', '', None)
    """
    if "/" not in prefix:
        return ""
    directory = prefix.rsplit("/", 1)[0]
    return directory if is_valid_name(directory) else None


def storage_error(error: OSError, operation: str, name: str, where: str) -> Exception:
    """The sealstore error for an ``OSError`` met while doing ``operation`` on ``name``.

    A missing file becomes :class:`ObjectNotFoundError`, a path component too long for the
    file system :class:`InvalidNameError`, anything else :class:`BackendError`. The
    message names the operation, the object and the storage, never any data.
    """
    if isinstance(error, FileNotFoundError):
        return ObjectNotFoundError(f"no object named {shown(name)} in {where}")
    if error.errno == errno.ENAMETOOLONG:
        return InvalidNameError(
            f"invalid object name {shown(name)}: a segment is longer than {where} allows "
            "(most file systems allow 255 bytes per segment)"
        )
    reason = error.strerror or type(error).__name__
    return BackendError(f"cannot {operation} {shown(name)} in {where}: {reason}")


def refuse_if_match(backend: object, if_match: str | None) -> None:
    """For backends without etags: a request conditional on one cannot be honoured."""
    if if_match is not None:
        raise BackendError(
            f"{backend!r} keeps no etags: a request conditional on one cannot be made"
        )


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of ``metadata`` if S3 would store it unchanged; :class:`ValueError` if not.

    Keys are non-empty lowercase ASCII letters, digits, ``-``, ``_`` and ``.`` (S3 lowercases
    keys); values are printable ASCII; keys and values together are at most
    :data:`MAX_METADATA_SIZE` bytes. Messages name keys, never values.

    >>> check_metadata({"content-kind": "report"})
    {'content-kind': 'report'}
    """
    if metadata is None:
        return {}
    kept: dict[str, str] = {}
    total = 0
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or not set(key) <= _KEY_CHARACTERS:
            raise ValueError(
                f"metadata key {shown(key)} is not allowed: use lowercase ASCII letters, "
                "digits, '-', '_' and '.'"
            )
        if not isinstance(value, str) or not (value.isascii() and value.isprintable()):
            raise ValueError(f"the value of metadata key {key!r} must be printable ASCII text")
        total += len(key) + len(value)
        kept[key] = value
    if total > MAX_METADATA_SIZE:
        raise ValueError(
            f"metadata is {total} bytes (keys and values); the limit is {MAX_METADATA_SIZE}"
        )
    return kept


def check_range(start: int, end: int | None) -> None:
    """Refuse a byte range no object could have, with :class:`ValueError`.

    >>> check_range(10, 5)
    Traceback (most recent call last):
    ...
    ValueError: byte range end (5) is before its start (10)
    """
    if start < 0:
        raise ValueError(f"byte range start is {start}; it must be 0 or more")
    if end is not None and end < start:
        raise ValueError(f"byte range end ({end}) is before its start ({start})")
