"""EncryptedStore over every backend, in every mode."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest

import sealstore
from sealstore.backends import Backend, ObjectInfo, ReadableStream
from sealstore.backends.filesystem import FileSystemBackend
from sealstore.backends.memory import MemoryBackend
from sealstore.store import METADATA_KEY, OBJECT_CONTEXT_KEY
from sealstore.testing import MemoryKms
from tests.every_backend import BACKEND_KINDS, make_backend

if TYPE_CHECKING:
    pass

CHUNK = 16384
BackendFactory = Callable[[], Backend]


@pytest.fixture(params=BACKEND_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every backend; the S3 ones on real servers started by the test session."""
    return make_backend(request.param, request, tmp_path)


@pytest.fixture
def managed() -> sealstore.ManagedKeys:
    """Managed keys on an in-memory keyring."""
    return sealstore.ManagedKeys(sealstore.MemoryKeyringStore())


@pytest.fixture
def kms_keys() -> sealstore.KmsKeys:
    """KMS keys over an in-memory KMS."""
    return sealstore.KmsKeys(MemoryKms(keys=["k1", "k2"]), key_id="k1")


@pytest.fixture
def customer() -> sealstore.CustomerKeys:
    """A random customer key."""
    return sealstore.CustomerKeys(os.urandom(32))


@pytest.fixture
def store(
    backend: Backend, managed: sealstore.ManagedKeys, kms_keys: sealstore.KmsKeys
) -> sealstore.EncryptedStore:
    """A store writing managed-mode objects by default, able to read KMS-mode ones."""
    return sealstore.EncryptedStore(backend, managed, readers=[kms_keys])


def _modes(
    managed: sealstore.ManagedKeys, kms_keys: sealstore.KmsKeys, customer: sealstore.CustomerKeys
) -> dict[str, sealstore.KeyProvider]:
    return {"managed": managed, "kms": kms_keys, "customer": customer}


@pytest.mark.parametrize("mode", ["managed", "kms", "customer"])
@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 7, 2_200_000])
def test_put_get_open_head_list_delete(
    store: sealstore.EncryptedStore,
    managed: sealstore.ManagedKeys,
    kms_keys: sealstore.KmsKeys,
    customer: sealstore.CustomerKeys,
    mode: str,
    size: int,
) -> None:
    """Every operation works in every mode; customer objects need the key on each read."""
    keys = _modes(managed, kms_keys, customer)[mode]
    read_keys = keys if mode == "customer" else None
    plaintext = os.urandom(size)
    head = store.put("dir/obj", plaintext, keys=keys, context={"tenant": "acme"})
    assert head.plaintext_size == size
    assert head.mode is keys.mode
    assert head.context == {"tenant": "acme"}
    assert store.get("dir/obj", keys=read_keys) == plaintext
    assert store.get("dir/obj", keys=read_keys, context={"tenant": "acme"}) == plaintext
    with store.open("dir/obj", keys=read_keys) as reader:
        assert reader.read() == plaintext
    described = store.head("dir/obj", keys=read_keys)
    assert described.encrypted
    assert described.plaintext_size == size
    listed = list(store.list("dir/", details=True))
    assert [entry.name for entry in listed] == ["dir/obj"]
    assert listed[0].mode is keys.mode
    assert listed[0].detailed
    [brief] = store.list("dir/")
    assert (brief.name, brief.plaintext_size, brief.encrypted) == ("dir/obj", size, True)
    store.delete("dir/obj")
    assert list(store.list()) == []
    with pytest.raises(sealstore.ObjectNotFoundError):
        store.get("dir/obj", keys=read_keys)


def test_customer_objects_need_the_key_and_the_right_one(
    store: sealstore.EncryptedStore, customer: sealstore.CustomerKeys
) -> None:
    """Reading a customer-key object without its key names the provider; a wrong key fails."""
    store.put("c", b"secret", keys=customer)
    with pytest.raises(sealstore.ProviderMismatchError, match="CustomerKeys"):
        store.get("c")
    wrong = sealstore.CustomerKeys(os.urandom(32))
    with pytest.raises(sealstore.WrongKeyError):
        store.get("c", keys=wrong)
    with pytest.raises(sealstore.WrongKeyError):
        store.head("c", keys=wrong)
    assert store.head("c", keys=customer).plaintext_size == 6


