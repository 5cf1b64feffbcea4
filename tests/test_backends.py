"""The storage backends: the contract on every local adapter, then each adapter's own rules."""

from __future__ import annotations

import errno
import importlib
import os
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sealstore._io import GuardedStream
from sealstore.backends import Backend, FileSystemBackend, FsspecBackend, MemoryBackend
from sealstore.backends._rules import check_name
from sealstore.backends.filesystem import TEMPORARY_PREFIX
from sealstore.backends.memory import MAX_METADATA_SIZE
from sealstore.errors import BackendError, InvalidNameError, ObjectNotFoundError
from sealstore.testing.contracts.backend import BackendContract, read_all

# fsspec ships no type information; through import_module it is typed as a plain module.
fsspec: Any = importlib.import_module("fsspec")


class TestMemoryBackend(BackendContract):
    """The contract on MemoryBackend (which holds objects in memory: no memory bound)."""

    bounded_memory = False

    @pytest.fixture
    def backend(self) -> Backend:
        """A fresh in-memory backend."""
        return MemoryBackend()


class TestFileSystemBackend(BackendContract):
    """The contract on FileSystemBackend in a temporary directory."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        """A backend rooted in a directory that does not exist yet."""
        return FileSystemBackend(tmp_path / "root")


class TestFsspecMemoryBackend(BackendContract):
    """The contract on FsspecBackend over fsspec's in-memory filesystem."""

    bounded_memory = False

    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        """A backend under a root of its own (fsspec's memory filesystem is process-wide)."""
        fs = fsspec.filesystem("memory")
        root = f"/sealstore-test-{uuid.uuid4().hex}"
        yield FsspecBackend(fs, root)
        if fs.exists(root):
            fs.rm(root, recursive=True)


class TestFsspecLocalBackend(BackendContract):
    """The contract on FsspecBackend over fsspec's local filesystem."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        """A backend rooted in a directory that does not exist yet."""
        return FsspecBackend(fsspec.filesystem("file"), str(tmp_path / "root"))


# Names


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("/a", "starts with '/'"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a/../b", "'..' segment"),
        ("./b", "'.' segment"),
        ("a\\b", "backslash"),
        ("a\x00b", "U+0000"),
        ("a\x9fb", "U+009F"),
        ("x" * 1025, "1025 UTF-8 bytes"),
        ("\ud800", "surrogate"),
        ("a/.sealstore-x/b", "reserved"),
        (b"bytes", "str, not bytes"),
    ],
)
def test_invalid_names_say_what_is_wrong(name: str, problem: str) -> None:
    """Each rejected name gets a message naming the rule it breaks."""
    with pytest.raises(InvalidNameError) as raised:
        check_name(name)
    assert problem in str(raised.value)


def test_messages_show_only_the_start_of_a_huge_name() -> None:
    """A huge name is cut short in the message, so errors stay readable."""
    with pytest.raises(InvalidNameError) as raised:
        check_name("y" * 100_000)
    assert len(str(raised.value)) < 300


# MemoryBackend


def test_memory_backend_uses_the_injected_clock() -> None:
    """last_modified comes from the clock given, for put and for copy."""
    times = iter([datetime(2030, 1, 1, tzinfo=timezone.utc) + timedelta(days=n) for n in range(2)])
    backend = MemoryBackend(clock=lambda: next(times))
    assert backend.put("a", b"x").last_modified == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert backend.copy("a", "b").last_modified == datetime(2030, 1, 2, tzinfo=timezone.utc)


def test_memory_backend_etag_is_the_sha256_of_the_bytes() -> None:
    """The etag is the hex SHA-256 of the stored bytes, and a copy keeps it."""
    backend = MemoryBackend()
    info = backend.put("a", b"abc")
    assert info.etag == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert backend.copy("a", "b").etag == info.etag


def test_memory_backend_streams_cannot_change_the_stored_bytes() -> None:
    """Writing into the stream get returned leaves the stored object as it was."""
    backend = MemoryBackend()
    backend.put("a", b"stored")
    stream = backend.get("a")
    getattr(stream, "write")(b"XX")  # noqa: B009  # the stream happens to be writable
    assert read_all(backend, "a") == b"stored"


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"Upper": "v"}, "metadata key 'Upper'"),
        ({"": "v"}, "metadata key ''"),
        ({"space key": "v"}, "metadata key 'space key'"),
        ({"k": "non-ascii é"}, "'k' must be printable ASCII"),
        ({"k": "line\nbreak"}, "'k' must be printable ASCII"),
        ({"k": "v" * MAX_METADATA_SIZE}, "the limit is 2048"),
    ],
)
def test_memory_backend_refuses_metadata_s3_would_not_keep(
    metadata: dict[str, str], problem: str
) -> None:
    """Metadata beyond S3's portable rules is a ValueError naming the key, never the value."""
    backend = MemoryBackend()
    with pytest.raises(ValueError, match="metadata") as raised:
        backend.put("a", b"x", metadata=metadata)
    assert problem in str(raised.value)
    assert "é" not in str(raised.value)
    with pytest.raises(ObjectNotFoundError):
        backend.head("a")


