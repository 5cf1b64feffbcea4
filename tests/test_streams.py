"""Streams: non-blocking streams are refused, short writes continued, memory stays bounded."""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typing_extensions import Buffer

import sealstore
from sealstore.backends.memory import MemoryBackend
from sealstore.envelope import EncryptingReader
from sealstore.keys.managed import MemoryKeyringStore

PIPE_CAPACITY = 1 << 16
"""At least what a pipe holds before a non-blocking write would block (Linux: 64 KiB)."""


class StallingSource:
    """A non-blocking source: some bytes, then ``None`` (no data yet), then the rest."""

    def __init__(self, first: bytes, rest: bytes) -> None:
        self._replies: list[bytes | None] = [first, None, rest, b""]

    def read(self, size: int = -1, /) -> bytes | None:
        reply = self._replies.pop(0)
        assert reply is None or len(reply) <= size or size < 0
        return reply


class StallingIntoSource:
    """A non-blocking raw source read through ``readinto``: some bytes, then ``None``."""

    def __init__(self, first: bytes) -> None:
        self._first: bytes | None = first

    def read(self, size: int = -1, /) -> bytes:
        raise AssertionError("readinto is used when there is one")

    def readinto(self, buffer: Buffer, /) -> int | None:
        if self._first is None:
            return None
        with memoryview(buffer) as view:
            view[: len(self._first)] = self._first
        count, self._first = len(self._first), None
        return count


class ShortSink:
    """A raw sink that takes at most ``limit`` bytes per write and says how many it took."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()

    def write(self, data: Buffer, /) -> int:
        with memoryview(data) as view:
            taken = view[: self.limit]
            self.data += taken
            return len(taken)


class NoneSink:
    """A file-like sink (not an ``io`` stream) that takes everything and returns ``None``."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: Buffer, /) -> None:
        with memoryview(data) as view:
            self.data += view


class WouldBlockRaw(io.RawIOBase):
    """A raw stream that takes a few bytes, then returns ``None``: it would block."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer, /) -> int | None:
        if self.data:
            return None
        with memoryview(data) as view:
            self.data += view[:10]
        return 10


@pytest.fixture
def managed() -> sealstore.ManagedKeys:
    """Managed keys over a keyring in memory, for stores."""
    return sealstore.ManagedKeys(MemoryKeyringStore())


@pytest.fixture
def pipe() -> Iterator[tuple[io.FileIO, io.FileIO]]:
    """A real pipe whose ends are both non-blocking raw files: ``(reader, writer)``."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    with io.FileIO(read_fd, "rb") as reader, io.FileIO(write_fd, "wb") as writer:
        yield reader, writer


# A None from read() is refused, never taken as the end of the stream.


def test_encrypt_stream_refuses_a_non_blocking_source(
    keys: sealstore.CustomerKeys, pipe: tuple[io.FileIO, io.FileIO]
) -> None:
    """encrypt_stream from a non-blocking pipe with no data yet raises instead of sealing short."""
    reader, writer = pipe
    writer.write(b"only the first part")
    sink = io.BytesIO()
    with pytest.raises(TypeError, match="non-blocking streams are not supported"):
        sealstore.encrypt_stream(reader, sink, keys)


def test_encrypt_stream_refuses_none_from_read(keys: sealstore.CustomerKeys) -> None:
    """A source without readinto whose read returns None mid-stream is refused."""
    source = StallingSource(b"a" * 1000, b"b" * 1000)
    with pytest.raises(TypeError, match="read\\(\\) returned None"):
        sealstore.encrypt_stream(source, io.BytesIO(), keys)  # type: ignore[arg-type]


def test_encrypt_stream_refuses_none_from_readinto(keys: sealstore.CustomerKeys) -> None:
    """A raw source whose readinto returns None mid-stream is refused."""
    with pytest.raises(TypeError, match="readinto\\(\\) returned None"):
        sealstore.encrypt_stream(StallingIntoSource(b"abc"), io.BytesIO(), keys)


