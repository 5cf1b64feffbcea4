"""``EncryptedStore.get_many`` and ``decrypt_many``: many objects read in order, their KMS
keys opened in batches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import sealstore
from sealstore.backends import MemoryBackend
from sealstore.kms.vault import VaultTransitKms
from sealstore.testing import MemoryKms
from tests.every_backend import BACKEND_KINDS, make_backend
from tests.test_kms_vault import PRINCIPAL, _requests_sent, enable_transit, root_client, unique


@pytest.fixture(scope="module")
def mount(openbao_server: tuple[str, str]) -> str:
    """A Transit engine for this module's tests."""
    return enable_transit(root_client(openbao_server))


@pytest.fixture
def kms(openbao_server: tuple[str, str], mount: str) -> VaultTransitKms:
    """A VaultTransitKms with the root token, on this module's mount."""
    address, token = openbao_server
    return VaultTransitKms.with_token(address, token, mount=mount, default_key=unique("default"))


@pytest.fixture
def key(kms: VaultTransitKms) -> str:
    """A new derived Transit key."""
    return kms.create_key(unique("key"), principal=PRINCIPAL)


def kms_store(
    kms: VaultTransitKms, key: str, count: int
) -> tuple[sealstore.EncryptedStore, list[str]]:
    """A memory store holding ``count`` objects under per-object Transit keys; their names."""
    store = sealstore.EncryptedStore(
        MemoryBackend(), sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL)
    )
    names = [f"docs/{index:04d}" for index in range(count)]
    for name in names:
        store.put(name, name.encode() * 3)
    return store, names


def test_reads_in_one_transit_request_per_window(kms: VaultTransitKms, key: str) -> None:
    """120 objects read with get_many cost two Transit requests (windows of 100 and 20);
    read with get, 120. The results are get's, in the order asked."""
    store, names = kms_store(kms, key, 120)
    names.reverse()
    sent = _requests_sent(kms)
    many = list(store.get_many(names))
    assert len(sent) == 2
    assert all(path.startswith(f"/v1/{kms.mount}/decrypt/") for path in sent)
    sent.clear()
    one_by_one = [(name, store.get(name)) for name in names]
    assert len(sent) == 120
    assert many == one_by_one
    assert [name for name, _ in many] == names


def test_a_smaller_window_sends_more_batches(kms: VaultTransitKms, key: str) -> None:
    """window=4 over 10 objects: three batch requests; nothing is left opened afterwards."""
    store, names = kms_store(kms, key, 10)
    sent = _requests_sent(kms)
    assert [data for _, data in store.get_many(names, window=4)] == [n.encode() * 3 for n in names]
    assert len(sent) == 3
    keys = store.keys
    assert isinstance(keys, sealstore.KmsKeys)
    assert keys._state.prefetched == {}


def test_closing_early_drops_the_keys_opened_ahead(kms: VaultTransitKms, key: str) -> None:
    """A generator closed after one object of a window of five holds four opened keys
    until it is closed, none after."""
    store, names = kms_store(kms, key, 5)
    keys = store.keys
    assert isinstance(keys, sealstore.KmsKeys)
    results = store.get_many(names)
    assert next(results) == (names[0], names[0].encode() * 3)
    assert len(keys._state.prefetched) == 4
    results.close()
    assert keys._state.prefetched == {}


def test_a_missing_object_raises_as_get_does_after_those_before(
    kms: VaultTransitKms, key: str
) -> None:
    """The objects before a missing one are yielded; then get's ObjectNotFoundError."""
    store, names = kms_store(kms, key, 3)
    asked = [names[0], names[1], "docs/absent", names[2]]
    with pytest.raises(sealstore.ObjectNotFoundError) as from_get:
        store.get("docs/absent")
    results = store.get_many(asked)
    assert [name for name, _ in (next(results), next(results))] == names[:2]
    with pytest.raises(sealstore.ObjectNotFoundError) as from_many:
        next(results)
    assert str(from_many.value) == str(from_get.value)


def test_a_tampered_object_raises_decryption_error_naming_nothing_secret(
    kms: VaultTransitKms, key: str
) -> None:
    """A body altered at the backend: the objects before it are yielded, then the
    DecryptionError get raises, without plaintext in its message."""
    store, names = kms_store(kms, key, 3)
    backend = store.backend
    stored = backend.get(names[1]).read()
    altered = stored[:-1] + bytes([stored[-1] ^ 1])
    backend.put(names[1], altered, metadata=backend.head(names[1]).metadata)
    with pytest.raises(sealstore.DecryptionError) as from_get:
        store.get(names[1])
    results = store.get_many(names)
    assert next(results) == (names[0], names[0].encode() * 3)
    with pytest.raises(sealstore.DecryptionError) as from_many:
        next(results)
    assert str(from_many.value) == str(from_get.value)
    assert "docs/0001docs/0001" not in str(from_many.value)  # its plaintext


