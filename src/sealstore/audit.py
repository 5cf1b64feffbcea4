"""The audit trail: every use of a master key becomes an :class:`AuditEvent`.

Providers and key services send events to an :class:`AuditSink`, a one-method protocol.
Events carry who did what to which key, the *keys* of the encryption context and the
outcome; never key material, plaintext or context values.

Three sinks ship with sealstore:

- :class:`JsonlAuditLog`: an append-only file of hash-chained JSON lines whose
  :meth:`~JsonlAuditLog.verify` finds the first edited, deleted, inserted or reordered record;
- :class:`LoggingAuditSink`: one structured :mod:`logging` record per event;
- :class:`MemoryAuditSink`: a bounded list in memory, for tests.

The record format is specified in ``docs/audit.md``, precisely enough to verify a log
without sealstore.
"""

from __future__ import annotations

import collections
import enum
import fcntl
import hashlib
import itertools
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Final, NoReturn, Protocol, TypeVar, final

import attrs

from sealstore.errors import AuditLogError

__all__ = [
    "GENESIS_HASH",
    "MAX_RECORD_SIZE",
    "AuditEvent",
    "AuditLogError",
    "AuditSink",
    "JsonlAuditLog",
    "LogHead",
    "LoggingAuditSink",
    "MemoryAuditSink",
    "Operation",
    "Outcome",
    "VerificationResult",
]

MAX_PRINCIPAL_LENGTH: Final = 1024
"""Characters in :attr:`AuditEvent.principal`."""
MAX_KEY_ID_LENGTH: Final = 4096
"""Characters in :attr:`AuditEvent.key_id`: any key reference a header can hold fits."""
MAX_KEY_VERSION_LENGTH: Final = 256
"""Characters in :attr:`AuditEvent.key_version`."""
MAX_REASON_LENGTH: Final = 1024
"""Characters in :attr:`AuditEvent.reason`."""
MAX_CONTEXT_KEYS: Final = 2048
"""Number of :attr:`AuditEvent.context_keys`."""
MAX_CONTEXT_KEYS_LENGTH: Final = 8192
"""Characters in all :attr:`AuditEvent.context_keys` together."""

MAX_RECORD_SIZE: Final = 65536
"""Bytes in one record of a :class:`JsonlAuditLog`, not counting its newline."""
GENESIS_HASH: Final = "0" * 64
"""The ``prev`` of the first record of a :class:`JsonlAuditLog`."""
RECORD_VERSION: Final = 1
"""The ``v`` field of every record this version of sealstore writes."""

# A short final line is read first; the window grows up to one whole record and both of the
# newlines around it, so an append never reads more than that however long the log is.
_FIRST_TAIL_WINDOW: Final = 4096
_MAX_TAIL_WINDOW: Final = MAX_RECORD_SIZE + 2


class Operation(str, enum.Enum):
    """What was done with a master key."""

    GENERATE = "generate"
    """A data key was generated and wrapped (or a bucket key issued)."""
    UNWRAP = "unwrap"
    """A wrapped data key was unwrapped to decrypt an object."""
    REWRAP = "rewrap"
    """A wrapped data key was re-wrapped under another master key or version."""
    ROTATE = "rotate"
    """A new master key version was created and made current."""
    RETIRE = "retire"
    """A master key version was retired."""
    REACTIVATE = "reactivate"
    """A retired master key version was reactivated: it decrypts again."""
    CREATE_KEY = "create-key"
    ENABLE_KEY = "enable-key"
    DISABLE_KEY = "disable-key"
    SCHEDULE_DELETION = "schedule-deletion"
    CANCEL_DELETION = "cancel-deletion"
    DELETE_KEY = "delete-key"
    PUT_POLICY = "put-policy"
    CREATE_ALIAS = "create-alias"
    DELETE_ALIAS = "delete-alias"
    DESCRIBE_KEY = "describe-key"
    WRONG_CUSTOMER_KEY = "wrong-customer-key"
    """A customer key was offered that does not match the object's fingerprint."""


class Outcome(str, enum.Enum):
    """How an audited operation ended."""

    SUCCESS = "success"
    DENIED = "denied"
    """Refused by a key policy."""
    FAILURE = "failure"
    """Refused for another reason: unknown or disabled key, wrong key, tampered input."""


