"""An in-memory KMS for tests: :class:`MemoryKms`, with call counters and injected failures."""

from __future__ import annotations

import enum
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal, final

import attrs

from sealstore import _aead
from sealstore.errors import (
    AccessDeniedError,
    KeyDisabledError,
    KeyNotFoundError,
    KeyPendingDeletionError,
    KmsError,
    SealstoreError,
)
from sealstore.header import encode_context
from sealstore.kms.base import DataKey, KmsClient

__all__ = ["CountingKms", "KmsFailure", "KmsOperation", "MemoryKms"]

KmsOperation = Literal["generate_data_key", "decrypt", "default_key_id"]
"""The name of a :class:`~sealstore.kms.KmsClient` method, as counted in :attr:`MemoryKms.calls`."""

DEFAULT_KEY_ID: Final = "default"
"""The id of the key :meth:`MemoryKms.default_key_id` creates on first use."""


class KmsFailure(enum.Enum):
    """A failure :meth:`MemoryKms.fail` injects, and the sealstore error each one raises."""

    ACCESS_DENIED = "access denied"
    """:class:`~sealstore.AccessDeniedError`, as a key policy refusing the principal."""
    KEY_DISABLED = "key disabled"
    """:class:`~sealstore.KeyDisabledError`."""
    PENDING_DELETION = "pending deletion"
    """:class:`~sealstore.KeyPendingDeletionError`."""
    UNAVAILABLE = "unavailable"
    """:class:`~sealstore.KmsError`, as a service that cannot be reached."""


@attrs.define
class _Rule:
    failure: KmsFailure
    operation: KmsOperation | None
    key_id: str | None
    principal: str | None
    times: int | None

    def matches(self, operation: KmsOperation, key_id: str, principal: str) -> bool:
        return (
            self.operation in (None, operation)
            and self.key_id in (None, key_id)
            and self.principal in (None, principal)
        )


