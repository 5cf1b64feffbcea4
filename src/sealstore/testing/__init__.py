"""What you need to test your own code that uses sealstore, without a real KMS or storage.

- :class:`MemoryKms`: a :class:`~sealstore.kms.KmsClient` in memory, with call counters and
  injected failures (:class:`KmsFailure`: access denied, key disabled, pending deletion,
  unavailable) and latency; :class:`CountingKms` counts the calls to any other KMS client;
- :class:`FakeClock`: a clock that moves when told to, for the ``clock=`` argument of every
  provider (rotation schedules, bucket-key and cache expiry);
- :class:`MemoryKeyringStore`, :class:`MemoryBackend` and :class:`MemoryAuditSink`, the
  in-memory keyring store, backend and recording audit sink, re-exported here;
- :mod:`sealstore.testing.contracts`: contract suites to run against your own adapters;
- :mod:`sealstore.testing.plugin`: pytest fixtures (``sealstore_store``, ``sealstore_kms``...),
  registered under the name ``sealstore`` when sealstore is installed.

::

    >>> import sealstore
    >>> from sealstore.testing import FakeClock, KmsFailure, MemoryKms
    >>> kms = MemoryKms(keys=["orders"])
    >>> keys = sealstore.KmsKeys(kms, key_id="orders", clock=FakeClock())
    >>> blob = sealstore.encrypt(b"order 17", keys)
    >>> kms.fail(KmsFailure.KEY_DISABLED, key_id="orders")
    >>> sealstore.decrypt(blob, keys)
    Traceback (most recent call last):
    ...
    sealstore.errors.KeyDisabledError: the KMS key 'orders' is disabled (decrypt with key ...)

Importing this module does not import pytest; importing :mod:`sealstore` does not import
this module.
"""

from __future__ import annotations

from sealstore.audit.sinks import MemoryAuditSink
from sealstore.backends.memory import MemoryBackend
from sealstore.keys.managed.stores import MemoryKeyringStore
from sealstore.testing.clock import FakeClock
from sealstore.testing.kms import CountingKms, KmsFailure, KmsOperation, MemoryKms

__all__ = [
    "CountingKms",
    "FakeClock",
    "KmsFailure",
    "KmsOperation",
    "MemoryAuditSink",
    "MemoryBackend",
    "MemoryKeyringStore",
    "MemoryKms",
]
