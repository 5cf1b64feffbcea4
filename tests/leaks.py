"""Secrets that must never be logged or audited, and the catcher the suite runs with.

``tests/conftest.py`` gives every test a :class:`SecretRegistry` (the ``secrets`` fixture),
captures every log record at DEBUG (botocore's included) and every event recorded through a
``MemoryAuditSink`` or ``JsonlAuditLog``, and fails the test if a registered secret appears
in any of them, in any of the spellings :func:`spellings` lists. Key material held by a
fixture's value (a ``CustomerKeys``, a ``RootKey``, raw 32-byte keys) is registered
automatically, and so is :data:`PLAINTEXT_MARKER`.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
from collections.abc import Iterable, Mapping

import sealstore

__all__ = ["PLAINTEXT_MARKER", "LogCatcher", "SecretRegistry", "key_material", "spellings"]

PLAINTEXT_MARKER = b"plaintext marker: never in a log \xe2\x98\x83 0f3a9c"
"""Plaintext for tests to encrypt; the suite fails a test where it reaches a log or audit."""

_MIN_SECRET = 8
"""Shorter values match too much by chance to count as a leak."""
_MIN_BASE64 = 12


def spellings(secret: bytes) -> set[str]:
    """The ways ``secret`` can show in text: itself (as UTF-8 or Latin-1), ``repr``, hex,
    and base64 (standard and URL-safe) at each of the three alignments a secret embedded
    in a longer base64 value can have."""
    forms = {secret.hex(), secret.hex().upper(), repr(secret)[2:-1], secret.decode("latin-1")}
    with contextlib.suppress(UnicodeDecodeError):
        forms.add(secret.decode())
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + secret).decode()
        start = -(-8 * shift // 6)  # the first character made of the secret's bits only
        end = 8 * (shift + len(secret)) // 6
        inner = encoded[start:end]
        if len(inner) >= _MIN_BASE64:
            forms |= {inner, inner.replace("+", "-").replace("/", "_")}
    return {form for form in forms if len(form) >= _MIN_SECRET}


def key_material(value: object) -> list[bytes]:
    """The key material a fixture's value holds, as far as it can be seen from outside."""
    if isinstance(value, sealstore.CustomerKeys):
        return [value.key]
    if isinstance(value, sealstore.RootKey):
        return [value._secret]  # the root key's own bytes
    if isinstance(value, bytes) and len(value) == 32:  # an AES-256 key
        return [value]
    return []


class SecretRegistry:
    """Secrets to watch for: some for the current test, some for the whole session."""

    def __init__(self) -> None:
        self._lasting: set[str] = set()
        self._test: set[str] = set()
        self._lasting_raw: set[bytes] = set()
        self._test_raw: set[bytes] = set()
        self._forms: tuple[tuple[str, ...], tuple[bytes, ...]] | None = None

    def add(self, secret: bytes | str, *, lasting: bool = False) -> None:
        """Watch for ``secret`` until the current test ends (``lasting``: for the session)."""
        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(raw) < _MIN_SECRET:
            raise ValueError("a secret this short would match by chance")
        (self._lasting if lasting else self._test).update(spellings(raw))
        (self._lasting_raw if lasting else self._test_raw).add(raw)
        self._forms = None

    def end_test(self) -> None:
        """Forget the current test's secrets."""
        if self._test:
            self._test.clear()
            self._test_raw.clear()
            self._forms = None

    def find(self, values: Iterable[object]) -> bool:
        """Whether a secret shows in any of ``values``: strings and bytes are searched as
        they are (a body of megabytes is never turned into text), containers item by item,
        anything else through its ``repr``."""
        if self._forms is None:
            texts = tuple(self._lasting | self._test)
            encoded = {form.encode("utf-8", "surrogatepass") for form in texts}
            self._forms = texts, tuple(encoded | self._lasting_raw | self._test_raw)
        forms, raws = self._forms
        return any(_shows(value, forms, raws) for value in values)


def _shows(value: object, texts: tuple[str, ...], raws: tuple[bytes, ...]) -> bool:
    if isinstance(value, str):
        return any(form in value for form in texts)
    if isinstance(value, (bytes, bytearray)):
        return any(form in value for form in raws)
    if isinstance(value, memoryview):  # searched in place: a copy could be megabytes
        return any(re.search(re.escape(form), value) for form in raws)
    if isinstance(value, Mapping):
        return any(_shows(item, texts, raws) for pair in value.items() for item in pair)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_shows(item, texts, raws) for item in value)
    return _shows(repr(value), texts, raws)


class LogCatcher(logging.Handler):
    """Checks each record as it is emitted (keeping none); ``leaks`` says which held a
    secret. Without a registry, it keeps every record instead, for a test to read."""

    def __init__(self, registry: SecretRegistry | None = None) -> None:
        super().__init__(logging.DEBUG)
        self._registry = registry
        self.records: list[logging.LogRecord] = []
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self._registry is None:
            self.records.append(record)
            return
        values: list[object] = [record.msg, record.args]
        if record.exc_info and record.exc_info[1] is not None:
            values += [str(record.exc_info[1]), repr(record.exc_info[1])]
        if self._registry.find(values):
            self.leaks.append(f"log record of {record.name!r} at {record.levelname}")
