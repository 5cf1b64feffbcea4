"""EncryptedStore.open(name, "wb"): a writer that encrypts and uploads as it is written,
in bounded memory, and stores the object only when it is closed."""

from __future__ import annotations

import gc
import io
import os
import threading
import tracemalloc
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import sealstore
from sealstore._io import Readable, pieces
from sealstore.backends import Backend, ObjectInfo
from sealstore.backends.filesystem import FileSystemBackend
from sealstore.backends.fsspec import FsspecBackend
from sealstore.backends.memory import MemoryBackend
from sealstore.backends.s3 import MIN_PART_SIZE, S3Backend
from sealstore.testing import MemoryKms
from sealstore.writer import DEFAULT_LIMIT
from tests.every_backend import BACKEND_KINDS, make_backend

if TYPE_CHECKING:
    pass

CHUNK = 16384


@pytest.fixture(params=BACKEND_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every backend; the S3 ones on real servers, with the smallest part size S3 allows."""
    return make_backend(request.param, request, tmp_path, part_size=MIN_PART_SIZE)


@pytest.fixture
def store(backend: Backend) -> sealstore.EncryptedStore:
    """A store writing managed-mode objects."""
    return sealstore.EncryptedStore(backend, sealstore.ManagedKeys(sealstore.MemoryKeyringStore()))


def _leftovers(backend: Backend, tmp_path: Path) -> list[str]:
    """What an abandoned write could leave behind: temporary files, incomplete uploads."""
    if isinstance(backend, FileSystemBackend):
        return [str(p) for p in (tmp_path / "store").rglob(".sealstore-*")]
    if isinstance(backend, S3Backend):
        client: Any = backend.client
        listed = client.list_multipart_uploads(Bucket=backend.bucket, Prefix=backend.prefix)
        return [upload["Key"] for upload in listed.get("Uploads", [])]
    if isinstance(backend, FsspecBackend):
        fs: Any = backend._fs
        return [path for path in fs.find(backend._root) if ".sealstore-" in path]
    return []


def _names(store: sealstore.EncryptedStore) -> list[str]:
    return [head.name for head in store.list()]


# Writes of awkward sizes: across chunks, across the pipe's limit, and more than one S3 part.
SIZES = [1, CHUNK - 1, 3 * CHUNK + 5, DEFAULT_LIMIT + 3, 2 * MIN_PART_SIZE // 3]


def test_writer_round_trip(store: sealstore.EncryptedStore, tmp_path: Path) -> None:
    """What is written in pieces of any size reads back whole, stored only once closed."""
    data = os.urandom(sum(SIZES))
    with store.open("dir/written.bin", "wb", context={"team": "a"}) as writer:
        offset = 0
        for size in SIZES:
            assert writer.write(memoryview(data)[offset : offset + size]) == size
            offset += size
            assert writer.tell() == offset
        writer.flush()
        assert "dir/written.bin" not in _names(store)
    assert writer.closed
    assert writer.result is not None
    assert writer.result.plaintext_size == len(data)
    assert store.head("dir/written.bin").context == {"team": "a"}
    assert store.get("dir/written.bin", context={"team": "a"}) == data
    assert _leftovers(store.backend, tmp_path) == []


def test_writer_empty_object(store: sealstore.EncryptedStore) -> None:
    """A writer closed without a write stores an empty object."""
    store.open("empty", "wb").close()
    assert store.get("empty") == b""


def test_exception_in_with_stores_nothing(store: sealstore.EncryptedStore, tmp_path: Path) -> None:
    """An exception inside ``with`` leaves no object, no partial object, and the old one."""
    store.put("kept", b"old contents")
    # Past one S3 part: a multipart upload has begun when the block raises.
    replacing = store.open("kept", "wb")
    with pytest.raises(KeyError, match="boom"):
        _write_then_fail(replacing, MIN_PART_SIZE + CHUNK)
    writer = store.open("new", "wb")
    with pytest.raises(KeyError, match="boom"):
        _write_then_fail(writer, 100)
    assert writer.closed
    assert writer.result is None
    assert _names(store) == ["kept"]
    assert store.get("kept") == b"old contents"
    assert _leftovers(store.backend, tmp_path) == []


def _write_then_fail(writer: sealstore.EncryptedWriter[sealstore.ObjectHead], size: int) -> None:
    with writer:
        writer.write(os.urandom(size))
        raise KeyError("boom")


def test_dropped_writer_stores_nothing(store: sealstore.EncryptedStore, tmp_path: Path) -> None:
    """A writer dropped without close() is discarded, not committed."""
    writer = store.open("dropped", "wb")
    writer.write(os.urandom(DEFAULT_LIMIT + CHUNK))
    del writer
    gc.collect()
    assert _names(store) == []
    assert _leftovers(store.backend, tmp_path) == []


def test_discard_stores_nothing() -> None:
    """discard() abandons the upload; writing afterwards is refused."""
    store = sealstore.EncryptedStore(
        MemoryBackend(), sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    )
    writer = store.open("discarded", "wb")
    writer.write(b"abc")
    writer.discard()
    writer.discard()
    writer.close()  # already closed: nothing happens
    assert writer.closed
    assert list(store.list()) == []
    for call in (lambda: writer.write(b"more"), writer.tell, writer.flush):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_upload_error_raised_by_close() -> None:
    """A name the storage refuses fails the close that would store it; nothing is stored."""
    store = sealstore.EncryptedStore(
        MemoryBackend(), sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    )
    writer = store.open("bad//name", "wb")
    with pytest.raises(sealstore.InvalidNameError):
        writer.close()
    assert writer.closed
    writer.close()  # the error was raised once; the writer stays closed
    assert list(store.list()) == []


def test_upload_error_raised_by_write(tmp_path: Path) -> None:
    """An upload that fails while data is still coming fails the next write, not a later
    close: a writer never blocks forever on an upload that has ended."""
    store = sealstore.EncryptedStore(
        FileSystemBackend(tmp_path / "store"),
        sealstore.ManagedKeys(sealstore.MemoryKeyringStore()),
    )
    store.put("file", b"an object, so that file/ cannot be a directory")
    writer = store.open("file/inside", "wb")
    with pytest.raises(sealstore.BackendError):
        writer.write(bytes(8 * DEFAULT_LIMIT))
    assert writer.closed
    assert _names(store) == ["file"]


def test_unusable_key_fails_open() -> None:
    """A key that cannot wrap fails open() itself, before anything is written."""
    keys = sealstore.KmsKeys(MemoryKms(), key_id="no-such-key")
    store = sealstore.EncryptedStore(MemoryBackend(), keys)
    with pytest.raises(sealstore.KeyNotFoundError):
        store.open("x", "wb")
    gc.collect()
    with pytest.raises(sealstore.ProviderMismatchError):
        sealstore.EncryptedStore(MemoryBackend()).open("x", "wb")


def test_customer_keys_per_writer(customer_keys: sealstore.CustomerKeys) -> None:
    """A writer takes per-request keys like put(); the object then needs them to be read."""
    store = sealstore.EncryptedStore(MemoryBackend())
    with store.open("secret", "wb", keys=customer_keys) as writer:
        writer.write(b"for your eyes only")
    assert store.get("secret", keys=customer_keys) == b"for your eyes only"
    assert "for your eyes" not in repr(writer)
    assert repr(writer) == "<EncryptedWriter 'secret': closed>"


@pytest.fixture
def customer_keys() -> sealstore.CustomerKeys:
    """A random customer key."""
    return sealstore.CustomerKeys(os.urandom(32))


class _CountingSink:
    """A backend that reads every byte put and keeps only how many there were."""

    keeps_metadata = False

    def __init__(self) -> None:
        self.stored: dict[str, int] = {}

    def put(
        self,
        name: str,
        data: bytes | Readable | Iterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        size = sum(len(memoryview(piece)) for piece in pieces(data))
        self.stored[name] = size
        return ObjectInfo(name=name, size=size)


def test_writer_memory_is_bounded() -> None:
    """Writing 24 MiB holds a few MiB at most: the writer waits for the upload."""
    sink = _CountingSink()
    store = sealstore.EncryptedStore(
        sink,  # type: ignore[arg-type]
        sealstore.ManagedKeys(sealstore.MemoryKeyringStore()),
    )
    piece = bytes(256 * 1024)
    tracemalloc.start()
    try:
        with store.open("large", "wb") as writer:
            for _ in range(96):
                writer.write(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sink.stored["large"] > 24 << 20
    assert peak < 8 << 20


def test_writer_thread_ends_with_the_writer() -> None:
    """No upload thread outlives its writer, whether closed, discarded or dropped."""
    store = sealstore.EncryptedStore(
        MemoryBackend(), sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    )
    before = threading.active_count()
    first = store.open("a", "wb")
    second = store.open("b", "wb")
    store.open("c", "wb").write(b"dropped at once")
    gc.collect()
    assert threading.active_count() == before + 2
    first.close()
    second.discard()
    assert threading.active_count() == before
    assert [head.name for head in store.list()] == ["a"]
    assert isinstance(first, io.BufferedIOBase)
    assert first.writable()
    assert not first.readable()
    assert not first.seekable()
