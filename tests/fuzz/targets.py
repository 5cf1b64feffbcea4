"""The fuzz targets: each feeds one input's bytes to one of sealstore's parsers.

A target either returns or raises a :class:`~sealstore.SealstoreError`; any other exception
is a finding, and so is an input whose handling takes more memory than the target's bound
(see :func:`exercise`). The same functions run under atheris (``python -m tests.fuzz.run``,
coverage-guided) and in the test suite (every seed and reproducer, replayed).

Targets that need keys use fixed ones, so the committed seeds (``seeds.py`` writes them)
stay valid inputs: a mutation of a seed reaches past the parser into the checks after it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import os
import shutil
import tempfile
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

import attrs

import sealstore
from sealstore.audit.chain import GENESIS_HASH, BadRecord, check_in_chain
from sealstore.audit.events import Operation
from sealstore.header import PREFIX_SIZE, decode_context, header_size, parse_header
from sealstore.keys.kms import decode_key_ref
from sealstore.keys.managed.keyring import decode_keyring, encode_keyring
from sealstore.kms.local.auditing import Call
from sealstore.kms.local.blob import check_blob, unseal_blob
from sealstore.kms.local.document import (
    Key,
    KeyState,
    Material,
    Store,
    decode_document,
    encode_document,
)
from sealstore.kms.policy import ANY_PRINCIPAL, KeyOperation, KeyPolicy
from sealstore.placement import parse_detached_header, read_marker

__all__ = [
    "CUSTOMER_KEY",
    "DECRYPT_CONTEXT",
    "LOCAL_KMS_CONTEXT",
    "LOCAL_KMS_STORE",
    "TARGETS",
    "FuzzTarget",
    "MemoryBoundError",
    "exercise",
]

CUSTOMER_KEY: Final = bytes(range(32))
"""The key of the decrypt target's ``CustomerKeys`` (a fixed test key, never a real one)."""
DECRYPT_CONTEXT: Final = {"tenant": "acme"}
"""The context the decrypt target insists on when an input's selector byte asks it to."""
_KEYS: Final = sealstore.CustomerKeys(CUSTOMER_KEY)

_T0: Final = datetime(2026, 1, 1, tzinfo=timezone.utc)
LOCAL_KMS_STORE: Final = Store(
    {
        "1234abcd-12ab-34cd-56ef-1234567890ab": Key(
            key_id="1234abcd-12ab-34cd-56ef-1234567890ab",
            description="fuzz",
            creator="fuzz",
            created=_T0,
            state=KeyState.ENABLED,
            deletion_date=None,
            policy=KeyPolicy({KeyOperation.DECRYPT: (ANY_PRINCIPAL,)}),
            materials=(Material(1, _T0, bytes(32)), Material(2, _T0, bytes(range(32)))),
        )
    },
    {"alias/fuzz": "1234abcd-12ab-34cd-56ef-1234567890ab"},
)
"""A LocalKms key store with one key of two material versions (fixed test material)."""
_LOCAL_KMS_KEY: Final = LOCAL_KMS_STORE.resolve("alias/fuzz")
LOCAL_KMS_CONTEXT: Final = sealstore.header.encode_context({"bucket": "b"})


class MemoryBoundError(AssertionError):
    """An input took more memory than its target's bound."""


@attrs.frozen
class FuzzTarget:
    """A named harness: ``run(data)`` returns or raises a ``SealstoreError``."""

    name: str
    run: Callable[[bytes], None]
    memory_base: int = 256 * 1024
    """Peak bytes an input may allocate while handled, plus ``memory_per_byte`` per byte of it."""
    memory_per_byte: int = 16
    max_len: int = 4096
    """Longest input the fuzzer makes (long enough for deep JSON nesting or many records)."""


def exercise(target: FuzzTarget, data: bytes) -> None:
    """Run ``target`` on ``data``, accepting only ``SealstoreError``; check its memory.

    Memory is checked when :mod:`tracemalloc` is tracing (the caller starts it: tracing
    slows every allocation): the peak traced while the input is handled must stay within
    the target's bound, or :class:`MemoryBoundError` is raised.
    """
    tracing = tracemalloc.is_tracing()
    if tracing:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
    with contextlib.suppress(sealstore.SealstoreError):
        target.run(data)
    if tracing:
        peak = tracemalloc.get_traced_memory()[1] - before
        bound = target.memory_base + target.memory_per_byte * len(data)
        if peak > bound:
            raise MemoryBoundError(
                f"{target.name}: {len(data)} input bytes took {peak} bytes at peak; "
                f"the bound is {bound}"
            )


# --- the harnesses ---------------------------------------------------------------------


def _header(data: bytes) -> None:
    """The header codec: context decoding, prefix check and whole-header parse."""
    with contextlib.suppress(sealstore.FormatError):
        decode_context(data)
    try:
        size = header_size(data[:PREFIX_SIZE])
    except sealstore.FormatError:
        size = None
    try:
        parsed = parse_header(memoryview(data))
    except sealstore.FormatError:
        parsed = None
    if parsed is not None:
        assert parsed.size == size
        assert parsed == parse_header(data)
        assert parsed.encode() == data[: parsed.size], "a parsed header re-encodes to itself"
        assert decode_context(parsed.context_field[2:]) == parsed.context
    else:
        parse_header(data)  # raises FormatError as the view did


def _placement(data: bytes) -> None:
    """The placement codec: a metadata marker, then the detached header it holds."""
    marker = data.decode("utf-8", "surrogateescape")
    placement, header = read_marker({"sealstore": marker}, "fuzzed")
    if header is not None:
        assert placement == "detached"
        parsed = parse_detached_header(header)
        assert parsed.size == len(header)


