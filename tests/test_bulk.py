"""Large bodies and streams on several threads: same bytes, same refusals, bounded memory.

The threaded paths are driven here with batches of one chunk, so the Wycheproof chunked
vectors (a few chunks each) go through several batches, several threads and the read-ahead
that finds a stream's final batch.
"""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc

import pytest
from typing_extensions import Buffer

import sealstore
from sealstore import _aead, _bulk
from tests.test_chunked_vectors import (
    KEY_SIZE,
    REFUSED,
    VALID,
    ChunkedVector,
    _authentic_prefix,
    _message,
    _params,
)

CHUNK = _aead.CHUNK_SIZE


class Sink:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: Buffer, /) -> int:
        with memoryview(data) as view:
            self.data += view
            return view.nbytes


class Discard:
    """A sink that keeps nothing."""

    def write(self, data: Buffer, /) -> int:
        with memoryview(data) as view:
            return view.nbytes


class ReadOnly:
    """A source with ``read`` alone (no ``readinto``), returning short reads."""

    def __init__(self, data: bytes, most: int = 5000) -> None:
        self._data = io.BytesIO(data)
        self._most = most

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(min(size, self._most))


def _decrypt(body: bytes, key: bytes, context: bytes) -> bytes:
    """The independent single-pass decryption of a whole body."""
    out = bytearray(_aead.plaintext_size(len(body)))
    with memoryview(out) as view:
        _aead.decrypt_body_into(key, context, body, view)
    return bytes(out)


def _open_body(vector: ChunkedVector, threads: int) -> bytes:
    out = bytearray(_aead.plaintext_size(len(vector.ct)))
    with memoryview(out) as view:
        _bulk.open_body_into(
            vector.key, vector.ctx, vector.ct, view, threads=threads, batch_chunks=1
        )
    return bytes(out)


def _open_stream(vector: ChunkedVector, threads: int, sink: Sink) -> int:
    return _bulk.open_stream(
        vector.key,
        vector.ctx,
        io.BytesIO(vector.ct),
        sink,
        threads=threads,
        callback=None,
        batch_chunks=1,
    )


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("vector", _params(VALID))
def test_threaded_paths_decrypt_valid_vectors(vector: ChunkedVector, threads: int) -> None:
    """A valid vector decrypts to its message as a whole body and as a stream, by batches."""
    message = _message(vector)
    assert _open_body(vector, threads) == message
    sink = Sink()
    assert _open_stream(vector, threads, sink) == len(message)
    assert sink.data == message
    opener = _aead.ChunkOpener(vector.key, vector.ctx, vector.ct[: _aead.BODY_PREFIX_SIZE])
    out = bytearray(len(message))
    run = vector.ct[_aead.BODY_PREFIX_SIZE :]
    assert opener.open_run_into(0, run, out, final=True) == len(message)
    assert out == message


@pytest.mark.parametrize("vector", _params(REFUSED))
def test_threaded_paths_refuse_invalid_vectors(vector: ChunkedVector) -> None:
    """An invalid vector is refused; the stream released at most its authentic prefix."""
    with pytest.raises(sealstore.DecryptionError):
        _open_body(vector, 2)
    sink = Sink()
    with pytest.raises(sealstore.DecryptionError):
        _open_stream(vector, 2, sink)
    assert len(sink.data) <= vector.msg_length
    assert bytes(sink.data) == _authentic_prefix(vector)[: len(sink.data)]
    if len(vector.ct) >= _aead.BODY_PREFIX_SIZE + _aead.TAG_SIZE:
        try:
            opener = _aead.ChunkOpener(vector.key, vector.ctx, vector.ct[: _aead.BODY_PREFIX_SIZE])
        except sealstore.DecryptionError:
            return
        run = vector.ct[_aead.BODY_PREFIX_SIZE :]
        with pytest.raises(sealstore.DecryptionError):
            opener.open_run_into(0, run, bytearray(len(run)), final=True)


@pytest.mark.parametrize("vector", _params(KEY_SIZE))
def test_threaded_paths_refuse_invalid_key_size(vector: ChunkedVector) -> None:
    with pytest.raises(sealstore.InvalidKeyError):
        _bulk.open_stream(
            vector.key, vector.ctx, io.BytesIO(vector.ct), Sink(), threads=2, callback=None
        )