def test_memory_backend_is_thread_safe() -> None:
    """Threads writing and reading at once lose no object and never see a mix of versions."""
    backend = MemoryBackend()
    backend.put("shared", b"\xff" * 1000)

    def write(thread: int) -> None:
        for index in range(150):
            backend.put(f"thread-{thread}/{index:03}", bytes([thread]) * index)
            backend.put("shared", bytes([thread]) * 1000)

    def read(_: int) -> set[bytes]:
        return {read_all(backend, "shared") for _ in range(300)}

    with ThreadPoolExecutor(max_workers=8) as pool:
        writes = [pool.submit(write, thread) for thread in range(4)]
        reads = [pool.submit(read, thread) for thread in range(4)]
        seen = set().union(*(future.result() for future in reads))
        for future in writes:
            future.result()
    assert all(len(data) == 1000 and len(set(data)) == 1 for data in seen)
    assert len(list(backend.list("thread-"))) == 4 * 150


# FileSystemBackend


def test_files_hold_exactly_the_object_bytes(tmp_path: Path) -> None:
    """An object is a plain file at root/name with the object's bytes, readable by any tool."""
    backend = FileSystemBackend(tmp_path)
    backend.put("a/b c/d.bin", b"\x00plain bytes\xff")
    assert (tmp_path / "a" / "b c" / "d.bin").read_bytes() == b"\x00plain bytes\xff"


def test_existing_files_are_objects(tmp_path: Path) -> None:
    """Files already under the root list, head and read as objects."""
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "file.txt").write_bytes(b"written before")
    backend = FileSystemBackend(tmp_path)
    assert [info.name for info in backend.list()] == ["old/file.txt"]
    assert read_all(backend, "old/file.txt") == b"written before"


@pytest.mark.parametrize(
    "name", ["../outside/x", "/etc/passwd", "a/../../outside/x", "..", "a/../..", str(Path.cwd())]
)
def test_names_cannot_escape_the_root(tmp_path: Path, name: str) -> None:
    """Climbing and absolute names are refused, and nothing appears outside the root."""
    (tmp_path / "outside").mkdir()
    backend = FileSystemBackend(tmp_path / "root")
    with pytest.raises(InvalidNameError):
        backend.put(name, b"escaped")
    with pytest.raises(InvalidNameError):
        backend.get(name)
    with pytest.raises(InvalidNameError):
        backend.delete(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "root"]
    assert list((tmp_path / "outside").iterdir()) == []


