"""The audit trail: events, the hash-chained JSON lines log, and the logging and memory sinks.

The log's format is checked against an independent implementation of the definition in
``docs/audit.md`` (``_canonical`` and ``_sealed`` below), which also forges records for the
tampering tests.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final

import pytest
from typing_extensions import Buffer

from sealstore.audit import (
    GENESIS_HASH,
    MAX_RECORD_SIZE,
    AuditEvent,
    AuditLogError,
    AuditSink,
    JsonlAuditLog,
    LoggingAuditSink,
    LogHead,
    MemoryAuditSink,
    Operation,
    Outcome,
    VerificationResult,
)

T0: Final = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
FIELDS: Final = {
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
}
SECRET_VALUE: Final = "c2VjcmV0LWNvbnRleHQtdmFsdWUtZG8tbm90LWxvZw=="


def _event(n: int = 0, **changes: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "time": T0 + timedelta(seconds=n),
        "principal": "alice",
        "operation": Operation.UNWRAP,
        "key_id": "fake-key-0001",
        "key_version": str(n),
        "context_keys": ("bucket", "tenant"),
        "outcome": Outcome.SUCCESS,
        "reason": "",
    }
    fields.update(changes)
    return AuditEvent(**fields)


def _canonical(fields: Mapping[str, object]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sealed(fields: Mapping[str, object]) -> bytes:
    """A record line (with newline) whose own hash is right, as the documented definition says."""
    body = {name: value for name, value in fields.items() if name != "hash"}
    return _canonical({**body, "hash": _sha256(_canonical(body))}) + b"\n"


def _read(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def _fields(line: bytes) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(line)
    return fields


def _forged_chain(count: int) -> list[bytes]:
    """``count`` valid records built without sealstore."""
    lines: list[bytes] = []
    prev = GENESIS_HASH
    for seq in range(1, count + 1):
        line = _sealed(
            {
                "v": 1,
                "seq": seq,
                "prev": prev,
                "time": "2025-01-02T03:04:05.000000Z",
                "principal": "alice",
                "operation": "generate",
                "key_id": "fake-key-0001",
                "key_version": None,
                "context_keys": ["bucket"],
                "outcome": "success",
                "reason": "",
            }
        )
        lines.append(line)
        prev = _sha256(line[:-1])
    return lines


@pytest.fixture
def log(tmp_path: Path) -> JsonlAuditLog:
    """A log of five varied records."""
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    log.record(_event(1, operation=Operation.CREATE_KEY, key_version=None))
    log.record(_event(2, operation=Operation.GENERATE))
    log.record(_event(3, outcome=Outcome.DENIED, reason="policy denies unwrap", principal="eve"))
    log.record(_event(4, context_keys=()))
    log.record(_event(5, operation=Operation.ROTATE))
    return log


def _bad(result: VerificationResult, line: int, words: str) -> None:
    assert not result.ok
    assert result.first_bad_line == line
    assert result.records == line - 1
    assert words in result.problem


# Events.


def test_event_keeps_only_sorted_context_keys() -> None:
    """A context mapping given as context_keys keeps its keys, sorted, and never its values."""
    event = _event(context_keys={"tenant": SECRET_VALUE, "bucket": "orders"})
    assert event.context_keys == ("bucket", "tenant")
    assert SECRET_VALUE not in repr(event)
    assert _event(context_keys=["b", "a", "b"]).context_keys == ("a", "b")


def test_event_time_is_kept_in_utc() -> None:
    """An aware time in another zone is converted to UTC; the instant is unchanged."""
    local = datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    event = _event(time=local)
    assert event.time == local
    assert event.time.tzinfo is timezone.utc
    assert event.time.hour == 3


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"time": datetime(2025, 1, 2)}, ValueError, "timezone-aware"),
        ({"time": "2025-01-02"}, TypeError, "must be a datetime"),
        ({"principal": b"alice"}, TypeError, "principal must be a str"),
        ({"principal": "a" * 1025}, ValueError, "at most 1024"),
        ({"principal": "bad \ud800 surrogate"}, ValueError, "lone surrogate"),
        ({"key_id": "k" * 4097}, ValueError, "at most 4096"),
        ({"key_version": 3}, TypeError, "key_version must be a str"),
        ({"key_version": "v" * 257}, ValueError, "at most 256"),
        ({"reason": "r" * 1025}, ValueError, "reason is 1025 characters"),
        ({"operation": "unwrap"}, TypeError, "operation"),
        ({"outcome": "success"}, TypeError, "outcome"),
        ({"context_keys": "tenant"}, TypeError, "not one string"),
        ({"context_keys": [b"tenant"]}, TypeError, "context_keys must be a str"),
        ({"context_keys": [str(i) for i in range(2049)]}, ValueError, "more than 2048"),
        ({"context_keys": ["a" * 5000, "b" * 5000]}, ValueError, "8192 characters in all"),
    ],
)
def test_event_rejects_bad_fields(
    changes: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Wrong types, naive times, lone surrogates and over-long strings are refused."""
    with pytest.raises(error, match=match):
        _event(**changes)