def test_reads_dispatch_on_the_mode_and_name_a_missing_provider(
    backend: Backend, managed: sealstore.ManagedKeys, kms_keys: sealstore.KmsKeys
) -> None:
    """A store reads any mode it has a provider for, and names the one it lacks."""
    writer = sealstore.EncryptedStore(backend, kms_keys)
    writer.put("k", b"kms object")
    assert sealstore.EncryptedStore(backend, managed, readers=[kms_keys]).get("k") == b"kms object"
    with pytest.raises(sealstore.ProviderMismatchError, match="KmsKeys"):
        sealstore.EncryptedStore(backend, managed).get("k")


@pytest.mark.parametrize(
    ("start", "length"),
    [(0, 10), (CHUNK - 5, 10), (CHUNK, 1), (2 * CHUNK - 1, CHUNK + 2), (5 * CHUNK - 3, 100)],
)
def test_ranged_reads_across_chunks_and_at_the_end(
    store: sealstore.EncryptedStore, start: int, length: int
) -> None:
    """Seek-and-read through open() equals the slice, across chunk boundaries and at the end."""
    plaintext = os.urandom(5 * CHUNK)
    store.put("r", plaintext)
    with store.open("r") as reader:
        reader.seek(start)
        assert reader.read(length) == plaintext[start : start + length]
        reader.seek(-3, io.SEEK_END)
        assert reader.read() == plaintext[-3:]


def test_ranged_read_fetches_only_what_it_needs(
    managed: sealstore.ManagedKeys, tmp_path: Path
) -> None:
    """A 4 KiB read of a large object fetches at most two chunks (plus the header)."""
    fetched: list[int] = []
    inner = MemoryBackend()

    class CountingBackend:
        keeps_metadata = inner.keeps_metadata
        put = staticmethod(inner.put)
        head = staticmethod(inner.head)
        delete = staticmethod(inner.delete)
        copy = staticmethod(inner.copy)

        def get(
            self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
        ) -> ReadableStream:
            data = inner.get(name, start=start, end=end, if_match=if_match).read()
            fetched.append(len(data))
            return io.BytesIO(data)

        def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
            return inner.list(prefix)

    store = sealstore.EncryptedStore(CountingBackend(), managed)
    store.put("big", os.urandom(64 * CHUNK))
    fetched.clear()
    with store.open("big") as reader:
        reader.seek(10 * CHUNK + 100)
        assert len(reader.read(4096)) == 4096
    assert sum(fetched) <= 2 * (CHUNK + 16) + 56


def test_object_moved_at_the_backend_fails(
    store: sealstore.EncryptedStore, backend: Backend
) -> None:
    """Ciphertext copied or renamed to another name at the backend does not decrypt there."""
    store.put("original", b"payload")
    backend.copy("original", "moved")
    with pytest.raises(sealstore.ContextMismatchError, match="moved or copied"):
        store.get("moved")
    with pytest.raises(sealstore.ContextMismatchError):
        store.open("moved")


@pytest.mark.parametrize("source_mode", ["managed", "kms", "customer"])
@pytest.mark.parametrize("target_mode", ["managed", "kms", "customer"])
def test_copy_re_keys_between_every_pair_of_modes(
    store: sealstore.EncryptedStore,
    managed: sealstore.ManagedKeys,
    kms_keys: sealstore.KmsKeys,
    customer: sealstore.CustomerKeys,
    source_mode: str,
    target_mode: str,
) -> None:
    """copy() moves an object to any mode and rebinds its name."""
    modes = _modes(managed, kms_keys, customer)
    source, target = modes[source_mode], modes[target_mode]
    plaintext = os.urandom(40_000)
    store.put("src", plaintext, keys=source, context={"a": "b"})
    head = store.copy("src", "dst", keys=target, source_keys=source)
    assert head.mode is target.mode
    assert head.context == {"a": "b"}
    assert store.get("dst", keys=target, context={"a": "b"}) == plaintext
    assert store.get("src", keys=source) == plaintext