@pytest.fixture
def linked(tmp_path: Path) -> FileSystemBackend:
    """A backend whose root holds links to a directory and to a file outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "link").symlink_to(outside)
    (root / "a" / "deeper").symlink_to(outside)
    (root / "evil").symlink_to(outside / "secret")
    return FileSystemBackend(root)


@pytest.mark.parametrize("name", ["link/secret", "a/deeper/secret", "evil"])
def test_links_under_the_root_are_never_followed(
    linked: FileSystemBackend, tmp_path: Path, name: str
) -> None:
    """Reading, heading, deleting or copying through a link is refused with a clear error."""
    with pytest.raises(InvalidNameError, match="symbolic link"):
        linked.get(name)
    with pytest.raises(InvalidNameError, match="symbolic link"):
        linked.head(name)
    with pytest.raises(InvalidNameError, match="symbolic link"):
        linked.delete(name)
    with pytest.raises(InvalidNameError, match="symbolic link"):
        linked.copy(name, "stolen")
    assert (tmp_path / "outside" / "secret").read_bytes() == b"secret"
    assert [info.name for info in linked.list()] == []


@pytest.mark.parametrize("name", ["link/new", "a/deeper/new", "link/nested/new"])
def test_writes_through_a_linked_directory_are_refused(
    linked: FileSystemBackend, tmp_path: Path, name: str
) -> None:
    """put and copy into a linked directory are refused, and nothing is written outside."""
    with pytest.raises(InvalidNameError, match="symbolic link"):
        linked.put(name, b"planted")
    linked.put("real", b"x")
    with pytest.raises(InvalidNameError, match="symbolic link"):
        linked.copy("real", name)
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["secret"]


def test_put_over_a_link_replaces_the_link_itself(
    linked: FileSystemBackend, tmp_path: Path
) -> None:
    """Writing a name that is a link replaces the link by a file; its target is untouched."""
    linked.put("evil", b"replaced")
    assert not (tmp_path / "root" / "evil").is_symlink()
    assert read_all(linked, "evil") == b"replaced"
    assert (tmp_path / "outside" / "secret").read_bytes() == b"secret"


def test_a_root_given_through_a_link_works(tmp_path: Path) -> None:
    """The root itself may be a link: it is resolved once, when the backend is made."""
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    backend = FileSystemBackend(tmp_path / "alias")
    backend.put("x/y", b"data")
    assert backend.root == str(tmp_path / "real")
    assert (tmp_path / "real" / "x" / "y").read_bytes() == b"data"


def test_temporary_and_foreign_files_are_hidden(tmp_path: Path) -> None:
    """Temporary files, and files no object name could have, are not listed or readable."""
    backend = FileSystemBackend(tmp_path)
    backend.put("d/real", b"x")
    (tmp_path / f"{TEMPORARY_PREFIX}0123").write_bytes(b"half written")
    (tmp_path / "d" / f"{TEMPORARY_PREFIX}4567").write_bytes(b"half written")
    (tmp_path / "back\\slash").write_bytes(b"x")
    (tmp_path / "control\x01char").write_bytes(b"x")
    os.mkfifo(tmp_path / "d" / "fifo")
    assert [info.name for info in backend.list()] == ["d/real"]
    with pytest.raises(InvalidNameError, match="reserved"):
        backend.head(f"{TEMPORARY_PREFIX}0123")
    with pytest.raises(ObjectNotFoundError):
        backend.get("d/fifo")
    with pytest.raises(ObjectNotFoundError):
        backend.head("d/fifo")


def test_a_name_cannot_be_both_an_object_and_a_directory(tmp_path: Path) -> None:
    """With 'a' stored, 'a/b' cannot be; with 'x/y' stored, 'x' cannot be: a clear error."""
    backend = FileSystemBackend(tmp_path)
    backend.put("a", b"file")
    backend.put("x/y", b"file")
    with pytest.raises(BackendError, match="both an object and"):
        backend.put("a/b", b"data")
    with pytest.raises(BackendError, match="both an object and"):
        backend.put("x", b"data")
    with pytest.raises(BackendError, match="both an object and"):
        backend.copy("a", "x")
    with pytest.raises(ObjectNotFoundError):
        backend.head("x")
    assert [info.name for info in backend.list()] == ["a", "x/y"]


def test_a_segment_too_long_for_the_file_system_is_an_invalid_name(tmp_path: Path) -> None:
    """A 300-byte segment is a valid name but not a valid file name: InvalidNameError."""
    backend = FileSystemBackend(tmp_path)
    with pytest.raises(InvalidNameError, match="segment is longer"):
        backend.put("x" * 300, b"data")
    with pytest.raises(InvalidNameError, match="segment is longer"):
        backend.put("y" * 300 + "/z", b"data")
    assert list(tmp_path.iterdir()) == []


def test_a_root_that_is_a_file_is_a_backend_error(tmp_path: Path) -> None:
    """A root that cannot be a directory is reported when the backend is made."""
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(BackendError, match="root directory"):
        FileSystemBackend(tmp_path / "file")


def test_storage_failures_become_backend_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error in put is a BackendError naming the operation and object, not the data."""
    backend = FileSystemBackend(tmp_path)
    backend.put("kept", b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(BackendError, match="cannot put 'kept'") as raised:
        backend.put("kept", b"new secret data")
    assert "secret" not in str(raised.value)
    assert read_all(backend, "kept") == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


def test_a_failed_put_removes_its_temporary_file(tmp_path: Path) -> None:
    """When the source fails, the temporary file is removed from the disk."""
    backend = FileSystemBackend(tmp_path)

    def failing() -> Iterator[bytes]:
        yield b"some bytes"
        raise RuntimeError("the source failed")

    with pytest.raises(RuntimeError):
        backend.put("d/object", failing())
    assert list((tmp_path / "d").iterdir()) == []


def test_streams_read_into_buffers_and_refuse_reads_once_closed(tmp_path: Path) -> None:
    """A file stream fills buffers within its range and cannot be read after close."""
    backend = FileSystemBackend(tmp_path)
    backend.put("a", b"0123456789")
    stream = backend.get("a", start=2, end=6)
    buffer = bytearray(10)
    assert getattr(stream, "readinto")(buffer) == 4  # noqa: B009  # a RawIOBase method
    assert bytes(buffer[:4]) == b"2345"
    stream.close()
    with pytest.raises(ValueError, match="closed"):
        stream.read(1)


class _BrokenSource:
    """A storage handle whose reads and close fail as a failing disk would."""

    def read(self, size: int = -1, /) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    def close(self) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))