def test_decrypt_stream_refuses_a_non_blocking_source(
    keys: sealstore.CustomerKeys, pipe: tuple[io.FileIO, io.FileIO]
) -> None:
    """decrypt_stream from a non-blocking pipe holding half an object raises, and not as damage."""
    blob = sealstore.encrypt(os.urandom(40_000), keys)
    reader, writer = pipe
    writer.write(blob[:30_000])
    with pytest.raises(TypeError, match="non-blocking streams are not supported"):
        sealstore.decrypt_stream(reader, io.BytesIO(), keys)


def test_reading_a_header_refuses_none_from_read(keys: sealstore.CustomerKeys) -> None:
    """A header read through read_up_to refuses a None instead of reporting a short header."""
    blob = sealstore.encrypt(b"x", keys)
    source = StallingSource(blob[:5], blob[5:])
    with pytest.raises(TypeError, match="non-blocking"):
        sealstore.decrypt_stream(source, io.BytesIO(), keys)  # type: ignore[arg-type]


def test_encrypting_reader_refuses_none_from_read(keys: sealstore.CustomerKeys) -> None:
    """EncryptingReader raises on a None from its source instead of finishing the object."""
    reader = EncryptingReader(StallingSource(b"a" * 1000, b"b" * 1000), keys)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-blocking"):
        reader.read()


def test_store_put_refuses_a_non_blocking_source(
    managed: sealstore.ManagedKeys, pipe: tuple[io.FileIO, io.FileIO]
) -> None:
    """EncryptedStore.put from a non-blocking pipe stores nothing rather than a short object."""
    store = sealstore.EncryptedStore(MemoryBackend(), managed)
    reader, writer = pipe
    writer.write(b"more is coming")
    with pytest.raises(TypeError, match="non-blocking"):
        store.put("a", reader)
    assert [info.name for info in store.backend.list("")] == []


# A None from write() is refused; a short write is continued.


def test_decrypt_stream_refuses_a_non_blocking_sink(
    keys: sealstore.CustomerKeys, pipe: tuple[io.FileIO, io.FileIO]
) -> None:
    """decrypt_stream into a full non-blocking pipe raises instead of reporting bytes it lost."""
    plaintext = os.urandom(300_000)
    blob = sealstore.encrypt(plaintext, keys)
    reader, writer = pipe
    with pytest.raises(TypeError, match="non-blocking streams are not supported"):
        sealstore.decrypt_stream(io.BytesIO(blob), writer, keys)
    received = reader.read(len(plaintext) + 1) or b""
    assert 0 < len(received) < len(plaintext)
    assert plaintext.startswith(received)


def test_encrypt_stream_refuses_none_from_a_raw_write(keys: sealstore.CustomerKeys) -> None:
    """A raw stream whose write returns None (it would block) is refused: it took only part
    of the bytes."""
    with pytest.raises(TypeError, match="write\\(\\) returned None"):
        sealstore.encrypt_stream(io.BytesIO(b"data"), WouldBlockRaw(), keys)


def test_a_file_like_sink_returning_none_takes_everything(keys: sealstore.CustomerKeys) -> None:
    """A file-like object that is not an io stream and returns None from write (as web
    responses do) is taken to have written everything, as shutil.copyfileobj takes it."""
    sink = NoneSink()
    written = sealstore.encrypt_stream(io.BytesIO(b"data" * 10_000), sink, keys)
    assert written == len(sink.data)
    out = NoneSink()
    assert sealstore.decrypt_stream(io.BytesIO(bytes(sink.data)), out, keys) == 40_000
    assert out.data == b"data" * 10_000


def test_a_sink_taking_nothing_is_refused(keys: sealstore.CustomerKeys) -> None:
    """A write that takes no bytes is refused rather than retried for ever."""
    with pytest.raises(TypeError, match="write\\(\\) returned 0"):
        sealstore.encrypt_stream(io.BytesIO(b"data"), ShortSink(0), keys)