def test_rewrap_after_rotation_keeps_the_body(
    store: sealstore.EncryptedStore, backend: Backend, managed: sealstore.ManagedKeys
) -> None:
    """After a rotation, rewrap moves objects to the new version; body bytes are unchanged."""
    plaintext = os.urandom(50_000)
    for name in ("p/a", "p/b", "q/c"):
        store.put(name, plaintext)
    old_version = store.head("p/a").key_version
    bodies = {name: _body(store, backend, name) for name in ("p/a", "p/b")}
    new_version = managed.rotate().id
    seen: list[tuple[int, int, str]] = []
    report = store.rewrap_all(
        "p/", progress=lambda done, total, name: seen.append((done, total, name))
    )
    assert (report.total, report.done, report.current, report.failed) == (2, 2, 0, ())
    assert seen == [(1, 2, "p/a"), (2, 2, "p/b")]
    for name in ("p/a", "p/b"):
        assert store.head(name).key_version == new_version
        assert _body(store, backend, name) == bodies[name]
        assert store.get(name) == plaintext
    assert store.head("q/c").key_version == old_version
    managed.retire(old_version or "")
    with pytest.raises(sealstore.KeyRetiredError):
        store.get("q/c")
    assert store.get("p/a") == plaintext


def test_rewrap_of_customer_objects_changes_the_customer_key(
    store: sealstore.EncryptedStore, customer: sealstore.CustomerKeys
) -> None:
    """Rewrapping with source_keys and new customer keys re-keys without re-encrypting."""
    store.put("c", b"payload", keys=customer)
    new = sealstore.CustomerKeys(os.urandom(32))
    assert store.rewrap("c", keys=new, source_keys=customer) is True
    assert store.rewrap("c", keys=new, source_keys=new) is False  # already under the new key
    assert store.rewrap("c", keys=sealstore.CustomerKeys(new.key), source_keys=new) is False
    assert store.get("c", keys=new) == b"payload"
    with pytest.raises(sealstore.WrongKeyError):
        store.get("c", keys=customer)


def test_rewrap_cannot_change_the_mode(
    store: sealstore.EncryptedStore, kms_keys: sealstore.KmsKeys
) -> None:
    """A rewrap keeps the mode: asking for another is refused, pointing to copy()."""
    store.put("m", b"x")
    with pytest.raises(sealstore.ProviderMismatchError, match="copy"):
        store.rewrap("m", keys=kms_keys)


def test_rewrap_of_a_plaintext_object_does_nothing(
    backend: Backend, managed: sealstore.ManagedKeys
) -> None:
    """rewrap() says False for an object the store did not encrypt or that is already under
    the current key, and leaves it as it is; rewrap_all() reports each kind."""
    backend.put("plain", b"legacy")
    store = sealstore.EncryptedStore(backend, managed)
    store.put("sealed", b"secret")
    assert store.rewrap("plain") is False
    assert store.rewrap("sealed") is False  # already under the current version
    assert store.rewrap("sealed", force=True) is True
    report = store.rewrap_all()
    assert (report.done, report.current, report.skipped) == (0, 1, 1)
    lenient = sealstore.EncryptedStore(backend, managed, allow_plaintext_reads=True)
    assert lenient.get("plain") == b"legacy"


@pytest.mark.parametrize("backend", ["memory", "s3-moto", "s3-seaweedfs"], indirect=True)
def test_a_rewrap_whose_header_outgrows_the_metadata_moves_it_inline(backend: Backend) -> None:
    """A detached header that no longer fits in metadata after a rewrap moves in front of the
    body (under the etag condition); the object reads back under the new key."""
    kms = MemoryKms()
    kms.create_key("short")
    long_id = "k" * 1200
    kms.create_key(long_id)
    store = sealstore.EncryptedStore(backend, sealstore.KmsKeys(kms, key_id="short"))
    plaintext = os.urandom(70_000)
    store.put("obj", plaintext)
    assert store.head("obj").placement == "detached"
    moved = sealstore.KmsKeys(kms, key_id=long_id)
    assert store.rewrap("obj", keys=moved)
    head = store.head("obj")
    assert (head.placement, head.key_id, head.plaintext_size) == ("inline", long_id, 70_000)
    assert sealstore.EncryptedStore(backend, moved).get("obj") == plaintext