def test_event_at_the_caps_is_accepted() -> None:
    """Strings exactly at their caps make a valid event."""
    event = _event(
        principal="p" * 1024,
        key_id="k" * 4096,
        key_version="v" * 256,
        reason="r" * 1024,
        context_keys=[f"{i:04d}" for i in range(2048)],
    )
    assert len(event.context_keys) == 2048


# The JSON lines log: format.


def test_append_and_read_back(log: JsonlAuditLog) -> None:
    """Recorded events read back equal, in order, and the log verifies."""
    expected = [
        _event(1, operation=Operation.CREATE_KEY, key_version=None),
        _event(2, operation=Operation.GENERATE),
        _event(3, outcome=Outcome.DENIED, reason="policy denies unwrap", principal="eve"),
        _event(4, context_keys=()),
        _event(5, operation=Operation.ROTATE),
    ]
    assert list(log.events()) == expected
    assert log.verify() == VerificationResult(ok=True, records=5, first_bad_line=None, problem="")


def test_records_follow_the_documented_definition(log: JsonlAuditLog) -> None:
    """Each line is canonical JSON with the documented fields, own hash and chained prev."""
    prev = GENESIS_HASH
    assert prev == "0" * 64
    for seq, line in enumerate(_read(log.path), start=1):
        fields = _fields(line)
        assert set(fields) == FIELDS
        assert fields["v"] == 1
        assert fields["seq"] == seq
        assert fields["prev"] == prev
        assert line == _canonical(fields) + b"\n"
        assert line == _sealed(fields)
        prev = _sha256(line[:-1])
    assert log.head() == LogHead(records=5, last_hash=prev)


def test_record_fields_hold_the_event(log: JsonlAuditLog) -> None:
    """A record's event fields are the event's, with the time as ISO-8601 UTC."""
    third = _fields(_read(log.path)[2])
    assert {name: third[name] for name in FIELDS - {"v", "seq", "prev", "hash"}} == {
        "time": "2025-01-02T03:04:08.678901Z",
        "principal": "eve",
        "operation": "unwrap",
        "key_id": "fake-key-0001",
        "key_version": "3",
        "context_keys": ["bucket", "tenant"],
        "outcome": "denied",
        "reason": "policy denies unwrap",
    }
    assert _fields(_read(log.path)[0])["key_version"] is None


def test_non_ascii_and_control_characters_round_trip(tmp_path: Path) -> None:
    """Unicode is written as UTF-8, control characters escaped, and both read back intact."""
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    event = _event(principal='zoë\n\t"q"\\', reason="😀\x00\x1f\u2028")
    log.record(event)
    line = log.path.read_bytes()
    assert line.count(b"\n") == 1
    assert "zoë".encode() in line
    assert b"\\u0000\\u001f" in line
    assert list(log.events()) == [event]
    assert line == _sealed(_fields(line))
    assert log.verify().ok


