"""Byte-progress callbacks (boto3's ``Callback`` convention) on put, get, download and the
stream functions: called with the plaintext bytes moved since the previous call."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator

import pytest

import sealstore
from sealstore.backends import Backend, FileSystemBackend
from sealstore.testing import MemoryBackend, MemoryKeyringStore

MiB = 1 << 20
SIZE = 2 * MiB + MiB // 2


class Progress:
    """Records each callback call, and what ``dst`` held at that moment if given one."""

    def __init__(self, dst: io.BytesIO | None = None) -> None:
        self.calls: list[int] = []
        self.written_at_call: list[int] = []
        self._dst = dst

    def __call__(self, count: int) -> None:
        self.calls.append(count)
        if self._dst is not None:
            self.written_at_call.append(len(self._dst.getbuffer()))

    @property
    def total(self) -> int:
        return sum(self.calls)

    def running_totals(self) -> list[int]:
        totals, running = [], 0
        for count in self.calls:
            running += count
            totals.append(running)
        return totals


@pytest.fixture
def data() -> bytes:
    """2.5 MiB of random plaintext: three pieces of the streaming loops."""
    return os.urandom(SIZE)


@pytest.fixture(params=["memory", "filesystem"])
def store(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> sealstore.EncryptedStore:
    """A store on a backend that keeps metadata (detached headers) and one that does not."""
    backend: Backend = MemoryBackend() if request.param == "memory" else FileSystemBackend(tmp_path)
    return sealstore.EncryptedStore(backend, sealstore.ManagedKeys(MemoryKeyringStore()))


def test_encrypt_stream_reports_each_piece(data: bytes, keys: sealstore.CustomerKeys) -> None:
    """encrypt_stream reports every plaintext byte, piece by piece, and its output is the
    same object as without a callback."""
    progress = Progress()
    out = io.BytesIO()
    sealstore.encrypt_stream(io.BytesIO(data), out, keys, callback=progress)
    assert progress.calls == [MiB, MiB, MiB // 2]
    assert sealstore.decrypt(out.getvalue(), keys) == data


def test_decrypt_stream_reports_what_reached_dst(data: bytes, keys: sealstore.CustomerKeys) -> None:
    """Each call of decrypt_stream's callback comes after those bytes reached dst: the running
    total always equals what dst holds, and ends at the plaintext size."""
    blob = sealstore.encrypt(data, keys)
    out = io.BytesIO()
    progress = Progress(out)
    assert sealstore.decrypt_stream(io.BytesIO(blob), out, keys, callback=progress) == SIZE
    assert progress.total == SIZE
    assert len(progress.calls) >= 3
    assert all(count > 0 for count in progress.calls)
    assert progress.written_at_call == progress.running_totals()


@pytest.mark.parametrize("shape", ["bytes", "file", "iterable"])
def test_put_reports_every_plaintext_byte(
    store: sealstore.EncryptedStore, data: bytes, shape: str
) -> None:
    """put reports the plaintext size in several calls, whatever the shape of the data."""
    source: bytes | io.BytesIO | Iterator[bytes] = data
    if shape == "file":
        source = io.BytesIO(data)
    elif shape == "iterable":
        source = iter([data[:1000], data[1000:]])
    progress = Progress()
    store.put("big", source, callback=progress)
    assert progress.total == SIZE
    assert len(progress.calls) >= 3
    assert store.get("big") == data


def test_get_and_download_report_every_plaintext_byte(
    store: sealstore.EncryptedStore, data: bytes
) -> None:
    """get and download report the plaintext size, as it is written."""
    store.put("big", data)
    progress = Progress()
    assert store.get("big", callback=progress) == data
    assert progress.total == SIZE
    out = io.BytesIO()
    downloaded = Progress(out)
    assert store.download("big", out, callback=downloaded) == SIZE
    assert downloaded.written_at_call == downloaded.running_totals()
    assert downloaded.total == SIZE


def test_plaintext_reads_report_progress_too(data: bytes) -> None:
    """Reading an object that is not encrypted (allow_plaintext_reads) reports its bytes."""
    backend = MemoryBackend()
    backend.put("legacy", data)
    store = sealstore.EncryptedStore(
        backend, sealstore.ManagedKeys(MemoryKeyringStore()), allow_plaintext_reads=True
    )
    progress = Progress()
    assert store.get("legacy", callback=progress) == data
    assert progress.total == SIZE


def test_an_empty_object_reports_nothing(
    store: sealstore.EncryptedStore, keys: sealstore.CustomerKeys
) -> None:
    """No bytes, no calls (the callback is never called with 0)."""
    progress = Progress()
    store.put("empty", b"", callback=progress)
    assert store.get("empty", callback=progress) == b""
    out = io.BytesIO()
    sealstore.encrypt_stream(io.BytesIO(b""), out, keys, callback=progress)
    sealstore.decrypt_stream(io.BytesIO(out.getvalue()), io.BytesIO(), keys, callback=progress)
    assert progress.calls == []


class Cancelled(Exception):
    """Raised by a callback to stop a transfer."""


def cancel_after(calls: int) -> Callable[[int], None]:
    """A callback that raises Cancelled on its ``calls``-th call."""
    seen: list[int] = []

    def callback(count: int) -> None:
        seen.append(count)
        if len(seen) == calls:
            raise Cancelled

    return callback


def test_a_callback_that_raises_cancels_the_put_and_keeps_the_old_object(
    store: sealstore.EncryptedStore, data: bytes
) -> None:
    """An exception from the callback stops put; the object keeps its previous content."""
    store.put("kept", b"previous")
    with pytest.raises(Cancelled):
        store.put("kept", data, callback=cancel_after(2))
    assert store.get("kept") == b"previous"
    assert [head.name for head in store.list()] == ["kept"]


def test_a_callback_that_raises_cancels_the_download(
    store: sealstore.EncryptedStore, data: bytes
) -> None:
    """An exception from the callback stops download with that exception."""
    store.put("big", data)
    out = io.BytesIO()
    with pytest.raises(Cancelled):
        store.download("big", out, callback=cancel_after(1))
    assert len(out.getvalue()) < SIZE