def test_two_providers_of_one_mode_are_refused(
    managed: sealstore.ManagedKeys, kms_keys: sealstore.KmsKeys
) -> None:
    """A store reads each mode with one provider: a second of the same mode is an error,
    not silently dropped."""
    other = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    with pytest.raises(sealstore.InvalidKeyError, match="two ManagedKeys"):
        sealstore.EncryptedStore(MemoryBackend(), managed, readers=[other])
    with pytest.raises(sealstore.InvalidKeyError, match="two KmsKeys"):
        sealstore.EncryptedStore(MemoryBackend(), readers=[kms_keys, kms_keys])
    store = sealstore.EncryptedStore(MemoryBackend(), managed, readers=[kms_keys])
    store.put("k", b"x", keys=kms_keys)
    assert store.get("k") == b"x"


def test_plaintext_objects_are_refused_then_migrated(
    backend: Backend, managed: sealstore.ManagedKeys
) -> None:
    """Objects written before encryption are refused, unless allowed, until migrated."""
    backend.put("old/1", b"legacy one")
    backend.put("old/2", b"legacy two")
    store = sealstore.EncryptedStore(backend, managed)
    with pytest.raises(sealstore.NotEncryptedError):
        store.get("old/1")
    with pytest.raises(sealstore.NotEncryptedError):
        store.open("old/1")
    lenient = sealstore.EncryptedStore(backend, managed, allow_plaintext_reads=True)
    assert lenient.get("old/1") == b"legacy one"
    assert [entry.encrypted for entry in store.list("old/")] == [False, False]
    progress: list[str] = []
    report = store.encrypt_existing(
        "old/", progress=lambda done, total, name: progress.append(name)
    )
    assert (report.total, report.done, report.ok) == (2, 2, True)
    assert progress == ["old/1", "old/2"]
    assert store.get("old/2") == b"legacy two"
    assert all(entry.encrypted for entry in store.list("old/"))
    assert store.encrypt_existing("old/").current == 2


def test_reserved_context_keys_are_refused(store: sealstore.EncryptedStore) -> None:
    """Callers cannot set the store's own context keys."""
    with pytest.raises(sealstore.InvalidContextError):
        store.put("x", b"x", context={OBJECT_CONTEXT_KEY: "other"})


def test_put_accepts_files_and_iterables(store: sealstore.EncryptedStore) -> None:
    """put takes a binary file object or an iterable of bytes as well as bytes."""
    store.put("f", io.BytesIO(b"from a file"))
    store.put("i", iter([b"from ", b"an ", b"iterable"]))
    assert store.get("f") == b"from a file"
    assert store.get("i") == b"from an iterable"


def test_customer_keys_are_never_a_store_default(backend: Backend) -> None:
    """A store refuses customer keys as its default: they are given per request."""
    customer = sealstore.CustomerKeys(os.urandom(32))
    with pytest.raises(sealstore.InvalidKeyError):
        sealstore.EncryptedStore(backend, customer)  # type: ignore[arg-type]


def test_header_placement_follows_the_backend(store: sealstore.EncryptedStore) -> None:
    """Backends with metadata keep the header there; others keep it in front of the body."""
    head = store.put("h", b"x")
    expected = "detached" if store.backend.keeps_metadata else "inline"
    assert head.placement == expected
    if store.backend.keeps_metadata:
        assert store.backend.head("h").metadata[METADATA_KEY].startswith("detached:")
        assert store.backend.head("h").size == head.stored_size


def _body(store: sealstore.EncryptedStore, backend: Backend, name: str) -> bytes:
    head = store.head(name)
    stream = backend.get(name)
    try:
        data = stream.read()
    finally:
        stream.close()
    return data[len(data) - sealstore._aead.body_size(head.plaintext_size or 0) :]