def test_empty_or_missing_log_verifies(tmp_path: Path) -> None:
    """A missing or empty log verifies with 0 records and reads back nothing."""
    missing = JsonlAuditLog(tmp_path / "missing.jsonl")
    assert missing.verify() == VerificationResult(
        ok=True, records=0, first_bad_line=None, problem=""
    )
    assert list(missing.events()) == []
    assert missing.head() == LogHead(records=0, last_hash=GENESIS_HASH)
    (tmp_path / "empty.jsonl").touch()
    empty = JsonlAuditLog(tmp_path / "empty.jsonl")
    assert empty.verify().ok
    assert empty.verify().records == 0
    assert list(empty.events()) == []
    assert empty.head().records == 0
    assert not (tmp_path / "missing.jsonl").exists()


def test_log_file_is_private(tmp_path: Path) -> None:
    """A new log file is readable and writable by its owner only."""
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    log.record(_event())
    assert log.path.stat().st_mode & 0o777 == 0o600
    assert repr(log) == f"JsonlAuditLog({str(log.path)!r})"


def test_head_anchors_the_log(log: JsonlAuditLog) -> None:
    """head() is the record count and last line's hash, which the next record chains on."""
    head = log.head()
    assert head.records == 5
    log.record(_event(6))
    assert _fields(_read(log.path)[-1])["prev"] == head.last_hash
    assert log.verify(anchor=head).ok
    assert log.verify(anchor=log.head()).records == 6
    assert log.verify(anchor=LogHead(records=0, last_hash=GENESIS_HASH)).ok


def test_append_reads_only_the_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Appending to a long log reads at most one record's worth of bytes from it."""
    path = tmp_path / "audit.jsonl"
    _write(path, _forged_chain(3000))
    assert path.stat().st_size > 4 * MAX_RECORD_SIZE
    read: list[int] = []
    real_pread, real_read = os.pread, os.read

    def pread(fd: int, size: int, offset: int) -> bytes:
        read.append(size)
        return real_pread(fd, size, offset)

    def plain_read(fd: int, size: int) -> bytes:
        read.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(os, "read", plain_read)
    JsonlAuditLog(path).record(_event())
    monkeypatch.undo()
    assert 0 < sum(read) <= MAX_RECORD_SIZE + 2
    assert JsonlAuditLog(path).verify().records == 3001


def test_long_last_record_is_found(tmp_path: Path) -> None:
    """A last record longer than the first tail window is still chained on correctly."""
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    log.record(_event(1))
    log.record(_event(2, key_id="k" * 4096, context_keys=[f"k{i:03d}" for i in range(900)]))
    log.record(_event(3))
    assert len(_read(log.path)[1]) > 8192
    assert log.verify().records == 3


def test_oversized_record_is_refused(log: JsonlAuditLog) -> None:
    """An event whose escaped record would exceed the size cap raises and writes nothing."""
    before = log.path.read_bytes()
    controls = [chr(c) for c in range(0x0E, 0x20)]  # each escaped as six bytes
    keys = [a + b + c for a in controls for b in controls for c in controls][:2048]
    huge = _event(principal="\x0e" * 1024, key_id="\x0e" * 4096, context_keys=keys)
    with pytest.raises(AuditLogError, match="at most 65536"):
        log.record(huge)
    assert log.path.read_bytes() == before
    assert log.verify().records == 5


def test_unwritable_log_raises_audit_log_error(tmp_path: Path) -> None:
    """A log in a missing directory raises AuditLogError naming the path, not OSError."""
    log = JsonlAuditLog(tmp_path / "no-such-dir" / "audit.jsonl")
    with pytest.raises(AuditLogError, match="no-such-dir"):
        log.record(_event())
    directory = JsonlAuditLog(tmp_path)
    with pytest.raises(AuditLogError, match="cannot open"):
        directory.verify()