def test_range_streams_translate_storage_errors() -> None:
    """I/O errors met while reading or closing a range stream become BackendErrors."""
    stream = GuardedStream(
        _BrokenSource(), 10, translate=lambda error: BackendError(f"cannot read: {error}")
    )
    with pytest.raises(BackendError):
        stream.read(5)
    with pytest.raises(BackendError):
        stream.readinto(bytearray(5))
    with pytest.raises(BackendError):
        stream.close()
    assert stream.closed


def test_range_streams_let_untranslated_errors_through() -> None:
    """An error the seam does not translate reaches the caller unchanged."""
    stream = GuardedStream(_BrokenSource(), None, translate=lambda error: None)
    with pytest.raises(OSError, match="Input/output error"):
        stream.read()
    with pytest.raises(OSError, match="Input/output error"):
        stream.close()
    assert stream.closed


def test_range_streams_never_return_more_than_asked() -> None:
    """A storage handle that returns more than asked for is cut to the range and the size."""

    class Generous:
        def read(self, size: int = -1, /) -> bytes:
            return b"0123456789"

        def close(self) -> None:
            pass

    with GuardedStream(Generous(), 6, translate=lambda error: None) as stream:
        assert stream.read(4) == b"0123"
        assert stream.read(4) == b"01"
        assert stream.read(4) == b""


def test_a_stream_returning_none_is_refused() -> None:
    """A non-blocking stream (read returns None) is refused rather than taken as ended."""

    class NonBlocking:
        def read(self, size: int = -1, /) -> bytes | None:
            return None

    with pytest.raises(TypeError, match="non-blocking"):
        MemoryBackend().put("a", NonBlocking())  # type: ignore[arg-type]


# A writer killed with SIGKILL in the middle of a put.

_VERSION_SIZE = 3 << 20

_WRITER = f"""
import os, random, sys
from sealstore.backends import FileSystemBackend

root, name, first = sys.argv[1], sys.argv[2], int(sys.argv[3])

def mark():
    sys.stdout.buffer.write(b".")
    sys.stdout.buffer.flush()

def marking(function):
    def marked(*args, **kwargs):
        mark()
        return function(*args, **kwargs)
    return marked

os.fsync, os.rename = marking(os.fsync), marking(os.rename)

class Version:
    def __init__(self, number):
        body = random.Random(number).randbytes({_VERSION_SIZE} + 1000 * number)
        self.data = number.to_bytes(4, "big") + body
        self.position = 0

    def read(self, size=-1):
        mark()
        piece = self.data[self.position : self.position + size]
        self.position += len(piece)
        return piece

backend = FileSystemBackend(root)
for number in range(first, first + 100):
    backend.put(name, Version(number))
"""


def _version(number: int) -> bytes:
    """The bytes of version ``number``: what the writer above puts."""
    body = random.Random(number).randbytes(_VERSION_SIZE + 1000 * number)
    return number.to_bytes(4, "big") + body