def test_open_run_into_refuses_runs_that_cannot_be_whole() -> None:
    """A run cut inside a chunk, a final run cut on a boundary, and indices past 2^38."""
    key, context = os.urandom(32), b"ctx"
    sealer = _aead.ChunkSealer.new(key, context)
    opener = _aead.ChunkOpener(key, context, sealer.prefix)
    sealed = sealer.seal_chunk(0, bytes(CHUNK))
    out = bytearray(2 * CHUNK)
    with pytest.raises(sealstore.DecryptionError):
        opener.open_run_into(0, sealed[:-1], out, final=False)
    with pytest.raises(sealstore.DecryptionError):
        opener.open_run_into(0, sealed, out, final=True)
    with pytest.raises(sealstore.DecryptionError):
        opener.open_run_into(0, sealed[:15], out, final=True)
    with pytest.raises(sealstore.DecryptionError):
        opener.open_run_into(_aead.MAX_CHUNKS, sealed[:16], out, final=True)
    with pytest.raises(sealstore.DecryptionError):
        opener.open_run_into(-1, sealed, out, final=False)
    assert opener.open_run_into(0, sealed, out, final=False) == CHUNK
    with pytest.raises(sealstore.DecryptionError):
        opener.open_chunk_into(0, sealed[:15], out)
    with pytest.raises(sealstore.DecryptionError):
        opener.open_chunk_into(1, sealed, out)


SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 7]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("size", SIZES)
def test_threaded_sealing_makes_bodies_the_single_pass_decryptor_reads(
    size: int, threads: int
) -> None:
    """Bodies sealed by batches, whole or streamed, decrypt with the single-pass decryptor."""
    key, context = os.urandom(32), b"ctx"
    message = hashlib.shake_256(size.to_bytes(8, "big")).digest(size)
    body = bytearray(_aead.body_size(size))
    with memoryview(body) as view:
        _bulk.seal_body_into(key, context, message, view, threads=threads, batch_chunks=1)
    assert _decrypt(bytes(body), key, context) == message
    sink = Sink()
    progress: list[int] = []
    written, consumed = _bulk.seal_stream(
        key,
        context,
        ReadOnly(message),
        sink,
        threads=threads,
        callback=progress.append,
        batch_chunks=1,
    )
    assert written == len(sink.data) == _aead.body_size(size)
    assert consumed == sum(progress) == size
    assert _decrypt(bytes(sink.data), key, context) == message
    opened = Sink()
    seen: list[int] = []
    count = _bulk.open_stream(
        key,
        context,
        ReadOnly(bytes(sink.data)),
        opened,
        threads=threads,
        callback=seen.append,
        batch_chunks=1,
    )
    assert count == sum(seen) == size
    assert opened.data == message


@pytest.fixture
def keys() -> sealstore.CustomerKeys:
    return sealstore.CustomerKeys(os.urandom(32))


@pytest.mark.parametrize(
    "size",
    [
        _bulk.PARALLEL_THRESHOLD - 1,
        _bulk.PARALLEL_THRESHOLD,
        _bulk.PARALLEL_THRESHOLD + CHUNK,
        3 * _bulk.BATCH_SIZE + 5,
    ],
)
def test_any_thread_count_reads_what_any_other_wrote(
    keys: sealstore.CustomerKeys, size: int
) -> None:
    """Objects made with one thread or three decrypt with either, in memory and streamed."""
    message = os.urandom(size)
    for writer in (1, 3):
        blob = sealstore.encrypt(message, keys, threads=writer)
        streamed = io.BytesIO()
        sealstore.encrypt_stream(io.BytesIO(message), streamed, keys, threads=writer)
        assert len(streamed.getvalue()) == len(blob)
        for reader in (1, 3):
            for sealed in (blob, streamed.getvalue()):
                assert sealstore.decrypt(sealed, keys, threads=reader) == message
                out = io.BytesIO()
                sealstore.decrypt_stream(io.BytesIO(sealed), out, keys, threads=reader)
                assert out.getvalue() == message