def test_short_write_leaves_no_partial_record(
    log: JsonlAuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write the disk takes only part of is undone and reported; the chain stays whole."""
    before = log.path.read_bytes()
    real_write = os.write

    def short_write(fd: int, data: Buffer) -> int:
        return real_write(fd, bytes(data)[:20])

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(AuditLogError, match="only part of a record"):
        log.record(_event(6))
    monkeypatch.undo()
    assert log.path.read_bytes() == before
    log.record(_event(6))
    assert log.verify().records == 6


def test_failed_fsync_raises_audit_log_error(
    log: JsonlAuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync failure surfaces as AuditLogError, so the audited operation fails too."""

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(AuditLogError, match=r"cannot append to .*Input/output error"):
        log.record(_event(6))


def test_repair_of_an_unopenable_path_raises_audit_log_error(tmp_path: Path) -> None:
    """repair() on a path that is not a file raises AuditLogError, not OSError."""
    with pytest.raises(AuditLogError, match="cannot open"):
        JsonlAuditLog(tmp_path).repair()


# The JSON lines log: tampering.


EDITS: Final[dict[str, object]] = {
    "time": "2025-01-02T03:04:09.000000Z",
    "principal": "alice",
    "operation": "generate",
    "key_id": "fake-key-0002",
    "key_version": None,
    "context_keys": ["bucket"],
    "outcome": "success",
    "reason": "",
    "seq": 4,
    "prev": GENESIS_HASH,
    "hash": "f" * 64,
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_verify_detects_an_edited_field(log: JsonlAuditLog, name: str) -> None:
    """Changing any one field of a record breaks that record's own hash."""
    lines = _read(log.path)
    fields = _fields(lines[2])
    assert fields[name] != EDITS[name]
    fields[name] = EDITS[name]
    lines[2] = _canonical(fields) + b"\n"
    _write(log.path, lines)
    _bad(log.verify(), 3, "record edited")


def test_verify_detects_a_non_canonical_edit(log: JsonlAuditLog) -> None:
    """A record rewritten with the same values but other spacing is reported as edited."""
    lines = _read(log.path)
    lines[1] = json.dumps(_fields(lines[1]), sort_keys=True).encode() + b"\n"
    _write(log.path, lines)
    _bad(log.verify(), 2, "canonical form")


def test_verify_detects_an_edited_and_rehashed_record(log: JsonlAuditLog) -> None:
    """An edit with a recomputed hash breaks the next record's prev."""
    lines = _read(log.path)
    fields = _fields(lines[2])
    fields["outcome"] = "success"
    lines[2] = _sealed(fields)
    _write(log.path, lines)
    _bad(log.verify(), 4, "chain broken: prev is not the hash of line 3")


@pytest.mark.parametrize(("index", "line"), [(0, 1), (2, 3)])
def test_verify_detects_a_deleted_record(log: JsonlAuditLog, index: int, line: int) -> None:
    """Deleting the first or a middle record leaves a sequence gap at its place."""
    lines = _read(log.path)
    del lines[index]
    _write(log.path, lines)
    _bad(log.verify(), line, "sequence gap")


def test_deleted_last_record_needs_an_anchor(log: JsonlAuditLog) -> None:
    """Deleting the last record leaves a valid chain; an anchored head reveals it."""
    head = log.head()
    _write(log.path, _read(log.path)[:-1])
    assert log.verify() == VerificationResult(ok=True, records=4, first_bad_line=None, problem="")
    _bad(log.verify(anchor=head), 5, "removed from the end")


def test_deleted_log_is_caught_by_an_anchor(log: JsonlAuditLog) -> None:
    """A deleted log file verifies as empty, unless an anchored head says otherwise."""
    head = log.head()
    log.path.unlink()
    assert log.verify().ok
    _bad(log.verify(anchor=head), 1, "ends after 0 records")


def test_verify_detects_an_inserted_record_with_a_wrong_chain(log: JsonlAuditLog) -> None:
    """A forged record with a right hash and seq but an invented prev breaks the chain."""
    lines = _read(log.path)
    forged = _fields(lines[2]) | {"seq": 3, "prev": _sha256(b"invented"), "principal": "eve"}
    lines.insert(2, _sealed(forged))
    _write(log.path, lines)
    _bad(log.verify(), 3, "chain broken")


def test_verify_detects_an_inserted_record_with_a_correct_looking_chain(
    log: JsonlAuditLog,
) -> None:
    """A forged record chained onto its predecessor makes the next record repeat its seq."""
    lines = _read(log.path)
    forged = _fields(lines[2]) | {"prev": _sha256(lines[1][:-1]), "reason": "forged"}
    lines.insert(2, _sealed(forged))
    _write(log.path, lines)
    _bad(log.verify(), 4, "sequence repeats")


def test_rewritten_tail_is_caught_by_an_anchor(log: JsonlAuditLog) -> None:
    """A forger who re-chains every later record is caught by a head stored elsewhere."""
    head = log.head()
    lines = _read(log.path)
    lines.insert(2, _sealed(_fields(lines[2]) | {"reason": "forged"}))
    prev = _sha256(lines[1][:-1])
    for index in range(2, len(lines)):
        lines[index] = _sealed(_fields(lines[index]) | {"seq": index + 1, "prev": prev})
        prev = _sha256(lines[index][:-1])
    _write(log.path, lines)
    assert log.verify().ok
    _bad(log.verify(anchor=head), 5, "anchored head")


def test_verify_detects_swapped_records(log: JsonlAuditLog) -> None:
    """Two records swapped are reported at the first of them."""
    lines = _read(log.path)
    lines[1], lines[2] = lines[2], lines[1]
    _write(log.path, lines)
    _bad(log.verify(), 2, "sequence gap")


def test_verify_detects_a_first_record_not_at_genesis(log: JsonlAuditLog) -> None:
    """A first record whose prev is not the genesis value is reported on line 1."""
    lines = _read(log.path)
    lines[0] = _sealed(_fields(lines[0]) | {"prev": "1" * 64})
    _write(log.path, lines)
    _bad(log.verify(), 1, "genesis")


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b"{}",
        b"[" * 40000,
        b'{"v": 2}',
    ],
)
def test_verify_reports_an_unparseable_line(log: JsonlAuditLog, garbage: bytes) -> None:
    """A line that is not a record is reported as unparseable."""
    lines = _read(log.path)
    lines[3] = garbage + b"\n"
    _write(log.path, lines)
    _bad(log.verify(), 4, "unparseable")
    with pytest.raises(AuditLogError, match="line 4"):
        list(log.events())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("v", 2),
        ("v", True),
        ("seq", 0),
        ("seq", "3"),
        ("prev", "ABC"),
        ("key_version", 5),
        ("time", "2025-01-02 03:04:05"),
        ("time", 20250102),
        ("time", "2025-13-02T03:04:05.000000Z"),
        ("operation", "launch"),
        ("outcome", "maybe"),
        ("context_keys", "bucket"),
        ("context_keys", [1]),
        ("principal", None),
    ],
)
def test_verify_reports_a_malformed_field(log: JsonlAuditLog, name: str, value: object) -> None:
    """A record whose field has the wrong type or value is unparseable, whatever its hash."""
    lines = _read(log.path)
    lines[1] = _sealed(_fields(lines[1]) | {name: value})
    _write(log.path, lines)
    result = log.verify()
    _bad(result, 2, "unparseable")
    assert not isinstance(value, str) or value not in result.problem