def _check_text(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str):
        raise TypeError(f"AuditEvent.{name} must be a str, not {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(
            f"AuditEvent.{name} is {len(value)} characters long; at most {limit} are allowed"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"AuditEvent.{name} is not valid Unicode text (it holds a lone surrogate)"
        ) from None


def _text(limit: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        _check_text(attribute.name, value, limit)

    return check


def _optional_text(limit: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            _check_text(attribute.name, value, limit)

    return check


def _utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"AuditEvent.time must be a datetime, not {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError("AuditEvent.time must be timezone-aware; use datetime.now(timezone.utc)")
    return value.astimezone(timezone.utc)


def _sorted_keys(keys: Iterable[str]) -> tuple[str, ...]:
    if isinstance(keys, (str, bytes)):
        raise TypeError(
            "AuditEvent.context_keys must be a collection of context keys, not one string"
        )
    items = list(itertools.islice(keys, MAX_CONTEXT_KEYS + 1))
    if len(items) > MAX_CONTEXT_KEYS:
        raise ValueError(f"AuditEvent.context_keys holds more than {MAX_CONTEXT_KEYS} keys")
    for item in items:
        _check_text("context_keys", item, MAX_CONTEXT_KEYS_LENGTH)
    if sum(map(len, items)) > MAX_CONTEXT_KEYS_LENGTH:
        raise ValueError(
            f"AuditEvent.context_keys is longer than {MAX_CONTEXT_KEYS_LENGTH} characters in all"
        )
    return tuple(sorted(set(items)))


@final
@attrs.frozen
class AuditEvent:
    """One audited use of a master key.

    ``context_keys`` lists the encryption context's keys (sorted, without repeats), never
    its values: it accepts any collection of keys, a context mapping included, and keeps
    only the keys. ``reason`` is a short, secret-free explanation for a denial or failure.
    ``time`` must be timezone-aware and is kept in UTC. Every string is capped in length
    (``MAX_*_LENGTH`` in this module); a bad event raises ``TypeError`` or ``ValueError``
    when it is made::

        >>> from datetime import datetime, timezone
        >>> event = AuditEvent(
        ...     time=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        ...     principal="alice",
        ...     operation=Operation.UNWRAP,
        ...     key_id="orders-key",
        ...     context_keys={"tenant": "acme", "bucket": "orders"},
        ... )
        >>> event.context_keys
        ('bucket', 'tenant')
    """

    time: datetime = attrs.field(converter=_utc)
    principal: str = attrs.field(validator=_text(MAX_PRINCIPAL_LENGTH))
    operation: Operation = attrs.field(validator=attrs.validators.instance_of(Operation))
    key_id: str = attrs.field(validator=_text(MAX_KEY_ID_LENGTH))
    key_version: str | None = attrs.field(
        default=None, validator=_optional_text(MAX_KEY_VERSION_LENGTH)
    )
    context_keys: tuple[str, ...] = attrs.field(default=(), converter=_sorted_keys)
    outcome: Outcome = attrs.field(
        default=Outcome.SUCCESS, validator=attrs.validators.instance_of(Outcome)
    )
    reason: str = attrs.field(default="", validator=_text(MAX_REASON_LENGTH))


class AuditSink(Protocol):
    """Where audit events go. Implementations must not drop events silently.

    ``record`` raises if the event cannot be kept, so the audited operation fails rather
    than going unrecorded::

        class PrintSink:
            def record(self, event: AuditEvent) -> None:
                print(event.operation.value, event.key_id, event.outcome.value)
    """

    def record(self, event: AuditEvent) -> None: ...


@final
@attrs.frozen
class LogHead:
    """The position of a :class:`JsonlAuditLog`: its record count and last line's hash.

    ``last_hash`` is the SHA-256 of the last record's line, which is also the ``prev`` the
    next record will carry; an empty log's head is ``LogHead(0, GENESIS_HASH)``. Store a
    head somewhere the log's writers cannot change, and pass it to
    :meth:`JsonlAuditLog.verify` to detect records removed from the end or a log rewritten
    up to that point::

        >>> LogHead(records=0, last_hash=GENESIS_HASH).records
        0
    """

    records: int
    last_hash: str


@final
@attrs.frozen
class VerificationResult:
    """What :meth:`JsonlAuditLog.verify` found.

    ``records`` counts the records checked good, up to the first bad one.
    ``first_bad_line`` is that bad line's 1-based number (``None`` when ``ok``), and
    ``problem`` says what is wrong with it (empty when ``ok``)::

        >>> VerificationResult(ok=True, records=3, first_bad_line=None, problem="").ok
        True
    """

    ok: bool
    records: int
    first_bad_line: int | None
    problem: str


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


def _event_fields(event: AuditEvent) -> dict[str, object]:
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _seal(event: AuditEvent, seq: int, prev: str) -> bytes:
    """The line (without its newline) recording ``event`` as record ``seq`` after ``prev``."""
    fields = {**_event_fields(event), "v": RECORD_VERSION, "seq": seq, "prev": prev}
    fields["hash"] = _sha256(_canonical(fields))
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


class _BadRecord(Exception):
    """A line that is not a well-formed record; the message says why."""


_E = TypeVar("_E", Operation, Outcome)


def _member(kind: type[_E], value: object, name: str) -> _E:
    # Enum's own error quotes the value; problems reported from a log never do.
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} is not one sealstore records") from None


def _decode(line: bytes) -> _Record:
    """Parse one line (without its newline); the chain and the hash are not checked."""
    try:
        fields = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _BadRecord("unparseable: not a line of UTF-8 JSON") from None
    if not isinstance(fields, dict) or fields.keys() != _RECORD_FIELDS:
        raise _BadRecord("unparseable: not a JSON object with exactly the record's fields")
    seq, prev, digest = fields["seq"], fields["prev"], fields["hash"]
    if fields["v"] != RECORD_VERSION or type(fields["v"]) is not int:
        raise _BadRecord(f"unparseable: the record version is not {RECORD_VERSION}")
    if type(seq) is not int or seq < 1:
        raise _BadRecord("unparseable: seq is not a positive integer")
    for name, value in (("prev", prev), ("hash", digest)):
        if not isinstance(value, str) or _HEX_HASH.fullmatch(value) is None:
            raise _BadRecord(f"unparseable: {name} is not 64 lowercase hex digits")
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
        raise _BadRecord(f"unparseable: not a valid audit event ({exc})") from None
    return _Record(event=event, seq=seq, prev=prev, hash=digest, fields=fields)


def _check(line: bytes) -> _Record:
    """Parse one line and check that it is canonical and its own hash is right."""
    record = _decode(line)
    if _canonical(record.fields) != line:
        raise _BadRecord(
            "record edited: the line is not in canonical form (sorted keys, no whitespace)"
        )
    unhashed = {name: value for name, value in record.fields.items() if name != "hash"}
    if _sha256(_canonical(unhashed)) != record.hash:
        raise _BadRecord("record edited: its hash does not match its contents")
    return record


def _check_in_chain(line: bytes, lineno: int, prev: str) -> None:
    """Raise :class:`_BadRecord` unless ``line`` (with its newline) is record ``lineno``
    following a line that hashes to ``prev``."""
    if not line.endswith(b"\n"):
        raise _BadRecord(
            f"line longer than the {MAX_RECORD_SIZE}-byte limit on a record"
            if len(line) > MAX_RECORD_SIZE
            else "incomplete record at the end of the log: a write was interrupted"
        )
    record = _check(line[:-1])
    if record.seq > lineno:
        raise _BadRecord(
            f"sequence gap: expected record {lineno}, found record {record.seq}: records were "
            "deleted or reordered before this line"
        )
    if record.seq < lineno:
        raise _BadRecord(
            f"sequence repeats: expected record {lineno}, found record {record.seq} again (as "
            f"on line {record.seq}): a record was inserted or records were reordered"
        )
    if record.prev != prev:
        raise _BadRecord(
            "chain broken: the first record's prev is not the genesis value"
            if lineno == 1
            else f"chain broken: prev is not the hash of line {lineno - 1}: a record was "
            f"inserted, deleted or reordered here, or line {lineno - 1} was edited and re-hashed"
        )


def _fail(lineno: int, records: int, problem: str) -> VerificationResult:
    return VerificationResult(ok=False, records=records, first_bad_line=lineno, problem=problem)


@final
class JsonlAuditLog:
    """An :class:`AuditSink` writing an append-only, hash-chained file of JSON lines.

    Each line is one record: the event's fields, a sequence number ``seq`` (1 for the first
    record), ``prev`` (the SHA-256 of the previous line, :data:`GENESIS_HASH` for the first)
    and ``hash`` (the SHA-256 of the record's canonical JSON without ``hash``). The exact
    format is in ``docs/audit.md``.

    Appends are durable and safe across threads and processes: each one takes an exclusive
    ``flock`` on the file, reads only the last line (at most :data:`MAX_RECORD_SIZE` bytes,
    however long the log), writes the new line with one ``O_APPEND`` write and fsyncs
    before :meth:`record` returns. Failures raise :class:`AuditLogError`::

        >>> import tempfile
        >>> from datetime import datetime, timezone
        >>> log = JsonlAuditLog(tempfile.mkdtemp() + "/audit.jsonl")
        >>> log.record(AuditEvent(
        ...     time=datetime.now(timezone.utc), principal="alice",
        ...     operation=Operation.GENERATE, key_id="orders-key"))
        >>> log.verify().ok, log.head().records
        (True, 1)
    """

    __slots__ = ("_lock", "_path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JsonlAuditLog({str(self._path)!r})"

    @property
    def path(self) -> Path:
        """The log file."""
        return self._path

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` as the next record and fsync it; create the file if needed."""
        with self._lock:
            fd = self._open(os.O_RDWR | os.O_APPEND | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                last = self._last_line(fd, size)
                if last is None:
                    line = _seal(event, 1, GENESIS_HASH)
                else:
                    line = _seal(event, self._seq_of(last) + 1, _sha256(last))
                line += b"\n"
                if os.write(fd, line) != len(line):
                    # Never leave a partial record behind for the next writer to chain on.
                    os.ftruncate(fd, size)
                    raise AuditLogError(
                        f"the audit log {self._path} accepted only part of a record (is the "
                        "disk full?); nothing was recorded"
                    )
                os.fsync(fd)
                if size == 0:
                    self._sync_directory()
            except OSError as exc:
                self._io_error("append to", exc)
            finally:
                os.close(fd)

    def head(self) -> LogHead:
        """The log's current :class:`LogHead`, read from its last line only.

        Raises :class:`AuditLogError` if the last line is incomplete or not a record.
        """
        file = self._open_for_reading()
        if file is None:
            return LogHead(records=0, last_hash=GENESIS_HASH)
        with file:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_SH)
                last = self._last_line(file.fileno(), os.fstat(file.fileno()).st_size)
            except OSError as exc:
                self._io_error("read", exc)
        if last is None:
            return LogHead(records=0, last_hash=GENESIS_HASH)
        return LogHead(records=self._seq_of(last), last_hash=_sha256(last))

    def verify(self, anchor: LogHead | None = None) -> VerificationResult:
        """Check every record and the chain; report the first bad line.

        A line is bad when it is incomplete (a write was interrupted), longer than
        :data:`MAX_RECORD_SIZE`, unparseable, not in canonical form or not matching its own
        hash (edited), or when its ``seq`` or ``prev`` does not follow the line before it
        (records deleted, inserted or reordered, or the line before it edited and re-hashed).

        Without an ``anchor`` the records removed from the *end* of a log cannot be noticed:
        what remains is a valid chain. With an anchor (a :meth:`head` stored elsewhere), the
        log must still hold that many records and the anchored record must be unchanged.
        Records appended while this runs are not checked. A missing log is an empty one::

            >>> JsonlAuditLog("/nonexistent/audit.jsonl").verify()
            VerificationResult(ok=True, records=0, first_bad_line=None, problem='')
        """
        count, prev = 0, GENESIS_HASH
        file = self._open_for_reading()
        if file is not None:
            with file:
                size = self._locked_size(file)
                for lineno, line in enumerate(self._lines(file, size), start=1):
                    try:
                        _check_in_chain(line, lineno, prev)
                    except _BadRecord as exc:
                        return _fail(lineno, count, str(exc))
                    count, prev = count + 1, _sha256(line[:-1])
                    if anchor is not None and count == anchor.records and prev != anchor.last_hash:
                        return _fail(
                            lineno,
                            count - 1,
                            "record differs from the anchored head: the log was rewritten up "
                            "to this record",
                        )
        if anchor is not None and count < anchor.records:
            return _fail(
                count + 1,
                count,
                f"the log ends after {count} records but the anchored head has "
                f"{anchor.records}: records were removed from the end",
            )
        return VerificationResult(ok=True, records=count, first_bad_line=None, problem="")

    def events(self) -> Iterator[AuditEvent]:
        """The events recorded, oldest first, as far as the log reached when reading began.

        Each line is parsed, but neither its hash nor the chain is checked: call
        :meth:`verify` for that. Raises :class:`AuditLogError` at a line that is not a record.
        """
        file = self._open_for_reading()
        if file is None:
            return
        with file:
            size = self._locked_size(file)
            for lineno, line in enumerate(self._lines(file, size), start=1):
                if len(line) > MAX_RECORD_SIZE or not line.endswith(b"\n"):
                    raise AuditLogError(
                        f"line {lineno} of the audit log {self._path} is incomplete or too "
                        "long; run verify() for details"
                    )
                try:
                    yield _decode(line[:-1]).event
                except _BadRecord as exc:
                    raise AuditLogError(
                        f"line {lineno} of the audit log {self._path} is not a record ({exc})"
                    ) from None

    def repair(self) -> int:
        """Remove an incomplete last line left by an interrupted write; return bytes removed.

        A record is only complete once its newline is written, and :meth:`record` refuses
        to append after an incomplete one. Nothing else is ever removed: a log whose last
        line is complete is left as it is (0 is returned), and a partial line longer than a
        record raises :class:`AuditLogError`.
        """
        with self._lock:
            try:
                fd = os.open(self._path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                return 0
            except OSError as exc:
                self._io_error("open", exc)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                tail = os.pread(fd, min(size, _MAX_TAIL_WINDOW), max(0, size - _MAX_TAIL_WINDOW))
                if not tail or tail.endswith(b"\n"):
                    return 0
                cut = tail.rfind(b"\n")
                if cut < 0 and size > len(tail):
                    raise AuditLogError(
                        f"the audit log {self._path} ends with {len(tail)} or more bytes that "
                        "are not a record; inspect it, this is not an interrupted write"
                    )
                removed = len(tail) - (cut + 1)
                os.ftruncate(fd, size - removed)
                os.fsync(fd)
                return removed
            except OSError as exc:
                self._io_error("repair", exc)
            finally:
                os.close(fd)

    # Internals.

    def _open(self, flags: int) -> int:
        try:
            return os.open(self._path, flags | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            self._io_error("open", exc)

    def _open_for_reading(self) -> BinaryIO | None:
        try:
            return open(self._path, "rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._io_error("open", exc)

    def _locked_size(self, file: BinaryIO) -> int:
        # Writers hold an exclusive lock while they append, so the size seen under a shared
        # lock ends at a record boundary; what is appended later is left for the next read.
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_SH)
            try:
                return os.fstat(file.fileno()).st_size
            finally:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)
        except OSError as exc:
            self._io_error("read", exc)

    def _lines(self, file: BinaryIO, size: int) -> Iterator[bytes]:
        """Lines up to ``size``, each with its newline; one longer than a record is cut."""
        remaining = size
        try:
            while remaining > 0:
                line = file.readline(min(remaining, MAX_RECORD_SIZE + 1))
                if not line:
                    return
                remaining -= len(line)
                yield line
        except OSError as exc:
            self._io_error("read", exc)

    def _last_line(self, fd: int, size: int) -> bytes | None:
        """The last line without its newline, reading a bounded window from the end."""
        if size == 0:
            return None
        window = _FIRST_TAIL_WINDOW
        while True:
            start = max(0, size - window)
            tail = os.pread(fd, size - start, start)
            if not tail.endswith(b"\n"):
                raise AuditLogError(
                    f"the audit log {self._path} ends with an incomplete record (a write was "
                    "interrupted); run verify() to check the rest, then repair() to remove it"
                )
            cut = tail.rfind(b"\n", 0, len(tail) - 1)
            if cut >= 0 or start == 0:
                return tail[cut + 1 : -1]
            if window >= _MAX_TAIL_WINDOW:
                raise AuditLogError(
                    f"the last line of the audit log {self._path} is longer than a record can "
                    "be; run verify() to find the damage"
                )
            window = min(window * 4, _MAX_TAIL_WINDOW)

    def _seq_of(self, last: bytes) -> int:
        try:
            return _decode(last).seq
        except _BadRecord as exc:
            raise AuditLogError(
                f"the last line of the audit log {self._path} is not a record ({exc}); run "
                "verify() to find the damage"
            ) from None

    def _sync_directory(self) -> None:
        fd = os.open(self._path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _io_error(self, action: str, exc: OSError) -> NoReturn:
        raise AuditLogError(
            f"cannot {action} the audit log {self._path}: {exc.strerror or exc}; check the "
            "path, its permissions and free space"
        ) from exc


_PLAIN_LOG_VALUE: Final = re.compile(r"[A-Za-z0-9_.:/@+=-]+", re.ASCII)


def _log_value(value: str | None) -> str:
    # Anything but a plain token is JSON-quoted (ASCII only), so a principal or key id
    # holding spaces or newlines cannot forge fields or lines in a text log.
    if value is None:
        return "-"
    if _PLAIN_LOG_VALUE.fullmatch(value):
        return value
    return json.dumps(value)


@final
class LoggingAuditSink:
    """An :class:`AuditSink` emitting one :mod:`logging` record per event.

    The message reads ``sealstore audit: operation=unwrap outcome=success principal=alice
    key_id=orders-key key_version=- context_keys=bucket,tenant reason=-`` (values that are not
    plain tokens are JSON-quoted), and the record carries the fields as a dict in
    ``record.sealstore_audit``, with the same names and values as a :class:`JsonlAuditLog`
    record, for structured handlers. The default logger is ``sealstore.audit``. Events are
    kept only as far as the logging configuration keeps them: give the logger a handler::

        >>> import logging
        >>> sink = LoggingAuditSink(logging.getLogger("myapp.audit"), level=logging.WARNING)
    """

    __slots__ = ("_level", "_logger")

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self._logger = logger if logger is not None else logging.getLogger("sealstore.audit")
        self._level = level

    def __repr__(self) -> str:
        return f"LoggingAuditSink({self._logger.name!r}, level={self._level!r})"

    def record(self, event: AuditEvent) -> None:
        """Log ``event`` at the sink's level."""
        if not self._logger.isEnabledFor(self._level):
            return
        self._logger.log(
            self._level,
            "sealstore audit: operation=%s outcome=%s principal=%s key_id=%s key_version=%s "
            "context_keys=%s reason=%s",
            event.operation.value,
            event.outcome.value,
            _log_value(event.principal),
            _log_value(event.key_id),
            _log_value(event.key_version),
            ",".join(_log_value(key) for key in event.context_keys) or "-",
            _log_value(event.reason or None),
            extra={"sealstore_audit": _event_fields(event)},
        )


@final
class MemoryAuditSink:
    """An :class:`AuditSink` keeping the latest ``maxlen`` events in memory, for tests.

    When full, the oldest event is dropped and counted in :attr:`dropped`. Thread-safe::

        >>> from datetime import datetime, timezone
        >>> sink = MemoryAuditSink(maxlen=2)
        >>> for key_id in ("a", "b", "c"):
        ...     sink.record(AuditEvent(
        ...         time=datetime.now(timezone.utc), principal="alice",
        ...         operation=Operation.UNWRAP, key_id=key_id))
        >>> [event.key_id for event in sink.events], sink.dropped
        (['b', 'c'], 1)
    """

    __slots__ = ("_dropped", "_events", "_lock")

    def __init__(self, maxlen: int = 10_000) -> None:
        if type(maxlen) is not int or maxlen < 1:
            raise ValueError("MemoryAuditSink maxlen must be a positive int")
        self._events: collections.deque[AuditEvent] = collections.deque(maxlen=maxlen)
        self._dropped = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"MemoryAuditSink(maxlen={self._events.maxlen}, events={len(self)}, "
            f"dropped={self._dropped})"
        )

    def __len__(self) -> int:
        return len(self._events)

    def record(self, event: AuditEvent) -> None:
        """Keep ``event``, dropping the oldest one if the sink is full."""
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self._dropped += 1
            self._events.append(event)

    @property
    def events(self) -> tuple[AuditEvent, ...]:
        """The events kept, oldest first."""
        with self._lock:
            return tuple(self._events)

    @property
    def dropped(self) -> int:
        """How many events were dropped because the sink was full."""
        return self._dropped

    def clear(self) -> None:
        """Forget every event and reset :attr:`dropped`."""
        with self._lock:
            self._events.clear()
            self._dropped = 0
