"""The hash-chained record format of a :class:`~sealstore.audit.JsonlAuditLog`.

Encoding an event as a sealed line, decoding a line, and checking a line and its place in
the chain, with no file I/O: ``docs/audit.md`` specifies the format this implements.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Final, TypeVar

import attrs

from sealstore.audit.events import AuditEvent, Operation, Outcome
from sealstore.errors import AuditLogError

__all__ = [
    "GENESIS_HASH",
    "MAX_RECORD_SIZE",
    "RECORD_VERSION",
    "BadRecord",
    "check_in_chain",
    "decode",
    "event_fields",
    "seal",
    "sha256",
]

MAX_RECORD_SIZE: Final = 65536
"""Bytes in one record of a :class:`JsonlAuditLog`, not counting its newline."""
GENESIS_HASH: Final = "0" * 64
"""The ``prev`` of the first record of a :class:`JsonlAuditLog`."""
RECORD_VERSION: Final = 1
"""The ``v`` field of every record this version of sealstore writes."""


def _format_time(value: datetime) -> str:
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


_TIME: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z", re.ASCII)
_HEX_HASH: Final = re.compile(r"[0-9a-f]{64}", re.ASCII)


def _parse_time(text: str) -> datetime:
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError("time is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    year, month, day, hour, minute, second, micro = map(int, match.groups())
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone.utc)


def event_fields(event: AuditEvent) -> dict[str, object]:
    """The event's members of a record; :class:`~sealstore.audit.LoggingAuditSink` logs them."""
    return {
        "time": _format_time(event.time),
        "principal": event.principal,
        "operation": event.operation.value,
        "key_id": event.key_id,
        "key_version": event.key_version,
        "context_keys": list(event.context_keys),
        "outcome": event.outcome.value,
        "reason": event.reason,
    }


_RECORD_FIELDS: Final = frozenset(
    (
        "v",
        "seq",
        "prev",
        "hash",
        "time",
        "principal",
        "operation",
        "key_id",
        "key_version",
        "context_keys",
        "outcome",
        "reason",
    )
)


def _canonical(fields: Mapping[str, object]) -> bytes:
    # RFC 8785 (JCS) for these records: ASCII member names sorted, no whitespace, strings
    # escaping only '"', '\\' and control characters, integers in decimal, UTF-8.
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seal(event: AuditEvent, seq: int, prev: str) -> bytes:
    """The line (without its newline) recording ``event`` as record ``seq`` after ``prev``."""
    fields = {**event_fields(event), "v": RECORD_VERSION, "seq": seq, "prev": prev}
    fields["hash"] = sha256(_canonical(fields))
    line = _canonical(fields)
    if len(line) > MAX_RECORD_SIZE:
        raise AuditLogError(
            f"the audit record would be {len(line)} bytes; at most {MAX_RECORD_SIZE} are "
            "allowed: shorten the event's principal, key id, reason or context keys"
        )
    return line


@attrs.frozen
class _Record:
    event: AuditEvent
    seq: int
    prev: str
    hash: str
    fields: dict[str, object] = attrs.field(repr=False, eq=False)


class BadRecord(Exception):
    """A line that is not a well-formed record; the message says why."""


_E = TypeVar("_E", Operation, Outcome)


def _member(kind: type[_E], value: object, name: str) -> _E:
    # Enum's own error quotes the value; problems reported from a log never do.
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} is not one sealstore records") from None


def decode(line: bytes) -> _Record:
    """Parse one line (without its newline); the chain and the hash are not checked."""
    try:
        fields = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRecord("unparseable: not a line of UTF-8 JSON") from None
    if not isinstance(fields, dict) or fields.keys() != _RECORD_FIELDS:
        raise BadRecord("unparseable: not a JSON object with exactly the record's fields")
    seq, prev, digest = fields["seq"], fields["prev"], fields["hash"]
    if fields["v"] != RECORD_VERSION or type(fields["v"]) is not int:
        raise BadRecord(f"unparseable: the record version is not {RECORD_VERSION}")
    if type(seq) is not int or seq < 1:
        raise BadRecord("unparseable: seq is not a positive integer")
    for name, value in (("prev", prev), ("hash", digest)):
        if not isinstance(value, str) or _HEX_HASH.fullmatch(value) is None:
            raise BadRecord(f"unparseable: {name} is not 64 lowercase hex digits")
    try:
        keys = fields["context_keys"]
        if not isinstance(keys, list):
            raise TypeError("context_keys is not a list")
        time = fields["time"]
        if not isinstance(time, str):
            raise TypeError("time is not a string")
        event = AuditEvent(
            time=_parse_time(time),
            principal=fields["principal"],
            operation=_member(Operation, fields["operation"], "operation"),
            key_id=fields["key_id"],
            key_version=fields["key_version"],
            context_keys=keys,
            outcome=_member(Outcome, fields["outcome"], "outcome"),
            reason=fields["reason"],
        )
    except (TypeError, ValueError) as exc:
        raise BadRecord(f"unparseable: not a valid audit event ({exc})") from None
    return _Record(event=event, seq=seq, prev=prev, hash=digest, fields=fields)


def _check(line: bytes) -> _Record:
    """Parse one line and check that it is canonical and its own hash is right."""
    record = decode(line)
    if _canonical(record.fields) != line:
        raise BadRecord(
            "record edited: the line is not in canonical form (sorted keys, no whitespace)"
        )
    unhashed = {name: value for name, value in record.fields.items() if name != "hash"}
    if sha256(_canonical(unhashed)) != record.hash:
        raise BadRecord("record edited: its hash does not match its contents")
    return record


def check_in_chain(line: bytes, lineno: int, prev: str) -> None:
    """Raise :class:`BadRecord` unless ``line`` (with its newline) is record ``lineno``
    following a line that hashes to ``prev``."""
    if not line.endswith(b"\n"):
        raise BadRecord(
            f"line longer than the {MAX_RECORD_SIZE}-byte limit on a record"
            if len(line) > MAX_RECORD_SIZE
            else "incomplete record at the end of the log: a write was interrupted"
        )
    record = _check(line[:-1])
    if record.seq > lineno:
        raise BadRecord(
            f"sequence gap: expected record {lineno}, found record {record.seq}: records were "
            "deleted or reordered before this line"
        )
    if record.seq < lineno:
        raise BadRecord(
            f"sequence repeats: expected record {lineno}, found record {record.seq} again (as "
            f"on line {record.seq}): a record was inserted or records were reordered"
        )
    if record.prev != prev:
        raise BadRecord(
            "chain broken: the first record's prev is not the genesis value"
            if lineno == 1
            else f"chain broken: prev is not the hash of line {lineno - 1}: a record was "
            f"inserted, deleted or reordered here, or line {lineno - 1} was edited and re-hashed"
        )