def test_verify_reports_an_overlong_line(log: JsonlAuditLog) -> None:
    """A line longer than the record cap is reported without being read whole."""
    lines = _read(log.path)
    lines.insert(1, b"x" * (MAX_RECORD_SIZE + 10) + b"\n")
    _write(log.path, lines)
    _bad(log.verify(), 2, "longer than")
    with pytest.raises(AuditLogError, match="line 2"):
        list(log.events())


def test_append_refuses_after_an_overlong_last_line(log: JsonlAuditLog) -> None:
    """An append never chains onto a last line longer than any record."""
    with log.path.open("ab") as file:
        file.write(b"x" * (MAX_RECORD_SIZE + 10) + b"\n")
    with pytest.raises(AuditLogError, match="longer than a record"):
        log.record(_event())
    with pytest.raises(AuditLogError, match="longer than a record"):
        log.head()


def test_append_refuses_after_an_unreadable_last_line(log: JsonlAuditLog) -> None:
    """An append never chains onto a last line that is not a record."""
    with log.path.open("ab") as file:
        file.write(b"garbage\n")
    with pytest.raises(AuditLogError, match="not a record"):
        log.record(_event())
    assert log.verify().first_bad_line == 6


def test_partial_last_line_is_reported(log: JsonlAuditLog) -> None:
    """A record cut short by a crash mid-write is reported as incomplete on its line."""
    partial = _sealed(_fields(_read(log.path)[-1]) | {"seq": 6})[:57]
    with log.path.open("ab") as file:
        file.write(partial)
    _bad(log.verify(), 6, "incomplete")
    with pytest.raises(AuditLogError, match="incomplete record"):
        log.head()