@final
class MemoryKms:
    """A :class:`~sealstore.kms.KmsClient` holding its keys in memory, for tests.

    Keys are created with :meth:`create_key` (or, for the default key, on first use). Every
    call is counted in :attr:`calls` by method name, and the encryption context of every
    ``generate_data_key`` and ``decrypt`` is kept in :attr:`contexts`::

        >>> import sealstore
        >>> kms = MemoryKms(keys=["orders"])
        >>> keys = sealstore.KmsKeys(kms, key_id="orders")
        >>> blob = sealstore.encrypt(b"an order", keys, context={"tenant": "acme"})
        >>> sealstore.decrypt(blob, keys)
        b'an order'
        >>> kms.calls["generate_data_key"], kms.calls["decrypt"]
        (1, 1)

    :meth:`fail` makes calls fail as a real KMS would (access denied, a disabled key, a key
    pending deletion, an unreachable service), and :attr:`latency` makes each call take time
    through ``sleep``: pass a :meth:`FakeClock.sleep <sealstore.testing.FakeClock.sleep>` to
    let fake time pass instead of real time. A failed call is counted too. Blobs are
    AES-256-GCM under the key's material, bound to the key id and the context, so a blob opens
    only under its own key and context (else :class:`~sealstore.DecryptionError`).
    Thread-safe.
    """

    def __init__(
        self,
        *,
        keys: Iterable[str] = (),
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._material: dict[str, bytes] = {}
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        """How many times each method was called (failed calls included)."""
        self.contexts: list[dict[str, str]] = []
        """The context of every ``generate_data_key`` and ``decrypt`` call, in order."""
        self.latency = latency
        """Seconds each call spends in ``sleep`` before it answers (or fails)."""
        self._sleep = sleep
        for key_id in keys:
            self.create_key(key_id)

    # Administration.

    def create_key(self, key_id: str) -> str:
        """Create a key with fresh material under ``key_id``; return the id.

        Raises :class:`ValueError` if the id is empty or taken.
        """
        if not isinstance(key_id, str) or not key_id:
            raise ValueError("a MemoryKms key id is a non-empty str")
        with self._lock:
            if key_id in self._material:
                raise ValueError(f"MemoryKms already has a key {key_id!r}")
            self._material[key_id] = os.urandom(32)
        return key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the keys created so far, in order of creation."""
        with self._lock:
            return tuple(self._material)

    def fail(
        self,
        failure: KmsFailure,
        *,
        operation: KmsOperation | None = None,
        key_id: str | None = None,
        principal: str | None = None,
        times: int | None = None,
    ) -> None:
        """Make calls fail with ``failure`` from now on.

        Only calls of ``operation``, naming ``key_id``, or made by ``principal`` fail when
        those are given (all calls otherwise), and only the next ``times`` of them when that
        is given (every one until :meth:`recover` otherwise). When several failures match a
        call, the one injected first is raised::

            >>> kms = MemoryKms(keys=["k1"])
            >>> kms.fail(KmsFailure.UNAVAILABLE, operation="decrypt", times=1)
            >>> data_key = kms.generate_data_key("k1", {}, principal="app")
            >>> kms.decrypt("k1", data_key.blob, {}, principal="app")
            Traceback (most recent call last):
            ...
            sealstore.errors.KmsError: the KMS is unavailable (decrypt with key 'k1'; ...)
            >>> kms.decrypt("k1", data_key.blob, {}, principal="app") == data_key.plaintext
            True
        """
        if not isinstance(failure, KmsFailure):
            raise TypeError("fail() takes a KmsFailure")
        if times is not None and (type(times) is not int or times < 1):
            raise ValueError("fail() times must be a positive int, or None for every call")
        with self._lock:
            self._rules.append(_Rule(failure, operation, key_id, principal, times))

    def recover(self) -> None:
        """Forget every failure injected by :meth:`fail`."""
        with self._lock:
            self._rules.clear()

    # The KmsClient protocol.

    def generate_data_key(
        self, key_id: str, context: Mapping[str, str], *, principal: str
    ) -> DataKey:
        """A fresh 32-byte data key and its blob under ``key_id``."""
        self._call("generate_data_key", key_id, principal, context)
        plaintext = os.urandom(32)
        blob = _aead.seal_blob(self._key(key_id), plaintext, _binding(key_id, context))
        return DataKey(key_id=key_id, plaintext=plaintext, blob=blob)

    def decrypt(
        self, key_id: str, blob: bytes, context: Mapping[str, str], *, principal: str
    ) -> bytes:
        """The plaintext of ``blob``, if it was made under ``key_id`` with ``context``."""
        self._call("decrypt", key_id, principal, context)
        return _aead.open_blob(self._key(key_id), bytes(blob), _binding(key_id, context))

    def default_key_id(self, *, principal: str) -> str:
        """The id of the default key (``"default"``), created on first use."""
        self._call("default_key_id", DEFAULT_KEY_ID, principal, None)
        with self._lock:
            if DEFAULT_KEY_ID not in self._material:
                self._material[DEFAULT_KEY_ID] = os.urandom(32)
        return DEFAULT_KEY_ID

    def _call(
        self,
        operation: KmsOperation,
        key_id: str,
        principal: str,
        context: Mapping[str, str] | None,
    ) -> None:
        """Count the call, wait out the latency, and raise the failure injected for it."""
        with self._lock:
            self.calls[operation] += 1
            if context is not None:
                self.contexts.append(dict(context))
            rule = next((r for r in self._rules if r.matches(operation, key_id, principal)), None)
            if rule is not None and rule.times is not None:
                rule.times -= 1
                if rule.times == 0:
                    self._rules.remove(rule)
        if self.latency:
            self._sleep(self.latency)
        if rule is not None:
            raise _error(rule.failure, operation, key_id, principal)

    def _key(self, key_id: str) -> bytes:
        with self._lock:
            material = self._material.get(key_id)
        if material is None:
            raise KeyNotFoundError(f"MemoryKms has no key {key_id!r}; create it with create_key()")
        return material

    def __repr__(self) -> str:
        return f"MemoryKms(keys={len(self._material)}, calls={sum(self.calls.values())})"


def _binding(key_id: str, context: Mapping[str, str]) -> bytes:
    """The associated data of a blob: the key id (length-prefixed) and the context."""
    encoded = key_id.encode()
    return len(encoded).to_bytes(2, "big") + encoded + encode_context(context)


def _error(
    failure: KmsFailure, operation: KmsOperation, key_id: str, principal: str
) -> SealstoreError:
    call = f"{operation} with key {key_id!r}; injected by MemoryKms.fail"
    if failure is KmsFailure.ACCESS_DENIED:
        return AccessDeniedError(f"principal {principal!r} may not {call}")
    if failure is KmsFailure.KEY_DISABLED:
        return KeyDisabledError(f"the KMS key {key_id!r} is disabled ({call})")
    if failure is KmsFailure.PENDING_DELETION:
        return KeyPendingDeletionError(f"the KMS key {key_id!r} is pending deletion ({call})")
    return KmsError(f"the KMS is unavailable ({call})")


@final
class CountingKms:
    """Wraps any :class:`~sealstore.kms.KmsClient` and counts its calls, as
    :attr:`MemoryKms.calls` does, to see how many requests a real KMS would get::

        >>> import os, tempfile, sealstore
        >>> local = sealstore.LocalKms(
        ...     tempfile.mkdtemp(), root_key=sealstore.RootKey.from_bytes(os.urandom(32)),
        ...     create=True)
        >>> kms = CountingKms(local)
        >>> keys = sealstore.KmsKeys(kms, bucket_key=True)
        >>> blobs = [sealstore.encrypt(b"x", keys) for _ in range(100)]
        >>> kms.calls["generate_data_key"]
        1
    """

    def __init__(self, inner: KmsClient) -> None:
        self.inner = inner
        """The client calls are passed to."""
        self.calls: Counter[str] = Counter()
        """How many times each method was called (failed calls included)."""
        self._lock = threading.Lock()

    def _count(self, operation: KmsOperation) -> None:
        with self._lock:
            self.calls[operation] += 1

    def generate_data_key(
        self, key_id: str, context: Mapping[str, str], *, principal: str
    ) -> DataKey:
        """Count the call and pass it on."""
        self._count("generate_data_key")
        return self.inner.generate_data_key(key_id, context, principal=principal)

    def decrypt(
        self, key_id: str, blob: bytes, context: Mapping[str, str], *, principal: str
    ) -> bytes:
        """Count the call and pass it on."""
        self._count("decrypt")
        return self.inner.decrypt(key_id, blob, context, principal=principal)

    def default_key_id(self, *, principal: str) -> str:
        """Count the call and pass it on."""
        self._count("default_key_id")
        return self.inner.default_key_id(principal=principal)

    def __repr__(self) -> str:
        return f"CountingKms({self.inner!r}, calls={sum(self.calls.values())})"