def test_an_object_replaced_after_its_header_was_read_is_read_afresh() -> None:
    """An object overwritten between its window's header reads and its own read is read
    again: the new content, never an ObjectChangedError."""
    store = sealstore.EncryptedStore(
        MemoryBackend(), sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    )
    store.put("a", b"first a")
    store.put("b", b"first b")
    results = store.get_many(["a", "b"])
    assert next(results) == ("a", b"first a")
    store.put("b", b"second b")
    assert list(results) == [("b", b"second b")]


def test_managed_customer_and_plaintext_objects_read_without_prefetch() -> None:
    """Managed keys, customer keys (given per call) and plaintext objects on a store that
    allows them: get_many reads what get reads."""
    backend = MemoryBackend()
    managed = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    store = sealstore.EncryptedStore(backend, managed, allow_plaintext_reads=True)
    customer = sealstore.CustomerKeys(os.urandom(32))
    store.put("m/1", b"managed 1", context={"team": "ops"})
    store.put("m/2", b"managed 2", context={"team": "ops"})
    store.put("c/1", b"customer 1", keys=customer)
    backend.put("p/1", b"plain 1")
    assert list(store.get_many(["m/2", "m/1"], context={"team": "ops"})) == [
        ("m/2", b"managed 2"),
        ("m/1", b"managed 1"),
    ]
    assert list(store.get_many(["c/1"], keys=customer)) == [("c/1", b"customer 1")]
    assert list(store.get_many(["p/1", "m/1"])) == [("p/1", b"plain 1"), ("m/1", b"managed 1")]
    with pytest.raises(sealstore.ProviderMismatchError):
        list(store.get_many(["c/1"]))


def test_names_are_consumed_a_window_at_a_time() -> None:
    """names may be endless: only a window is taken ahead of what was yielded."""
    store = sealstore.EncryptedStore(
        MemoryBackend(), sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    )
    store.put("x", b"x")
    taken: list[int] = []

    def endless() -> Iterator[str]:
        while True:
            taken.append(1)
            yield "x"

    results = store.get_many(endless(), window=3)
    assert next(results) == ("x", b"x")
    assert len(taken) == 3
    results.close()
    assert len(taken) == 3


def test_a_window_below_one_or_a_single_name_is_refused() -> None:
    """window=0 is a ValueError and one name instead of an iterable of names a TypeError,
    raised when the iteration starts."""
    store = sealstore.EncryptedStore(MemoryBackend())
    with pytest.raises(ValueError, match="window"):
        next(store.get_many(["a"], window=0))
    with pytest.raises(TypeError, match="iterable of names"):
        next(store.get_many("abc"))


def test_decrypt_many_opens_the_blobs_in_one_transit_request(
    kms: VaultTransitKms, key: str
) -> None:
    """Five blobs under per-object keys: one Transit request, then nothing left opened;
    decrypt alone sends one request per blob."""
    keys = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL)
    plaintexts = [b"blob %d" % index for index in range(5)]
    blobs = [sealstore.encrypt(data, keys, context={"n": "1"}) for data in plaintexts]
    sent = _requests_sent(kms)
    assert sealstore.decrypt_many(blobs, keys, context={"n": "1"}) == plaintexts
    assert len(sent) == 1
    assert keys._state.prefetched == {}
    sent.clear()
    assert [sealstore.decrypt(blob, keys) for blob in blobs] == plaintexts
    assert len(sent) == 5


def test_decrypt_many_raises_for_the_first_bad_blob_as_decrypt_does(
    kms: VaultTransitKms, key: str
) -> None:
    """A blob that is not an object and an altered one: the first in order raises
    decrypt's error (FormatError, then DecryptionError), without plaintext in it."""
    keys = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL)
    good = sealstore.encrypt(b"secret payload", keys)
    altered = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(sealstore.FormatError):
        sealstore.decrypt_many([good, b"not an object", altered], keys)
    with pytest.raises(sealstore.DecryptionError) as raised:
        sealstore.decrypt_many([good, altered, b"not an object"], keys)
    assert "secret payload" not in str(raised.value)
    assert keys._state.prefetched == {}


def test_decrypt_many_with_managed_and_customer_keys() -> None:
    """Providers without a KMS decrypt each blob as decrypt does."""
    managed = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    customer = sealstore.CustomerKeys(os.urandom(32))
    assert sealstore.decrypt_many([sealstore.encrypt(b"m", managed)], managed) == [b"m"]
    assert sealstore.decrypt_many([sealstore.encrypt(b"c", customer)], customer) == [b"c"]
    assert sealstore.decrypt_many([], managed) == []


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_reads_what_get_reads_on_every_backend(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Managed and KMS objects, small and of several chunks, read in a window smaller than
    their number: what get reads, in order."""
    kms_keys = sealstore.KmsKeys(MemoryKms(keys=["k1"]), key_id="k1")
    managed = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    store = sealstore.EncryptedStore(
        make_backend(kind, request, tmp_path), managed, readers=[kms_keys]
    )
    names = [f"mixed/{index}" for index in range(5)]
    for index, name in enumerate(names):
        data = os.urandom(40_000 if index % 2 else 10)
        store.put(name, data, keys=kms_keys if index < 3 else None)
    names.reverse()
    assert list(store.get_many(names, window=2)) == [(name, store.get(name)) for name in names]