def test_events_stop_at_an_incomplete_line(log: JsonlAuditLog) -> None:
    """events() raises at an incomplete last line rather than yielding half a record."""
    with log.path.open("ab") as file:
        file.write(b'{"v":1')
    seen: list[AuditEvent] = []
    with pytest.raises(AuditLogError, match="line 6"):
        seen.extend(log.events())
    assert len(seen) == 5


def test_repair_removes_only_an_incomplete_line(log: JsonlAuditLog) -> None:
    """repair() drops a partial last line, after which appends chain on the last record."""
    complete = log.path.read_bytes()
    assert log.repair() == 0
    with log.path.open("ab") as file:
        file.write(b'{"v":1,"seq":6')
    with pytest.raises(AuditLogError, match="repair"):
        log.record(_event(6))
    assert log.repair() == 14
    assert log.path.read_bytes() == complete
    log.record(_event(6))
    assert log.verify().records == 6
    assert JsonlAuditLog(log.path.with_name("missing")).repair() == 0


def test_repair_of_a_log_that_is_one_partial_line(tmp_path: Path) -> None:
    """A log holding only an interrupted first record is emptied, then written afresh."""
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    log.path.write_bytes(b'{"v":1')
    assert log.repair() == 6
    log.record(_event())
    assert log.verify().records == 1


def test_repair_refuses_a_long_unterminated_tail(log: JsonlAuditLog) -> None:
    """repair() will not cut more than one record's worth of bytes."""
    with log.path.open("ab") as file:
        file.write(b"x" * (MAX_RECORD_SIZE + 10))
    with pytest.raises(AuditLogError, match="not an interrupted write"):
        log.repair()


# The JSON lines log: concurrency.


def _append_many(path: str, principal: str, count: int, start: Any) -> None:
    start.wait()
    log = JsonlAuditLog(path)
    for n in range(count):
        log.record(_event(n, principal=principal, reason=f"{principal}-{n}"))


def _assert_complete(log: JsonlAuditLog, principals: list[str], count: int) -> None:
    assert log.verify() == VerificationResult(
        ok=True, records=len(principals) * count, first_bad_line=None, problem=""
    )
    reasons = sorted(event.reason for event in log.events())
    assert reasons == sorted(f"{p}-{n}" for p in principals for n in range(count))


def test_two_processes_append_one_chain(tmp_path: Path) -> None:
    """Two processes appending 200 records each leave one valid chain of all 400."""
    context = multiprocessing.get_context("spawn")
    path = str(tmp_path / "audit.jsonl")
    start = context.Barrier(2)
    workers = [
        context.Process(target=_append_many, args=(path, f"proc{i}", 200, start)) for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0, 0]
    _assert_complete(JsonlAuditLog(path), ["proc0", "proc1"], 200)


