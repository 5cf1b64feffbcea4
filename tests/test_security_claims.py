"""Threats of docs/security.md that no other test attacks on its own.

Each test plays an attacker with read and write access to the storage (never to the keys)
against an ``EncryptedStore`` on a ``MemoryBackend``, which keeps headers in metadata, and
checks the outcome the page states.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

import sealstore
from sealstore.backends import MemoryBackend
from sealstore.placement import METADATA_KEY
from sealstore.testing import MemoryKms

MODES = {"managed": 1, "kms": 2, "customer": 3}
SECRET = b"the plaintext an attacker wants " * 100


@pytest.fixture
def providers() -> dict[str, sealstore.KeyProvider]:
    """One provider of each mode."""
    kms = MemoryKms(keys=["k1"])
    return {
        "managed": sealstore.ManagedKeys(sealstore.MemoryKeyringStore()),
        "kms": sealstore.KmsKeys(kms, key_id="k1"),
        "customer": sealstore.CustomerKeys(os.urandom(32)),
    }


def _store(
    backend: MemoryBackend, providers: dict[str, sealstore.KeyProvider]
) -> sealstore.EncryptedStore:
    managed, kms = providers["managed"], providers["kms"]
    assert isinstance(managed, sealstore.ManagedKeys)
    assert isinstance(kms, sealstore.KmsKeys)
    return sealstore.EncryptedStore(backend, managed, readers=[kms])


def _read(
    store: sealstore.EncryptedStore, name: str, providers: dict[str, sealstore.KeyProvider]
) -> bytes:
    """Read as the store's users do: customer keys given, the other modes dispatched."""
    header = base64.b64decode(
        store.backend.head(name).metadata[METADATA_KEY].removeprefix("detached:")
    )
    keys = providers["customer"] if header[5] == MODES["customer"] else None
    return store.get(name, keys=keys)


def _header_and_body(backend: MemoryBackend, name: str) -> tuple[bytearray, bytes]:
    marker = backend.head(name).metadata[METADATA_KEY]
    assert marker.startswith("detached:")
    return bytearray(base64.b64decode(marker.removeprefix("detached:"))), backend.get(name).read()


def _replace(backend: MemoryBackend, name: str, header: bytes, body: bytes) -> None:
    metadata = {METADATA_KEY: "detached:" + base64.b64encode(header).decode("ascii")}
    backend.put(name, body, metadata=metadata)


@pytest.mark.parametrize(
    ("written", "claimed"),
    [(a, b) for a in MODES for b in MODES if a != b],
)
def test_a_header_whose_mode_is_edited_never_decrypts(
    providers: dict[str, sealstore.KeyProvider], written: str, claimed: str
) -> None:
    """An object's mode byte rewritten to another mode is refused by that mode's provider."""
    backend = MemoryBackend()
    store = _store(backend, providers)
    store.put("obj", SECRET, keys=providers[written])
    header, body = _header_and_body(backend, "obj")
    header[5] = MODES[claimed]
    _replace(backend, "obj", bytes(header), body)
    with pytest.raises((sealstore.FormatError, sealstore.DecryptionError)):
        _read(store, "obj", providers)
    with pytest.raises(sealstore.ProviderMismatchError):
        store.get("obj", keys=providers[written])


@pytest.mark.parametrize("mode", list(MODES))
def test_headers_or_bodies_swapped_between_names_never_decrypt(
    providers: dict[str, sealstore.KeyProvider], mode: str
) -> None:
    """Swapping two objects' headers fails on the name; swapping their bodies, on the body."""
    backend = MemoryBackend()
    store = _store(backend, providers)
    store.put("a", SECRET, keys=providers[mode])
    store.put("b", b"other", keys=providers[mode])
    header_a, body_a = _header_and_body(backend, "a")
    header_b, body_b = _header_and_body(backend, "b")

    _replace(backend, "a", bytes(header_b), body_a)
    with pytest.raises(sealstore.ContextMismatchError, match="moved or copied"):
        _read(store, "a", providers)
    _replace(backend, "a", bytes(header_a), body_b)
    with pytest.raises(sealstore.DecryptionError):
        _read(store, "a", providers)
    _replace(backend, "a", bytes(header_a), body_a)
    assert _read(store, "a", providers) == SECRET


@pytest.mark.parametrize("mode", list(MODES))
def test_an_encrypted_object_downgraded_to_plaintext_is_refused(
    providers: dict[str, sealstore.KeyProvider], mode: str
) -> None:
    """An encrypted object replaced by plaintext, or stripped of its marker, is not read."""
    backend = MemoryBackend()
    store = _store(backend, providers)
    store.put("doc", SECRET, keys=providers[mode])
    _, body = _header_and_body(backend, "doc")
    for replacement in (b"attacker's text", body):
        backend.put("doc", replacement)  # no sealstore metadata: looks like plaintext
        with pytest.raises(sealstore.NotEncryptedError):
            store.get("doc", keys=providers[mode])
        with pytest.raises(sealstore.NotEncryptedError):
            store.open("doc", keys=providers[mode])


def test_stored_bytes_and_metadata_never_hold_the_plaintext(
    providers: dict[str, sealstore.KeyProvider],
) -> None:
    """What the storage keeps, bodies and headers, holds no plaintext and no customer key."""
    customer_key = os.urandom(32)
    providers["customer"] = sealstore.CustomerKeys(customer_key)
    backend = MemoryBackend()
    store = _store(backend, providers)
    for mode, keys in providers.items():
        store.put(f"{mode}/small", SECRET[:40], keys=keys, context={"tenant": "acme"})
        store.put(f"{mode}/large", SECRET * 50, keys=keys)
    infos = list(backend.list())
    assert len(infos) == 6
    for info in infos:
        header, body = _header_and_body(backend, info.name)
        for stored in (bytes(header), body):
            assert SECRET[:32] not in stored
            assert customer_key not in stored


ROOT = Path(__file__).resolve().parent.parent


def test_every_test_the_security_page_names_exists() -> None:
    """Each ``tests/<file>.py::<test>`` on docs/security.md is a test function in that file."""
    page = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", page))
    assert len(named) > 50
    for path, test in sorted(named):
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {test}\(", source, re.MULTILINE), f"{path}::{test}"