def test_download_streams_into_a_file(
    store: sealstore.EncryptedStore, backend: Backend, managed: sealstore.ManagedKeys
) -> None:
    """download() decrypts into a binary file, and copies allowed plaintext objects too."""
    plaintext = os.urandom(3 * CHUNK + 11)
    store.put("d", plaintext)
    sink = io.BytesIO()
    assert store.download("d", sink) == len(plaintext)
    assert sink.getvalue() == plaintext
    backend.put("legacy", b"old bytes")
    with pytest.raises(sealstore.NotEncryptedError):
        store.download("legacy", io.BytesIO())
    lenient = sealstore.EncryptedStore(backend, managed, allow_plaintext_reads=True)
    sink = io.BytesIO()
    assert lenient.download("legacy", sink) == 9
    assert sink.getvalue() == b"old bytes"


def test_rewrap_never_pairs_a_new_body_with_an_old_header(
    managed: sealstore.ManagedKeys,
) -> None:
    """If a writer replaces the object between a rewrap's read and its write, the rewrap fails
    and the writer's object stays readable."""
    inner = MemoryBackend()
    store = sealstore.EncryptedStore(inner, managed)
    store.put("obj", b"first")
    managed.rotate()

    class RacingBackend:
        keeps_metadata = True
        put = staticmethod(inner.put)
        get = staticmethod(inner.get)
        head = staticmethod(inner.head)
        delete = staticmethod(inner.delete)
        list = staticmethod(inner.list)

        def copy(
            self,
            source: str,
            destination: str,
            *,
            metadata: Mapping[str, str] | None = None,
            if_match: str | None = None,
        ) -> ObjectInfo:
            store.put("obj", b"second, written meanwhile")  # the concurrent writer
            return inner.copy(source, destination, metadata=metadata, if_match=if_match)

    racing = sealstore.EncryptedStore(RacingBackend(), managed)
    with pytest.raises(sealstore.ObjectChangedError):
        racing.rewrap("obj")
    assert store.get("obj") == b"second, written meanwhile"


def test_open_checks_the_context_and_the_name(
    store: sealstore.EncryptedStore, backend: Backend
) -> None:
    """open() refuses another expected context, and a moved object even with the right one."""
    store.put("a", b"secret of a", context={"tenant": "acme"})
    with pytest.raises(sealstore.ContextMismatchError):
        store.open("a", context={"tenant": "evil"})
    assert store.open("a", context={"tenant": "acme"}).read() == b"secret of a"
    backend.copy("a", "b")
    with pytest.raises(sealstore.ContextMismatchError):
        store.open("b", context={"tenant": "acme"})


def test_copy_refuses_a_source_moved_at_the_backend(
    store: sealstore.EncryptedStore, backend: Backend
) -> None:
    """copy() does not turn ciphertext moved at the backend into a valid object."""
    store.put("a", b"secret of a")
    backend.copy("a", "b")
    with pytest.raises(sealstore.ContextMismatchError):
        store.copy("b", "c")
    assert [head.name for head in store.list()] == ["a", "b"]


def test_inline_rewrap_never_pairs_a_new_body_with_an_old_header(
    managed: sealstore.ManagedKeys, tmp_path: Path
) -> None:
    """An object replaced during an inline rewrap is left as its writer left it."""
    inner = FileSystemBackend(tmp_path / "objects")
    store = sealstore.EncryptedStore(inner, managed)
    store.put("obj", b"first")
    managed.rotate()

    class RacingBackend:
        keeps_metadata = False
        put = staticmethod(inner.put)
        head = staticmethod(inner.head)
        delete = staticmethod(inner.delete)
        list = staticmethod(inner.list)
        copy = staticmethod(inner.copy)
        raced = False

        def get(
            self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
        ) -> ReadableStream:
            if end is None and not self.raced:  # the rewrap's read of the whole object
                self.raced = True
                store.put("obj", b"second, written meanwhile")
            return inner.get(name, start=start, end=end, if_match=if_match)

    racing = sealstore.EncryptedStore(RacingBackend(), managed)
    with pytest.raises(sealstore.ObjectChangedError):
        racing.rewrap("obj")
    assert store.get("obj") == b"second, written meanwhile"