def test_decrypt_stream_writes_only_authenticated_batches_in_order(
    keys: sealstore.CustomerKeys,
) -> None:
    """A chunk altered in the fourth megabyte: what reached the sink is a prefix ending
    before it, and DecryptionError is raised."""
    message = os.urandom(6 * _bulk.BATCH_SIZE + 100)
    blob = bytearray(sealstore.encrypt(message, keys))
    header = sealstore.header.header_size(bytes(blob[:10]))
    damaged_chunk = 3 * _bulk.BATCH_CHUNKS + 5
    at = header + _aead.BODY_PREFIX_SIZE + damaged_chunk * _aead.SEALED_CHUNK_SIZE + 9
    blob[at] ^= 1
    sink = Sink()
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt_stream(io.BytesIO(bytes(blob)), sink, keys, threads=2)
    assert len(sink.data) <= damaged_chunk * CHUNK
    assert sink.data == message[: len(sink.data)]
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt(bytes(blob), keys, threads=2)


def test_decrypt_stream_refuses_a_body_cut_on_a_batch_boundary(
    keys: sealstore.CustomerKeys,
) -> None:
    """A stream that stops after whole batches lacks its final chunk: refused."""
    message = os.urandom(3 * _bulk.BATCH_SIZE + 10)
    blob = sealstore.encrypt(message, keys)
    header = sealstore.header.header_size(blob[:10])
    cut = header + _aead.BODY_PREFIX_SIZE + 2 * _bulk.BATCH_CHUNKS * _aead.SEALED_CHUNK_SIZE
    sink = Sink()
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt_stream(io.BytesIO(blob[:cut]), sink, keys, threads=2)
    assert sink.data == message[: len(sink.data)]


def test_streams_stay_within_their_buffers(keys: sealstore.CustomerKeys) -> None:
    """Encrypting and decrypting 24 MiB on 2 threads allocates about (threads + 2) batches
    of input and output, never a buffer per batch."""
    message = bytes(24 * _bulk.BATCH_SIZE)
    sealed = io.BytesIO()
    tracemalloc.start()
    try:
        sealstore.encrypt_stream(io.BytesIO(message), sealed, keys, threads=2)
        _, encrypt_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        sealed.seek(0)
        before, _ = tracemalloc.get_traced_memory()
        sealstore.decrypt_stream(sealed, Discard(), keys, threads=2)
        _, decrypt_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    bound = (2 + 2) * 2 * _bulk.BATCH_SIZE + (1 << 20)
    # The encrypted copy itself grows in the BytesIO during encryption.
    assert encrypt_peak - len(sealed.getvalue()) < bound
    assert decrypt_peak - before < bound


def test_writer_errors_stop_the_pool(keys: sealstore.CustomerKeys) -> None:
    """An error from the sink reaches the caller unchanged."""

    class Broken:
        def write(self, data: Buffer, /) -> int:
            raise OSError("disk full")

    message = bytes(4 * _bulk.BATCH_SIZE)
    with pytest.raises(OSError, match="disk full"):
        sealstore.encrypt_stream(io.BytesIO(message), Broken(), keys, threads=2)
    blob = sealstore.encrypt(message, keys)
    with pytest.raises(OSError, match="disk full"):
        sealstore.decrypt_stream(io.BytesIO(blob), Broken(), keys, threads=2)


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_bad_thread_counts_are_refused(keys: sealstore.CustomerKeys, threads: object) -> None:
    """threads= takes a whole number, 1 or more, whatever the size of the data."""
    with pytest.raises(ValueError, match="threads"):
        sealstore.encrypt(b"x", keys, threads=threads)  # type: ignore[arg-type]
    blob = sealstore.encrypt(b"x", keys)
    with pytest.raises(ValueError, match="threads"):
        sealstore.decrypt(blob, keys, threads=threads)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        sealstore.encrypt_stream(io.BytesIO(b"x"), Sink(), keys, threads=threads)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        sealstore.decrypt_stream(io.BytesIO(blob), Sink(), keys, threads=threads)  # type: ignore[arg-type]