@pytest.mark.parametrize("limit", [1, 1000, 70_000])
def test_short_writes_are_continued(keys: sealstore.CustomerKeys, limit: int) -> None:
    """encrypt_stream and decrypt_stream write everything into a sink taking a little at a time."""
    plaintext = os.urandom(100_000)
    encrypted = ShortSink(limit)
    written = sealstore.encrypt_stream(io.BytesIO(plaintext), encrypted, keys)
    assert written == len(encrypted.data)
    decrypted = ShortSink(limit)
    assert sealstore.decrypt_stream(io.BytesIO(encrypted.data), decrypted, keys) == len(plaintext)
    assert decrypted.data == plaintext


def test_store_download_refuses_a_non_blocking_sink(
    managed: sealstore.ManagedKeys, pipe: tuple[io.FileIO, io.FileIO]
) -> None:
    """EncryptedStore.download into a full non-blocking pipe raises instead of losing bytes."""
    store = sealstore.EncryptedStore(MemoryBackend(), managed)
    store.put("a", os.urandom(PIPE_CAPACITY * 4))
    _, writer = pipe
    with pytest.raises(TypeError, match="non-blocking"):
        store.download("a", writer)


def test_plaintext_download_continues_short_writes(managed: sealstore.ManagedKeys) -> None:
    """A plaintext object downloaded into a sink taking 1000 bytes per write arrives whole."""
    backend = MemoryBackend()
    content = os.urandom(50_000)
    backend.put("legacy", content)
    store = sealstore.EncryptedStore(backend, managed, allow_plaintext_reads=True)
    sink = ShortSink(1000)
    assert store.download("legacy", sink) == len(content)
    assert sink.data == content


def test_plaintext_download_refuses_a_non_blocking_sink(managed: sealstore.ManagedKeys) -> None:
    """A plaintext object downloaded into a raw stream whose write returns None raises."""
    backend = MemoryBackend()
    backend.put("legacy", b"plain bytes")
    store = sealstore.EncryptedStore(backend, managed, allow_plaintext_reads=True)
    with pytest.raises(TypeError, match="non-blocking"):
        store.download("legacy", WouldBlockRaw())


# Reading to the end trusts no size before it is authenticated.

SPARSE_SIZE = 64 << 30
"""What a sparse extension makes the object claim to be: far more than memory."""
READ_PEAK_LIMIT = 16 << 20


def _sparse_object(path: Path, keys: sealstore.CustomerKeys, size: int) -> None:
    """A real object of ``size`` plaintext bytes, extended (sparsely) to 64 GiB of storage."""
    path.write_bytes(sealstore.encrypt(os.urandom(size), keys))
    os.truncate(path, SPARSE_SIZE)


def _peak_while_failing(read: Callable[[], bytes]) -> int:
    """Peak bytes traced while ``read`` runs; it must fail authentication."""
    tracemalloc.start()
    try:
        with pytest.raises(sealstore.DecryptionError):
            read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("size", [100, 70_000, 3 << 20])
@pytest.mark.parametrize("how", ["read()", "read(-1)", "readall()", "read(n)"])
def test_reading_to_the_end_of_a_lying_size_fails_in_bounded_memory(
    tmp_path: Path, keys: sealstore.CustomerKeys, size: int, how: str
) -> None:
    """A small object sparsely extended to 64 GiB fails authentication within a few MiB."""
    path = tmp_path / "object"
    _sparse_object(path, keys, size)
    with path.open("rb") as file, sealstore.open_decrypted(file, keys) as reader:
        assert reader.size > SPARSE_SIZE // 2  # the size claimed, not yet authenticated
        calls: dict[str, Callable[[], bytes]] = {
            "read()": reader.read,
            "read(-1)": lambda: reader.read(-1),
            "readall()": reader.readall,
            "read(n)": lambda: reader.read(SPARSE_SIZE),
        }
        assert _peak_while_failing(calls[how]) < READ_PEAK_LIMIT
        with pytest.raises(sealstore.DecryptionError):
            reader.read(1)  # the reader stays failed