def test_damaged_objects_do_not_stop_listing_or_bulk_operations(
    store: sealstore.EncryptedStore, backend: Backend
) -> None:
    """list() reports an unreadable header; bulk operations do the rest and name it."""
    store.put("p/good", b"fine")
    if backend.keeps_metadata:
        backend.put("p/bad", b"body", metadata={METADATA_KEY: "detached:not base64!"})
    else:
        # A valid prefix whose header breaks its layout: damaged, not ambiguous.
        backend.put("p/bad", b"SEAL\x01\x01" + (30).to_bytes(4, "big") + bytes(20))
    backend.put("p/plain", b"legacy")
    heads = {head.name: head for head in store.list("p/", details=True)}
    assert heads["p/bad"].problem is not None
    assert heads["p/good"].problem is None
    report = store.encrypt_existing("p/")
    assert [(f.name, f.error) for f in report.failed] == [("p/bad", "FormatError")]
    assert (report.done, report.current) == (1, 1)
    assert store.get("p/plain") == b"legacy"
    report = store.rewrap_all("p/")
    assert [failure.name for failure in report.failed] == ["p/bad"]
    assert store.get("p/good") == b"fine"


class _VanishingBackend:
    """A MemoryBackend whose listings omit metadata (as S3's do) and whose objects named in
    ``vanish`` are deleted by "another client" right after they are listed."""

    def __init__(self, vanish: set[str]) -> None:
        self.inner = MemoryBackend()
        self.vanish = vanish
        self.keeps_metadata = True

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        listed = [attrs.evolve(info, metadata={}) for info in self.inner.list(prefix)]
        for name in self.vanish:
            self.inner.delete(name)
        return iter(listed)


def test_objects_deleted_meanwhile_are_skipped_by_list_and_bulk_operations(
    managed: sealstore.ManagedKeys,
) -> None:
    """Another client deleting an object between the listing and its turn neither stops
    list() nor a bulk operation, and the counts stay right."""
    backend = _VanishingBackend(set())
    store = sealstore.EncryptedStore(backend, managed)  # type: ignore[arg-type]
    for name in ("p/a", "p/b", "p/c"):
        store.put(name, name.encode())
    managed.rotate()
    backend.vanish = {"p/b"}
    assert [head.name for head in store.list("p/")] == ["p/a", "p/c"]
    store.put("p/b", b"again")
    report = store.rewrap_all("p/")
    assert (report.total, report.done, report.skipped, report.ok) == (3, 2, 1, True)
    backend.inner.put("p/b", b"plaintext again")
    report = store.encrypt_existing("p/")
    assert (report.total, report.current, report.skipped) == (3, 2, 1)


def test_bulk_operations_go_past_failures_and_name_them(
    backend: Backend, managed: sealstore.ManagedKeys
) -> None:
    """An object that cannot be rewrapped (its version retired) is reported by name and
    error type; the others are rewrapped, and a second run finds them current."""
    store = sealstore.EncryptedStore(backend, managed)
    store.put("p/old", b"under the first version")
    first = store.head("p/old").key_version or ""
    managed.rotate()
    store.put("p/new", b"under the second version")
    second = managed.rotate().id
    managed.retire(first)
    totals: list[int] = []
    report = store.rewrap_all("p/", progress=lambda done, total, name: totals.append(total))
    assert totals == [2, 2]
    assert [(f.name, f.error) for f in report.failed] == [("p/old", "KeyRetiredError")]
    assert first in report.failed[0].message
    assert (report.done, report.ok) == (1, False)
    assert store.head("p/new").key_version == second
    again = store.rewrap_all("p/")
    assert (again.done, again.current, len(again.failed)) == (0, 1, 1)


def test_kms_rewrap_skips_objects_already_under_the_key_unless_forced(
    backend: Backend,
) -> None:
    """A second rewrap_all asks the KMS nothing for objects already under the provider's key;
    force=True rewraps them anyway (to move blobs to a key's newest material)."""
    kms = MemoryKms(keys=["k1"])
    keys = sealstore.KmsKeys(kms, key_id="k1")
    store = sealstore.EncryptedStore(backend, keys)
    for name in ("a", "b"):
        store.put(name, b"x")
    kms.calls.clear()
    report = store.rewrap_all()
    assert (report.done, report.current) == (0, 2)
    assert kms.calls["decrypt"] + kms.calls["generate_data_key"] == 0
    assert store.rewrap_all(force=True).done == 2
    assert kms.calls["generate_data_key"] == 2


