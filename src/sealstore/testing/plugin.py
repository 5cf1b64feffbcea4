"""pytest fixtures for testing code that uses sealstore, registered as the plugin ``sealstore``.

Installing sealstore registers this module through the ``pytest11`` entry point, so the
fixtures are there in every test session; elsewhere, load it with ``-p
sealstore.testing.plugin`` or ``pytest_plugins = ["sealstore.testing.plugin"]`` in a root
``conftest.py``. Each fixture is fresh for each test and starts with ``sealstore_``, so it does
not shadow fixtures of your own:

=============================  =================================================================
``sealstore_clock``            a :class:`~sealstore.testing.FakeClock` every provider below reads
``sealstore_audit``            a :class:`~sealstore.MemoryAuditSink` every provider records to
``sealstore_backend``          an empty :class:`~sealstore.backends.MemoryBackend`
``sealstore_keyring_store``    an empty :class:`~sealstore.MemoryKeyringStore`
``sealstore_managed_keys``     :class:`~sealstore.ManagedKeys` over that keyring store
``sealstore_kms``              a :class:`~sealstore.testing.MemoryKms` (sleeping on the clock)
``sealstore_kms_keys``         :class:`~sealstore.KmsKeys` over that KMS, on its default key
``sealstore_customer_key``     32 random bytes
``sealstore_customer_keys``    :class:`~sealstore.CustomerKeys` with that key
``sealstore_store``            an :class:`~sealstore.EncryptedStore` on the backend, writing
                               with the managed keys
=============================  =================================================================

The providers act for the principal :data:`PRINCIPAL`.
"""

from __future__ import annotations

import os
from typing import Final

import pytest

from sealstore.audit.sinks import MemoryAuditSink
from sealstore.backends.memory import MemoryBackend
from sealstore.keys import CustomerKeys, KmsKeys, ManagedKeys
from sealstore.keys.managed.stores import MemoryKeyringStore
from sealstore.store import EncryptedStore
from sealstore.testing.clock import FakeClock
from sealstore.testing.kms import MemoryKms

__all__ = [
    "PRINCIPAL",
    "sealstore_audit",
    "sealstore_backend",
    "sealstore_clock",
    "sealstore_customer_key",
    "sealstore_customer_keys",
    "sealstore_keyring_store",
    "sealstore_kms",
    "sealstore_kms_keys",
    "sealstore_managed_keys",
    "sealstore_store",
]

PRINCIPAL: Final = "sealstore-tests"
"""The principal the fixtures' providers act for."""


@pytest.fixture
def sealstore_clock() -> FakeClock:
    """A fake clock at 2030-01-01 UTC, read by every provider of these fixtures."""
    return FakeClock()


@pytest.fixture
def sealstore_audit() -> MemoryAuditSink:
    """An empty recording audit sink, given to every provider of these fixtures."""
    return MemoryAuditSink()


@pytest.fixture
def sealstore_backend() -> MemoryBackend:
    """An empty in-memory backend."""
    return MemoryBackend()


@pytest.fixture
def sealstore_keyring_store() -> MemoryKeyringStore:
    """An empty in-memory keyring store."""
    return MemoryKeyringStore()


@pytest.fixture
def sealstore_managed_keys(
    sealstore_keyring_store: MemoryKeyringStore,
    sealstore_clock: FakeClock,
    sealstore_audit: MemoryAuditSink,
) -> ManagedKeys:
    """Managed keys in ``sealstore_keyring_store``, on the fake clock, recording to the sink."""
    return ManagedKeys(
        sealstore_keyring_store, clock=sealstore_clock, audit=sealstore_audit, principal=PRINCIPAL
    )


@pytest.fixture
def sealstore_kms(sealstore_clock: FakeClock) -> MemoryKms:
    """An in-memory KMS whose latency, when set, passes on the fake clock."""
    return MemoryKms(sleep=sealstore_clock.sleep)


@pytest.fixture
def sealstore_kms_keys(sealstore_kms: MemoryKms, sealstore_clock: FakeClock) -> KmsKeys:
    """KMS keys over ``sealstore_kms``, using its default key, on the fake clock."""
    return KmsKeys(sealstore_kms, principal=PRINCIPAL, clock=sealstore_clock)


@pytest.fixture
def sealstore_customer_key() -> bytes:
    """A random 32-byte customer key."""
    return os.urandom(32)


@pytest.fixture
def sealstore_customer_keys(
    sealstore_customer_key: bytes, sealstore_clock: FakeClock, sealstore_audit: MemoryAuditSink
) -> CustomerKeys:
    """Customer keys with ``sealstore_customer_key``, recording to the sink."""
    return CustomerKeys(
        sealstore_customer_key, audit=sealstore_audit, principal=PRINCIPAL, clock=sealstore_clock
    )


@pytest.fixture
def sealstore_store(
    sealstore_backend: MemoryBackend, sealstore_managed_keys: ManagedKeys
) -> EncryptedStore:
    """A store on ``sealstore_backend`` that writes with ``sealstore_managed_keys``."""
    return EncryptedStore(sealstore_backend, sealstore_managed_keys)