def test_reading_to_the_end_reads_every_piece(keys: sealstore.CustomerKeys) -> None:
    """read() and read(n) across several pieces return exactly the plaintext."""
    plaintext = os.urandom((3 << 20) + 12_345)
    blob = sealstore.encrypt(plaintext, keys)
    with sealstore.open_decrypted(io.BytesIO(blob), keys) as reader:
        assert reader.read(10) == plaintext[:10]
        assert reader.read(2 << 20) == plaintext[10 : (2 << 20) + 10]
        assert reader.read() == plaintext[(2 << 20) + 10 :]
        assert reader.read() == b""
        assert reader.read(5) == b""
        reader.seek(len(plaintext) + 10)
        assert reader.read() == b""


# An iterable of many small pieces is read in linear time.


class AllocationMeter:
    """Bytes allocated (traced) between successive ``tick`` calls, summed.

    Each tick adds how far traced memory rose above its level at the previous tick: work
    that copies everything gathered so far at every step adds up to the square of the size.
    """

    def __init__(self) -> None:
        self.allocated = 0
        self._level = tracemalloc.get_traced_memory()[0]

    def tick(self) -> None:
        current, peak = tracemalloc.get_traced_memory()
        self.allocated += max(peak - self._level, 0)
        tracemalloc.reset_peak()
        self._level = current


def test_many_small_pieces_are_gathered_without_recopying(managed: sealstore.ManagedKeys) -> None:
    """put() of 65,536 one-byte pieces allocates in proportion to the size, not its square."""
    data = os.urandom(1 << 16)
    store = sealstore.EncryptedStore(MemoryBackend(), managed)
    store.put("warm-up", [b"x"])  # the first version, made outside the measurement

    def pieces(meter: AllocationMeter) -> Iterator[bytes]:
        for index in range(len(data)):
            meter.tick()
            yield data[index : index + 1]
        meter.tick()

    tracemalloc.start()
    try:
        idle = AllocationMeter()  # what the measuring itself allocates
        for _ in pieces(idle):
            pass
        meter = AllocationMeter()
        store.put("small-pieces", pieces(meter))
    finally:
        tracemalloc.stop()
    # Copying everything gathered so far at each piece would allocate 2 GiB here.
    assert meter.allocated - idle.allocated < 16 * len(data)
    assert store.get("small-pieces") == data


def test_iterable_pieces_of_every_size_read_back_exactly(managed: sealstore.ManagedKeys) -> None:
    """Pieces of mixed sizes (empty, tiny, larger than a read) are stored byte for byte."""
    parts: list[bytes] = [b"", b"a", os.urandom(3 << 20), b"", b"bc", b"def", b"g"]
    store = sealstore.EncryptedStore(MemoryBackend(), managed)
    store.put("mixed", parts)
    assert store.get("mixed") == b"".join(parts)


@pytest.mark.parametrize("bad", [["text"], [b"ok", 5], "text"])
def test_iterables_of_anything_but_bytes_are_refused(
    managed: sealstore.ManagedKeys, bad: object
) -> None:
    """put() of str, or of an iterable yielding something other than bytes, raises TypeError."""
    store = sealstore.EncryptedStore(MemoryBackend(), managed)
    with pytest.raises(TypeError, match="bytes"):
        store.put("bad", bad)  # type: ignore[arg-type]
    assert [info.name for info in store.backend.list("")] == []


def test_unusable_streams_and_data_are_sealstore_errors(keys: sealstore.CustomerKeys) -> None:
    """A non-blocking stream and data of the wrong kind raise InvalidDataError: a sealstore
    error that is also a TypeError."""
    with pytest.raises(sealstore.InvalidDataError, match="non-blocking"):
        sealstore.encrypt_stream(io.BytesIO(b"data"), WouldBlockRaw(), keys)
    with pytest.raises(sealstore.InvalidDataError, match="encode text first"):
        MemoryBackend().put("x", "text")  # type: ignore[arg-type]