def test_threads_share_one_log(tmp_path: Path) -> None:
    """Four threads appending 200 records each through one instance leave one valid chain."""
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(principal: str) -> None:
        start.wait()
        try:
            for n in range(200):
                log.record(_event(n, principal=principal, reason=f"{principal}-{n}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _assert_complete(log, [f"t{i}" for i in range(4)], 200)


# The logging and memory sinks.


def test_logging_sink_emits_one_structured_record(caplog: pytest.LogCaptureFixture) -> None:
    """Each event is one log record with a readable message and the fields in extra."""
    caplog.set_level(logging.INFO, logger="sealstore.audit")
    event = _event(3, outcome=Outcome.DENIED, reason="policy denies unwrap")
    LoggingAuditSink().record(event)
    [record] = caplog.records
    assert record.name == "sealstore.audit"
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "sealstore audit: operation=unwrap outcome=denied principal=alice "
        'key_id=fake-key-0001 key_version=3 context_keys=bucket,tenant reason="policy denies '
        'unwrap"'
    )
    assert record.__dict__["sealstore_audit"] == {
        "time": "2025-01-02T03:04:08.678901Z",
        "principal": "alice",
        "operation": "unwrap",
        "key_id": "fake-key-0001",
        "key_version": "3",
        "context_keys": ["bucket", "tenant"],
        "outcome": "denied",
        "reason": "policy denies unwrap",
    }


def test_logging_sink_uses_the_given_logger_and_level(caplog: pytest.LogCaptureFixture) -> None:
    """A given logger and level are used, and a disabled level emits nothing."""
    logger = logging.getLogger("tests.audit.sink")
    caplog.set_level(logging.WARNING, logger="tests.audit.sink")
    LoggingAuditSink(logger, level=logging.INFO).record(_event())
    assert caplog.records == []
    sink = LoggingAuditSink(logger, level=logging.WARNING)
    sink.record(_event(key_version=None, context_keys=()))
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "key_version=- context_keys=- reason=-" in record.getMessage()
    assert repr(sink) == "LoggingAuditSink('tests.audit.sink', level=30)"


def test_logging_sink_quotes_values_that_could_forge_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Newlines, spaces and fake fields in values stay inside one quoted value."""
    caplog.set_level(logging.INFO, logger="sealstore.audit")
    LoggingAuditSink().record(_event(principal="bob\nsealstore audit: outcome=success x=1"))
    message = caplog.records[0].getMessage()
    assert "\n" not in message
    assert 'principal="bob\\nsealstore audit: outcome=success x=1" key_id=' in message


def test_memory_sink_is_bounded() -> None:
    """The memory sink keeps the newest maxlen events and counts those it dropped."""
    sink = MemoryAuditSink(maxlen=3)
    for n in range(5):
        sink.record(_event(n))
    assert [event.key_version for event in sink.events] == ["2", "3", "4"]
    assert sink.dropped == 2
    assert len(sink) == 3
    assert repr(sink) == "MemoryAuditSink(maxlen=3, events=3, dropped=2)"
    sink.clear()
    assert (sink.events, sink.dropped) == ((), 0)
    assert len(MemoryAuditSink().events) == 0
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="maxlen"):
            MemoryAuditSink(maxlen=bad)  # type: ignore[arg-type]


def test_sinks_satisfy_the_protocol(tmp_path: Path) -> None:
    """Every shipped sink is an AuditSink and accepts the same event."""
    sinks: list[AuditSink] = [
        JsonlAuditLog(tmp_path / "audit.jsonl"),
        LoggingAuditSink(logging.getLogger("tests.audit.protocol")),
        MemoryAuditSink(),
    ]
    for sink in sinks:
        sink.record(_event())
    assert JsonlAuditLog(tmp_path / "audit.jsonl").head().records == 1


# Nothing secret in any record.


def _outputs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> list[str]:
    """The JSON line, reprs, str and log output of one event whose context holds a secret."""
    context = {"tenant": SECRET_VALUE, "bucket": "orders-" + SECRET_VALUE[:8]}
    event = _event(context_keys=context, key_id="fake-key-0001")
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    log.record(event)
    caplog.set_level(logging.INFO, logger="sealstore.audit")
    LoggingAuditSink().record(event)
    memory = MemoryAuditSink()
    memory.record(event)
    return [
        log.path.read_text("utf-8"),
        repr(event),
        str(event),
        repr(memory.events),
        caplog.text,
        json.dumps(caplog.records[0].__dict__["sealstore_audit"]),
    ]


def test_no_context_value_reaches_any_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Context values appear in no record, repr, str or log line; only their keys do."""
    outputs = _outputs(tmp_path, caplog)
    assert len(outputs) == 6
    for output in outputs:
        assert SECRET_VALUE not in output
        assert SECRET_VALUE[:8] not in output
        assert "tenant" in output


def test_record_holds_only_documented_fields_and_no_key_like_strings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A record has exactly the documented fields; the only long hex strings are its hashes."""
    record = _fields(_outputs(tmp_path, caplog)[0].encode())
    assert set(record) == FIELDS
    long_strings = [name for name, value in record.items() if len(str(value)) >= 32]
    assert sorted(long_strings) == ["hash", "prev"]
    assert all(len(key) < 32 for key in record["context_keys"])