def test_a_killed_writer_never_leaves_a_partial_object(tmp_path: Path) -> None:
    """After SIGKILL at random points of puts, each object is absent or one whole version."""
    rng = random.Random(20240611)
    backend = FileSystemBackend(tmp_path)
    backend.put("kept", _version(0))
    versions: dict[str, int | None] = {"kept": 0}
    first = 1
    for round_number in range(10):
        name = "kept" if rng.random() < 0.6 else f"fresh/{round_number}"
        marks = rng.randint(1, 24)
        writer = subprocess.Popen(  # noqa: S603  # our own interpreter and script
            [sys.executable, "-c", _WRITER, str(tmp_path), name, str(first)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert writer.stdout is not None
        assert writer.stderr is not None
        seen = writer.stdout.read(marks)
        writer.kill()
        writer.wait()
        errors = writer.stderr.read().decode()
        writer.stdout.close()
        writer.stderr.close()
        assert len(seen) == marks, errors

        try:
            data = read_all(backend, name)
        except ObjectNotFoundError:
            assert versions.get(name) is None
        else:
            number = int.from_bytes(data[:4], "big")
            assert number == versions.get(name) or first <= number < first + 100
            assert data == _version(number)
            versions[name] = number
        listed = [info.name for info in backend.list()]
        assert listed == sorted(n for n, v in versions.items() if v is not None)
        first += 100


# FsspecBackend


def test_importing_the_backends_does_not_import_fsspec() -> None:
    """sealstore.backends, FsspecBackend included, imports without fsspec being loaded."""
    script = (
        "import sys, sealstore.backends, sealstore.backends.fsspec; "
        "sys.exit('fsspec' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 0  # noqa: S603


def test_fsspec_root_with_glob_characters_is_refused() -> None:
    """fsspec expands * ? [ in paths, so a root holding them is refused up front."""
    with pytest.raises(ValueError, match="pattern"):
        FsspecBackend(fsspec.filesystem("memory"), "/data[1]")


def test_fsspec_put_onto_a_directory_is_refused() -> None:
    """Storing 'a' while 'a/b' exists is a BackendError, not a file moved into 'a/'."""
    backend = FsspecBackend(fsspec.filesystem("memory"), f"/sealstore-test-{uuid.uuid4().hex}")
    backend.put("a/b", b"x")
    with pytest.raises(BackendError, match="directory"):
        backend.put("a", b"y")
    assert [info.name for info in backend.list()] == ["a/b"]


def test_fsspec_temporary_files_are_hidden(tmp_path: Path) -> None:
    """Leftover temporary files under the root are not listed."""
    backend = FsspecBackend(fsspec.filesystem("file"), str(tmp_path))
    backend.put("real", b"x")
    (tmp_path / f"{TEMPORARY_PREFIX}dead").write_bytes(b"half written")
    assert [info.name for info in backend.list()] == ["real"]


def test_fsspec_storage_failures_become_backend_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OSErrors from the filesystem become BackendErrors naming operation and object."""
    fs = fsspec.filesystem("file", skip_instance_cache=True)
    backend = FsspecBackend(fs, str(tmp_path))
    backend.put("kept", b"old")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fs, "info", denied)
    with pytest.raises(BackendError, match=r"cannot head 'kept'.*Permission denied"):
        backend.head("kept")
    monkeypatch.setattr(fs, "mv", denied)
    with pytest.raises(BackendError, match="cannot put 'kept'"):
        backend.put("kept", b"new")
    assert (tmp_path / "kept").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


def test_fsspec_backend_reads_a_long_range_through_a_stream() -> None:
    """A range over 1 MiB streams from fs.open and stops at the range's end."""
    backend = FsspecBackend(fsspec.filesystem("memory"), f"/sealstore-test-{uuid.uuid4().hex}")
    data = random.Random(3).randbytes(3 << 20)
    backend.put("big", data)
    assert read_all(backend, "big", start=10, end=(2 << 20) + 10) == data[10 : (2 << 20) + 10]


def test_concurrent_puts_of_one_name_leave_one_whole_version(tmp_path: Path) -> None:
    """Threads racing to write one name on the file system leave exactly one whole version."""
    backend = FileSystemBackend(tmp_path)
    barrier = threading.Barrier(4)

    def write(thread: int) -> None:
        barrier.wait()
        for _ in range(20):
            backend.put("raced", bytes([thread]) * 100_000)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(write, thread) for thread in range(4)]:
            future.result()
    data = read_all(backend, "raced")
    assert len(data) == 100_000
    assert len(set(data)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raced"]