def test_plaintext_that_starts_like_a_header_can_be_read_and_migrated(tmp_path: Path) -> None:
    """On a backend without metadata, a legacy plaintext object starting with the magic is
    ambiguous: refused with advice, readable when plaintext reads are allowed, and encrypted
    by encrypt_existing only when asked to include it."""
    backend = FileSystemBackend(tmp_path / "store")
    legacy = b"SEALs are marine mammals; they are not a file format."
    backend.put("notes.txt", legacy)
    store = sealstore.EncryptedStore(backend, sealstore.ManagedKeys(sealstore.MemoryKeyringStore()))
    with pytest.raises(sealstore.FormatError, match="include_ambiguous"):
        store.get("notes.txt")
    assert store.head("notes.txt").problem is not None
    assert not store.head("notes.txt").encrypted
    lenient = sealstore.EncryptedStore(backend, store.keys, allow_plaintext_reads=True)
    assert lenient.get("notes.txt") == legacy
    report = store.encrypt_existing()
    assert [failure.name for failure in report.failed] == ["notes.txt"]
    assert store.encrypt_existing(include_ambiguous=True).done == 1
    assert store.get("notes.txt") == legacy
    assert store.head("notes.txt").encrypted


def test_an_overwrite_between_header_and_body_is_a_change_not_tampering(
    backend: Backend, managed: sealstore.ManagedKeys
) -> None:
    """Another writer replacing the object after its header was read makes the read fail
    with ObjectChangedError (read it again), never with DecryptionError (restore a copy)."""
    store = sealstore.EncryptedStore(backend, managed)
    store.put("doc", b"first version " * 2000)

    class OverwritingBackend:
        keeps_metadata = backend.keeps_metadata
        head = staticmethod(backend.head)
        put = staticmethod(backend.put)
        list = staticmethod(backend.list)
        copy = staticmethod(backend.copy)
        delete = staticmethod(backend.delete)
        raced = False

        def get(
            self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
        ) -> ReadableStream:
            if end is None and not self.raced:  # the read of the body
                self.raced = True
                store.put("doc", b"second version, written meanwhile")
            return backend.get(name, start=start, end=end, if_match=if_match)

    racing = sealstore.EncryptedStore(OverwritingBackend(), managed)
    with pytest.raises(sealstore.ObjectChangedError):
        racing.get("doc")
    assert racing.get("doc") == b"second version, written meanwhile"


def test_an_open_reader_sees_an_overwrite_as_a_change(
    backend: Backend, managed: sealstore.ManagedKeys
) -> None:
    """On backends with etags, every ranged read of an open object is conditional on the
    etag its header came with: a replaced object raises ObjectChangedError (past the first
    bytes, which S3 reads with the header)."""
    store = sealstore.EncryptedStore(backend, managed)
    etag = store.put("doc", os.urandom(400_000)).etag
    reader = store.open("doc")
    store.put("doc", os.urandom(400_000))
    if etag is None:
        with pytest.raises(sealstore.DecryptionError):  # no etags: only authentication fails
            reader.read()
        return
    with pytest.raises(sealstore.ObjectChangedError):
        reader.read()