def _keyring(data: bytes) -> None:
    """The managed keyring document decoder; a keyring it accepts can be written back."""
    ring = decode_keyring(data)
    again = decode_keyring(encode_keyring(ring))
    assert [attrs.astuple(entry) for entry in again.versions] == [
        attrs.astuple(entry) for entry in ring.versions
    ]


_DOCUMENT_PATH: Final = Path("keys.sealed")


def _local_kms_document(data: bytes) -> None:
    """The LocalKms key store document decoder; a store it accepts can be written back."""
    store = decode_document(data, _DOCUMENT_PATH)
    again = decode_document(encode_document(store), _DOCUMENT_PATH)
    assert again.keys == store.keys
    assert again.aliases == store.aliases


def _local_kms_blob(data: bytes) -> None:
    """The LocalKms blob parser, against a fixed key with two material versions."""
    check_blob(data)
    call = Call(Operation.UNWRAP, "fuzz", _LOCAL_KMS_KEY.key_id)
    unseal_blob(LOCAL_KMS_STORE, _LOCAL_KMS_KEY, data, LOCAL_KMS_CONTEXT, call)


_WORK_PREFIX: Final = "sealstore-fuzz-"


@functools.cache
def _audit_log_file() -> sealstore.JsonlAuditLog:
    """One log file per process, rewritten for each input.

    libFuzzer ends the process without running ``atexit`` handlers, so each process names
    its directory after its pid and removes those of processes that have ended.
    """
    # A memory file system where there is one: rewriting a file on disk costs more than
    # verifying it.
    shm = Path("/dev/shm")  # noqa: S108 (the directory made in it is private: mode 0o700)
    base = shm if shm.is_dir() else Path(tempfile.gettempdir())
    for stale in base.glob(f"{_WORK_PREFIX}*"):
        pid = stale.name.removeprefix(_WORK_PREFIX)
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    directory = base / f"{_WORK_PREFIX}{os.getpid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return sealstore.JsonlAuditLog(directory / "audit.jsonl")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _audit_log(data: bytes) -> None:
    """The audit record decoder on every line, then a JsonlAuditLog over them as a file."""
    lines = data.splitlines(keepends=True)
    for lineno, line in enumerate(lines, start=1):
        with contextlib.suppress(BadRecord):
            check_in_chain(line, lineno, GENESIS_HASH)  # decodes the line first
    log = _audit_log_file()
    log.path.write_bytes(data)
    result = log.verify()
    assert result.ok == (result.first_bad_line is None)
    assert 0 <= result.records <= len(lines)
    log.verify(anchor=log.head())
    events = 0
    for _ in log.events():
        events += 1
    if result.ok:
        assert events == result.records


def _kms_key_ref(data: bytes) -> None:
    """The KMS key reference decoder."""
    kind, key_id, blob = decode_key_ref(data)
    assert kind in (1, 2, 3, 4)
    assert key_id
    assert blob


def _decrypt(data: bytes) -> None:
    """A whole-object decrypt through three doors, which must agree.

    The first byte selects: bit 0, a detached header (the next two bytes say where the
    header ends); bit 1, insist on :data:`DECRYPT_CONTEXT`. The rest is the object. Every
    door must either raise a ``SealstoreError`` or return the same plaintext.
    """
    if not data:
        return
    selector, data = data[0], data[1:]
    context = DECRYPT_CONTEXT if selector & 2 else None
    header: bytes | None = None
    if selector & 1:
        split = int.from_bytes(data[:2], "big")
        header, data = data[2 : 2 + split], data[2 + split :]
    results = [_attempt(door, data, context, header) for door in (_whole, _reader, _stream)]
    plaintexts = [result for result in results if result is not None]
    if plaintexts:
        assert plaintexts == [plaintexts[0]] * 3, "the decrypting doors disagree"


_Door = Callable[[bytes, "dict[str, str] | None", "bytes | None"], bytes]


def _attempt(
    door: _Door, data: bytes, context: dict[str, str] | None, header: bytes | None
) -> bytes | None:
    """The door's plaintext, or None if it raised a SealstoreError."""
    try:
        return door(data, context, header)
    except sealstore.SealstoreError:
        return None


def _whole(data: bytes, context: dict[str, str] | None, header: bytes | None) -> bytes:
    return sealstore.decrypt(data, _KEYS, context=context, header=header)


def _reader(data: bytes, context: dict[str, str] | None, header: bytes | None) -> bytes:
    with sealstore.open_decrypted(io.BytesIO(data), _KEYS, context=context, header=header) as f:
        return f.read()


def _stream(data: bytes, context: dict[str, str] | None, header: bytes | None) -> bytes:
    out = io.BytesIO()
    sealstore.decrypt_stream(io.BytesIO(data), out, _KEYS, context=context, header=header)
    return out.getvalue()


TARGETS: Final = {
    target.name: target
    for target in (
        FuzzTarget("header", _header),
        FuzzTarget("placement", _placement),
        FuzzTarget("keyring", _keyring),
        FuzzTarget("local_kms_document", _local_kms_document),
        FuzzTarget("local_kms_blob", _local_kms_blob),
        FuzzTarget("audit_log", _audit_log),
        FuzzTarget("kms_key_ref", _kms_key_ref),
        FuzzTarget("decrypt", _decrypt, memory_base=4 * 1024 * 1024, max_len=2 * 16384 + 4096),
    )
}
"""Every target by name; the seed and reproducer directories are named the same."""
