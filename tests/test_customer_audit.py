"""CustomerKeys with an audit sink records every use of the key, and never the key."""

from __future__ import annotations

import os

import pytest

import sealstore
from sealstore.audit import Operation, Outcome


def test_wrap_and_unwrap_are_audited_with_context_keys_only() -> None:
    """encrypt records a generate and decrypt an unwrap, naming context keys, not values."""
    sink = sealstore.MemoryAuditSink()
    keys = sealstore.CustomerKeys(os.urandom(32), audit=sink, principal="alice")
    blob = sealstore.encrypt(b"x", keys, context={"tenant": "acme-secret"})
    sealstore.decrypt(blob, keys)
    assert [(e.operation, e.outcome) for e in sink.events] == [
        (Operation.GENERATE, Outcome.SUCCESS),
        (Operation.UNWRAP, Outcome.SUCCESS),
    ]
    assert all(e.principal == "alice" and e.key_id == keys.key_id for e in sink.events)
    assert sink.events[1].context_keys == ("tenant",)
    assert "acme-secret" not in repr(sink.events)
    assert keys.key.hex() not in repr(sink.events)


def test_wrong_customer_key_is_audited() -> None:
    """Offering a different key records a wrong-customer-key failure, then raises."""
    sink = sealstore.MemoryAuditSink()
    blob = sealstore.encrypt(b"x", sealstore.CustomerKeys(os.urandom(32)))
    other = sealstore.CustomerKeys(os.urandom(32), audit=sink)
    with pytest.raises(sealstore.WrongKeyError):
        sealstore.decrypt(blob, other)
    assert [(e.operation, e.outcome) for e in sink.events] == [
        (Operation.WRONG_CUSTOMER_KEY, Outcome.FAILURE)
    ]


def test_tampered_wrap_is_audited_as_a_failed_unwrap() -> None:
    """A wrapped key that fails to open records an unwrap failure."""
    sink = sealstore.MemoryAuditSink()
    keys = sealstore.CustomerKeys(os.urandom(32), audit=sink)
    blob = bytearray(sealstore.encrypt(b"x", keys))
    header_size = sealstore.header.header_size(bytes(blob[:10]))
    blob[header_size - 1] ^= 1  # last byte of the wrapped data key
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt(bytes(blob), keys)
    assert (sink.events[-1].operation, sink.events[-1].outcome) == (
        Operation.UNWRAP,
        Outcome.FAILURE,
    )


def test_key_id_is_stable_and_reveals_nothing() -> None:
    """The key id is the same for every instance of one key and differs between keys."""
    key = os.urandom(32)
    first, second = sealstore.CustomerKeys(key), sealstore.CustomerKeys(key)
    assert first.key_id == second.key_id
    assert first.key_id.startswith("customer:")
    assert first.key_id != sealstore.CustomerKeys(os.urandom(32)).key_id
    assert key.hex()[:16] not in first.key_id