def test_thread_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SEALSTORE_THREADS sets the default; an explicit count wins; nonsense is refused."""
    monkeypatch.delenv(_bulk.THREADS_VARIABLE, raising=False)
    assert _bulk.thread_count(None) == _bulk.DEFAULT_THREADS
    monkeypatch.setenv(_bulk.THREADS_VARIABLE, " 3 ")
    assert _bulk.thread_count(None) == 3
    assert _bulk.thread_count(1) == 1
    monkeypatch.setenv(_bulk.THREADS_VARIABLE, "")
    assert _bulk.thread_count(None) == _bulk.DEFAULT_THREADS
    for bad in ("0", "two", "-4"):
        monkeypatch.setenv(_bulk.THREADS_VARIABLE, bad)
        with pytest.raises(ValueError, match=_bulk.THREADS_VARIABLE):
            _bulk.thread_count(None)


def test_unready_source_is_refused(keys: sealstore.CustomerKeys) -> None:
    """A source whose read or readinto returns None is refused, never taken as the end."""

    class Unready:
        def read(self, size: int = -1, /) -> None:
            return None

    class UnreadyRaw(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Buffer, /) -> None:
            return None

    for source in (Unready(), UnreadyRaw()):
        with pytest.raises(sealstore.InvalidDataError):
            sealstore.encrypt_stream(source, Sink(), keys, threads=2)  # type: ignore[arg-type]


@pytest.mark.parametrize("threads", [1, 2])
def test_in_memory_sources_are_read_from_their_position_to_the_end(
    keys: sealstore.CustomerKeys, threads: int
) -> None:
    """A BytesIO is read from where it stands, and left at its end, as a file would be."""
    message = os.urandom(3 * _bulk.BATCH_SIZE + 11)
    source = io.BytesIO(b"skip" + message)
    source.seek(4)
    sealed = io.BytesIO()
    sealstore.encrypt_stream(source, sealed, keys, threads=threads)
    assert source.tell() == 4 + len(message)
    blob = b"junk" + sealed.getvalue()
    source = io.BytesIO(blob)
    source.seek(4)
    out = io.BytesIO()
    assert sealstore.decrypt_stream(source, out, keys, threads=threads) == len(message)
    assert out.getvalue() == message
    assert source.tell() == len(blob)
    source.write(b"more")  # the source is still usable: nothing holds on to its buffer
    assert source.getvalue().endswith(b"more")


@pytest.mark.parametrize("threads", [1, 2])
def test_stream_callbacks_add_up_on_any_thread_count(
    keys: sealstore.CustomerKeys, threads: int
) -> None:
    """Progress callbacks report every plaintext byte once, single-threaded or not."""
    message = os.urandom(2 * _bulk.BATCH_SIZE + 5000)
    sealed = io.BytesIO()
    encrypted: list[int] = []
    sealstore.encrypt_stream(
        ReadOnly(message, most=1 << 20), sealed, keys, threads=threads, callback=encrypted.append
    )
    decrypted: list[int] = []
    out = io.BytesIO()
    sealstore.decrypt_stream(
        ReadOnly(sealed.getvalue(), most=1 << 20),
        out,
        keys,
        threads=threads,
        callback=decrypted.append,
    )
    assert sum(encrypted) == sum(decrypted) == len(message)
    assert out.getvalue() == message


def test_chunk_opener_refuses_indices_outside_the_format_and_hides_its_key() -> None:
    key, context = os.urandom(32), b"ctx"
    sealer = _aead.ChunkSealer.new(key, context)
    opener = _aead.ChunkOpener(key, context, sealer.prefix)
    sealed = sealer.seal_chunk(0, b"abc")
    for index in (-1, _aead.MAX_CHUNKS):
        with pytest.raises(sealstore.DecryptionError):
            opener.open_chunk(index, sealed)
    assert opener.open_chunk(0, sealed) == b"abc"
    assert repr(opener) == "ChunkOpener(<key hidden>)"


def test_usable_cpus_is_a_sensible_thread_count() -> None:
    """The value suggested for threads= is at least one and at most the documented cap."""
    assert 1 <= _bulk.usable_cpus() <= _bulk.MAX_DEFAULT_THREADS
    assert _bulk.DEFAULT_THREADS == 1
