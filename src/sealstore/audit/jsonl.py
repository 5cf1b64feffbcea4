"""The :class:`JsonlAuditLog` sink: an append-only file of hash-chained records.

File I/O, locking and durability live here; the record format is :mod:`sealstore.audit.chain`.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final, NoReturn, final

import attrs

from sealstore.audit.chain import (
    GENESIS_HASH,
    MAX_RECORD_SIZE,
    BadRecord,
    check_in_chain,
    decode,
    seal,
    sha256,
)
from sealstore.audit.events import AuditEvent
from sealstore.errors import AuditLogError

__all__ = ["JsonlAuditLog", "LogHead", "VerificationResult"]

# A short final line is read first; the window grows up to one whole record and both of the
# newlines around it, so an append never reads more than that however long the log is.
_FIRST_TAIL_WINDOW: Final = 4096
_MAX_TAIL_WINDOW: Final = MAX_RECORD_SIZE + 2


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
        >>> from sealstore.audit import AuditEvent, Operation
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
                    line = seal(event, 1, GENESIS_HASH)
                else:
                    line = seal(event, self._seq_of(last) + 1, sha256(last))
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
        return LogHead(records=self._seq_of(last), last_hash=sha256(last))

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
                        check_in_chain(line, lineno, prev)
                    except BadRecord as exc:
                        return _fail(lineno, count, str(exc))
                    count, prev = count + 1, sha256(line[:-1])
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
                    yield decode(line[:-1]).event
                except BadRecord as exc:
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
            return decode(last).seq
        except BadRecord as exc:
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