def test_a_header_edited_to_name_another_object_is_tampering_not_a_move(
    backend: Backend, managed: sealstore.ManagedKeys
) -> None:
    """A header whose bound name was edited in place fails authentication and says so; only
    a header that authenticates, written for another name, is reported as moved."""
    store = sealstore.EncryptedStore(backend, managed)
    store.put("reports/q3", b"numbers")
    if backend.keeps_metadata:
        marker = backend.head("reports/q3").metadata[METADATA_KEY]
        raw = base64.b64decode(marker[len("detached:") :])
        edited = raw.replace(b"reports/q3", b"reports/q2")
        metadata = {METADATA_KEY: "detached:" + base64.b64encode(edited).decode()}
        backend.copy("reports/q3", "reports/q3", metadata=metadata)
    else:
        with closing(backend.get("reports/q3")) as stream:
            data = stream.read()
        backend.put("reports/q3", data.replace(b"reports/q3", b"reports/q2"))
    with pytest.raises(sealstore.DecryptionError, match="altered") as caught:
        store.get("reports/q3")
    assert not isinstance(caught.value, sealstore.ContextMismatchError)
    store.put("reports/q4", b"other numbers")
    backend.copy("reports/q4", "reports/q3")  # moved whole: authenticates, wrong name
    with pytest.raises(sealstore.ContextMismatchError, match="moved or copied"):
        store.get("reports/q3")


def test_a_body_read_without_its_detached_header_says_where_the_header_is() -> None:
    """Decrypting the body of a detached object alone points to the header= argument."""
    keys = sealstore.CustomerKeys(os.urandom(32))
    _, body = sealstore.encrypt_detached(b"data", keys)
    with pytest.raises(sealstore.FormatError, match="header="):
        sealstore.decrypt(body, keys)


@pytest.mark.parametrize("data", ["text", 42, None])
def test_put_of_something_that_is_not_data_says_what_to_pass(
    store: sealstore.EncryptedStore, data: object
) -> None:
    """put() of text or a non-data object raises InvalidDataError (a TypeError too), naming
    what it takes; nothing is stored."""
    with pytest.raises(sealstore.InvalidDataError, match="bytes, a binary file"):
        store.put("x", data)  # type: ignore[arg-type]
    assert issubclass(sealstore.InvalidDataError, TypeError)
    assert [head.name for head in store.list()] == []


@pytest.mark.parametrize("backend", ["memory", "s3-moto", "s3-seaweedfs"], indirect=True)
def test_migration_never_overwrites_a_write_made_meanwhile(
    backend: Backend, managed: sealstore.ManagedKeys
) -> None:
    """encrypt_existing replaces a plaintext object only while it is the one that was read:
    another writer's newer object is left as it is and the object is reported as failed."""
    backend.put("legacy", b"old plaintext")

    class RacingBackend:
        keeps_metadata = backend.keeps_metadata
        head = staticmethod(backend.head)
        get = staticmethod(backend.get)
        list = staticmethod(backend.list)
        copy = staticmethod(backend.copy)
        delete = staticmethod(backend.delete)
        raced = False

        def put(
            self,
            name: str,
            data: bytes | ReadableStream | Iterable[bytes],
            *,
            metadata: Mapping[str, str] | None = None,
            if_match: str | None = None,
        ) -> ObjectInfo:
            if not self.raced:
                self.raced = True
                backend.put(name, b"newer plaintext, written meanwhile")
            return backend.put(name, data, metadata=metadata, if_match=if_match)

    store = sealstore.EncryptedStore(RacingBackend(), managed)  # type: ignore[arg-type]
    report = store.encrypt_existing()
    assert [(f.name, f.error) for f in report.failed] == [("legacy", "ObjectChangedError")]
    with closing(backend.get("legacy")) as stream:
        assert stream.read() == b"newer plaintext, written meanwhile"
    assert store.encrypt_existing().done == 1


def test_a_bulk_rewrap_does_not_read_the_keyring_for_every_object() -> None:
    """Deciding whether each object is already current uses the keyring as last read: a
    rewrap of many objects reads the keyring a bounded number of times, not once each."""

    class CountingKeyringStore:
        def __init__(self) -> None:
            self.inner = sealstore.MemoryKeyringStore()
            self.loads = 0

        def load(self) -> bytes | None:
            self.loads += 1
            return self.inner.load()

        def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
            return self.inner.update(change)

    keyring = CountingKeyringStore()
    managed = sealstore.ManagedKeys(keyring)
    store = sealstore.EncryptedStore(MemoryBackend(), managed)
    for n in range(50):
        store.put(f"o{n}", b"x")
    managed.rotate()
    keyring.loads = 0
    assert store.rewrap_all().done == 50
    assert store.rewrap_all().current == 50
    assert keyring.loads <= 2
