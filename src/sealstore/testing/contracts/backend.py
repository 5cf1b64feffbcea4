"""The backend contract: what every :class:`~sealstore.backends.Backend` adapter must do.

To run it against an adapter, subclass :class:`BackendContract` in a test module, name the
subclass ``Test...`` and give it a ``backend`` fixture returning a fresh, empty backend::

    import pytest
    from sealstore.testing.contracts import BackendContract

    class TestMyBackend(BackendContract):
        bounded_memory = True

        @pytest.fixture
        def backend(self, tmp_path):
            return MyBackend(tmp_path)

The fixture may take any other fixture (a server, a client) and may be a generator that
cleans up after the test. Set ``bounded_memory`` to false for adapters that hold objects in
the test process's memory; the others must keep the peak of Python allocations under
:data:`MEMORY_LIMIT` while streaming an object of :data:`LARGE_SIZE` in and out.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import random
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime
from typing import Any, ClassVar

import pytest

from sealstore.backends import Backend, ObjectInfo
from sealstore.errors import BackendError, InvalidNameError, ObjectChangedError, ObjectNotFoundError

__all__ = [
    "BAD_NAMES",
    "GOOD_NAMES",
    "LARGE_SIZE",
    "MEMORY_LIMIT",
    "PIECE_LIMIT",
    "BackendContract",
    "ChunkyReader",
    "read_all",
]

PIECE_LIMIT = 1 << 20
"""The most a backend may ask of a ``put`` stream in one ``read`` call."""

LARGE_SIZE = 8 << 20
"""The size of the object streamed through the backend in the bounded-memory test."""

MEMORY_LIMIT = 4 << 20
"""The highest peak of Python allocations allowed while streaming :data:`LARGE_SIZE` bytes."""

BAD_NAMES: list[str] = [
    "",
    "/",
    "/absolute",
    "/etc/passwd",
    "trailing/",
    "a//b",
    ".",
    "..",
    "./a",
    "a/.",
    "a/./b",
    "../escape",
    "a/..",
    "a/../../b",
    "back\\slash",
    "..\\windows",
    "nul\x00byte",
    "\x00",
    "new\nline",
    "tab\there",
    "carriage\rreturn",
    "escape\x1b[0m",
    "delete\x7f",
    "c1\x85control",
    "lone\ud800surrogate",
    "x" * 1025,
    "é" * 513,
    ".sealstore-tmp-0123456789abcdef",
    "a/.sealstore-anything",
]
"""Names every backend refuses with :class:`~sealstore.InvalidNameError`."""

GOOD_NAMES: list[str] = [
    "plain",
    "with space",
    " leading and trailing ",
    "folder with spaces/file name.txt",
    "données/été.txt",
    "日本語/ファイル",
    "emoji/📦",
    "dots/a.b/c..d/...",
    "-dash/_under/~tilde",
    "semi;colon/equals=sign/percent%20",
    "*?[glob]/chars",
    "/".join(["a" * 200] * 4 + ["b" * 220]),  # exactly 1024 UTF-8 bytes
]
"""Names every backend stores, lists and returns unchanged."""

_DATA = bytes(range(256)) * 4  # 1024 bytes, every byte value at a known offset

_RANGES: list[tuple[int, int | None]] = [
    (0, None),
    (100, None),
    (0, 100),
    (100, 200),
    (0, 0),
    (50, 50),
    (1023, None),
    (1023, 1024),
    (1024, None),
    (1024, 1024),
    (2000, None),
    (2000, 3000),
    (1000, 5000),
    (0, 1024),
    (0, 1025),
]


def read_all(backend: Backend, name: str, *, start: int = 0, end: int | None = None) -> bytes:
    """The bytes ``[start, end)`` of ``name``, read from the backend's stream in pieces."""
    out = bytearray()
    with closing(backend.get(name, start=start, end=end)) as stream:
        while piece := stream.read(64 << 10):
            out += piece
    return bytes(out)


class ChunkyReader:
    """A binary stream over ``data`` that returns fewer bytes than asked, by turns.

    ``largest_request`` records the biggest ``read`` size a backend asked for.
    """

    def __init__(self, data: bytes, sizes: tuple[int, ...] = (7, 1, 4096, 1 << 30)) -> None:
        self._data = data
        self._position = 0
        self._sizes = itertools.cycle(sizes)
        self.largest_request = 0

    def read(self, size: int = -1, /) -> bytes:
        """At most ``size`` bytes, and at most the next size of the cycle."""
        if size < 0:
            size = len(self._data)
        self.largest_request = max(self.largest_request, size)
        count = min(size, next(self._sizes))
        piece = self._data[self._position : self._position + count]
        self._position += len(piece)
        return piece


class _FailingReader:
    """A stream that gives some bytes, then fails as a broken source would."""

    def __init__(self) -> None:
        self._calls = 0

    def read(self, size: int = -1, /) -> bytes:
        self._calls += 1
        if self._calls > 2:
            raise RuntimeError("the source failed")
        return b"partial data"


def _names(infos: Iterator[ObjectInfo]) -> list[str]:
    return [info.name for info in infos]


@contextlib.contextmanager
def _peak_memory(*, enabled: bool) -> Iterator[list[int]]:
    """Collects the peak, in bytes, of Python allocations made in the block (if enabled)."""
    peaks: list[int] = []
    if not enabled:
        yield peaks
        return
    tracemalloc.start()
    try:
        yield peaks
    finally:
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


class BackendContract:
    """The contract tests; subclasses provide the ``backend`` fixture."""

    bounded_memory: ClassVar[bool] = True

    @pytest.fixture
    def backend(self) -> Backend:
        """A fresh, empty backend: every subclass overrides this."""
        raise NotImplementedError

    # put and get

    def test_put_then_get_returns_the_same_bytes(self, backend: Backend) -> None:
        """An object reads back exactly as written, and put reports its name and size."""
        info = backend.put("greeting.txt", b"hello, world")
        assert (info.name, info.size) == ("greeting.txt", 12)
        assert read_all(backend, "greeting.txt") == b"hello, world"

    @pytest.mark.parametrize(("start", "end"), _RANGES)
    def test_get_reads_exactly_the_range_asked(
        self, backend: Backend, start: int, end: int | None
    ) -> None:
        """A range reads [start, end), cut at the end of the object, empty past it."""
        backend.put("range", _DATA)
        assert read_all(backend, "range", start=start, end=end) == _DATA[start:end]

    @pytest.mark.parametrize(("start", "end"), [(0, None), (0, 0), (0, 10), (5, None)])
    def test_ranges_of_an_empty_object_are_empty(
        self, backend: Backend, start: int, end: int | None
    ) -> None:
        """An empty object exists, has size 0, and every range of it is empty."""
        backend.put("empty", b"")
        assert backend.head("empty").size == 0
        assert read_all(backend, "empty", start=start, end=end) == b""

    @pytest.mark.parametrize(("start", "end"), [(-1, None), (-5, 10), (10, 5), (1, 0)])
    def test_impossible_ranges_raise_value_error(
        self, backend: Backend, start: int, end: int | None
    ) -> None:
        """A negative start or an end before the start is the caller's error: ValueError."""
        backend.put("range", _DATA)
        with pytest.raises(ValueError, match="range"):
            backend.get("range", start=start, end=end)

    @pytest.mark.parametrize(("start", "end"), [(0, None), (10, 600), (1000, None), (0, 2 << 20)])
    def test_read_without_a_size_reads_the_rest_of_the_range(
        self, backend: Backend, start: int, end: int | None
    ) -> None:
        """read() with no size returns everything left of the range, then b""."""
        backend.put("whole", _DATA)
        with closing(backend.get("whole", start=start, end=end)) as stream:
            assert stream.read() == _DATA[start:end]
            assert stream.read() == b""

    def test_put_from_a_stream_with_short_reads(self, backend: Backend) -> None:
        """A stream that returns less than asked is read to its end, in pieces of <= 1 MiB."""
        source = ChunkyReader(_DATA * 3)
        assert backend.put("stream", source).size == len(_DATA) * 3
        assert read_all(backend, "stream") == _DATA * 3
        assert 0 < source.largest_request <= PIECE_LIMIT

    def test_put_from_a_binary_file(self, backend: Backend) -> None:
        """An ordinary binary file object is a valid source."""
        backend.put("file", io.BytesIO(_DATA))
        assert read_all(backend, "file") == _DATA

    def test_put_from_an_iterable_of_bytes(self, backend: Backend) -> None:
        """Pieces of an iterable are joined in order; empty pieces and bytes-likes are fine."""

        def pieces() -> Iterator[Any]:  # bytes-likes, as callers pass them
            yield b"abc"
            yield b""
            yield bytearray(b"def")
            yield memoryview(b"ghi")

        backend.put("iterable", pieces())
        assert read_all(backend, "iterable") == b"abcdefghi"

    def test_stored_bytes_do_not_change_with_the_callers_buffer(self, backend: Backend) -> None:
        """Changing the caller's buffer after put does not change the stored object."""
        buffer = bytearray(b"original")
        backend.put("copied", bytes(buffer))
        pieces: list[Any] = [buffer]
        backend.put("copied-too", pieces)
        buffer[:] = b"modified"
        assert read_all(backend, "copied") == b"original"
        assert read_all(backend, "copied-too") == b"original"

    @pytest.mark.parametrize(
        "data",
        ["text", io.StringIO("text"), ["text"], 42],
        ids=["str", "text-stream", "iterable-of-str", "int"],
    )
    def test_put_refuses_text_and_other_types(self, backend: Backend, data: object) -> None:
        """Text and non-bytes data raise TypeError and store nothing."""
        with pytest.raises(TypeError):
            backend.put("typed", data)  # type: ignore[arg-type]
        with pytest.raises(ObjectNotFoundError):
            backend.head("typed")

    def test_a_failing_source_leaves_the_old_object(self, backend: Backend) -> None:
        """If the source fails mid-put, its error propagates and the old object stays whole."""
        backend.put("kept", b"old version")
        with pytest.raises(RuntimeError, match="the source failed"):
            backend.put("kept", _FailingReader())
        assert read_all(backend, "kept") == b"old version"
        assert _names(backend.list()) == ["kept"]

    def test_put_replaces_the_whole_object(self, backend: Backend) -> None:
        """A second put replaces the object: a shorter one leaves no tail of the first."""
        backend.put("replaced", b"a much longer first version")
        backend.put("replaced", b"short")
        assert read_all(backend, "replaced") == b"short"
        assert backend.head("replaced").size == 5

    # head

    def test_head_reports_size_and_metadata(self, backend: Backend) -> None:
        """head gives the size, and the metadata when the backend keeps it (none otherwise)."""
        metadata = {"content-kind": "report", "owner": "team-a"}
        put = backend.put("headed", _DATA, metadata=metadata)
        head = backend.head("headed")
        assert (head.name, head.size) == ("headed", len(_DATA))
        assert (put.name, put.size) == (head.name, head.size)
        expected = metadata if backend.keeps_metadata else {}
        assert dict(head.metadata) == expected
        assert dict(put.metadata) == expected

    def test_put_without_metadata_clears_the_old_metadata(self, backend: Backend) -> None:
        """Replacing an object replaces its metadata too."""
        backend.put("meta", b"one", metadata={"version": "1"})
        backend.put("meta", b"two")
        assert dict(backend.head("meta").metadata) == {}

    def test_etag_identifies_the_content(self, backend: Backend) -> None:
        """Where there is an etag, head agrees with put and a new content has a new etag."""
        first = backend.put("tagged", b"first content")
        assert backend.head("tagged").etag == first.etag
        second = backend.put("tagged", b"second content")
        assert backend.head("tagged").etag == second.etag
        if first.etag is None:
            assert second.etag is None
        else:
            assert second.etag != first.etag

    def test_last_modified_is_an_aware_time(self, backend: Backend) -> None:
        """A modification time, when given, is timezone-aware."""
        backend.put("timed", b"x")
        for info in (backend.head("timed"), *backend.list("timed")):
            assert info.last_modified is None or isinstance(info.last_modified, datetime)
            assert info.last_modified is None or info.last_modified.tzinfo is not None

    # list

    def test_list_is_sorted_and_filtered_by_a_plain_prefix(self, backend: Backend) -> None:
        """list gives names in order; a prefix is a string prefix, not a directory."""
        names = ["logs/b/c", "logsx", "log", "logs-2024", "logs/a", "other"]
        for index, name in enumerate(names):
            backend.put(name, b"x" * index)
        assert _names(backend.list()) == sorted(names)
        assert _names(backend.list("logs")) == ["logs-2024", "logs/a", "logs/b/c", "logsx"]
        assert _names(backend.list("logs/")) == ["logs/a", "logs/b/c"]
        assert _names(backend.list("logs/b")) == ["logs/b/c"]
        assert _names(backend.list("lo")) == ["log", "logs-2024", "logs/a", "logs/b/c", "logsx"]
        assert _names(backend.list("logs/b/c")) == ["logs/b/c"]

    def test_list_reports_sizes(self, backend: Backend) -> None:
        """Each listed object has the size it was stored with."""
        backend.put("sized/one", b"1")
        backend.put("sized/three", b"333")
        assert [(i.name, i.size) for i in backend.list("sized/")] == [
            ("sized/one", 1),
            ("sized/three", 3),
        ]

    def test_list_reports_metadata_when_kept(self, backend: Backend) -> None:
        """Listed objects carry their metadata on backends that keep it."""
        backend.put("listed", b"x", metadata={"kind": "a"})
        (info,) = backend.list("listed")
        assert dict(info.metadata) == ({"kind": "a"} if backend.keeps_metadata else {})

    @pytest.mark.parametrize("prefix", ["nothing", "a/b/", "zzz", "../", "/a", "a//"])
    def test_list_with_no_match_is_empty(self, backend: Backend, prefix: str) -> None:
        """A prefix no object has, even one no valid name could have, lists nothing."""
        backend.put("a/c", b"x")
        assert _names(backend.list(prefix)) == []

    def test_list_of_an_empty_backend_is_empty(self, backend: Backend) -> None:
        """A fresh backend lists nothing."""
        assert _names(backend.list()) == []

    # delete and missing objects

    def test_delete_removes_the_object(self, backend: Backend) -> None:
        """After delete, the object is gone from get, head and list; its neighbours stay."""
        backend.put("dir/doomed", b"x")
        backend.put("dir/kept", b"y")
        backend.delete("dir/doomed")
        with pytest.raises(ObjectNotFoundError):
            backend.head("dir/doomed")
        with pytest.raises(ObjectNotFoundError):
            backend.get("dir/doomed")
        assert _names(backend.list()) == ["dir/kept"]

    def test_delete_of_a_missing_object_raises(self, backend: Backend) -> None:
        """Deleting what is not there is ObjectNotFoundError, which is also a KeyError."""
        with pytest.raises(ObjectNotFoundError, match="nothing-here") as raised:
            backend.delete("nothing-here")
        assert isinstance(raised.value, KeyError)

    @pytest.mark.parametrize("name", ["missing", "missing/deeper/still", "present/below"])
    def test_get_and_head_of_a_missing_object_raise(self, backend: Backend, name: str) -> None:
        """get (ranged or not) and head of an absent object raise ObjectNotFoundError naming it."""
        backend.put("present", b"x")
        with pytest.raises(ObjectNotFoundError, match=name):
            backend.head(name)
        with pytest.raises(ObjectNotFoundError, match=name):
            backend.get(name)
        with pytest.raises(ObjectNotFoundError, match=name):
            backend.get(name, start=1, end=2)
        with pytest.raises(ObjectNotFoundError, match=name):
            backend.delete(name)

    # copy

    def test_copy_to_another_name(self, backend: Backend) -> None:
        """A copy has the source's bytes (and metadata, if kept); the source is unchanged."""
        backend.put("source", _DATA, metadata={"kind": "original"})
        info = backend.copy("source", "copies/destination")
        assert (info.name, info.size) == ("copies/destination", len(_DATA))
        assert read_all(backend, "copies/destination") == _DATA
        assert read_all(backend, "source") == _DATA
        expected = {"kind": "original"} if backend.keeps_metadata else {}
        assert dict(backend.head("copies/destination").metadata) == expected

    def test_copy_with_new_metadata(self, backend: Backend) -> None:
        """Metadata given to copy replaces the copy's, not the source's."""
        backend.put("source", b"abc", metadata={"kind": "original"})
        backend.copy("source", "destination", metadata={"kind": "copy"})
        if backend.keeps_metadata:
            assert dict(backend.head("destination").metadata) == {"kind": "copy"}
            assert dict(backend.head("source").metadata) == {"kind": "original"}
        assert read_all(backend, "destination") == b"abc"

    def test_copy_onto_itself_rewrites_only_the_metadata(self, backend: Backend) -> None:
        """Copying an object to its own name keeps its bytes and takes the new metadata."""
        backend.put("same", _DATA, metadata={"version": "1"})
        info = backend.copy("same", "same", metadata={"version": "2"})
        assert info.size == len(_DATA)
        assert read_all(backend, "same") == _DATA
        expected = {"version": "2"} if backend.keeps_metadata else {}
        assert dict(backend.head("same").metadata) == expected

    def test_copy_onto_itself_without_metadata_changes_nothing(self, backend: Backend) -> None:
        """Copying an object to its own name with no metadata keeps its bytes and metadata."""
        backend.put("same", b"abc", metadata={"version": "1"})
        assert backend.copy("same", "same").size == 3
        assert read_all(backend, "same") == b"abc"
        expected = {"version": "1"} if backend.keeps_metadata else {}
        assert dict(backend.head("same").metadata) == expected

    def test_copy_replaces_an_existing_destination(self, backend: Backend) -> None:
        """Copying over an object replaces it whole."""
        backend.put("source", b"short")
        backend.put("destination", b"a much longer old object")
        backend.copy("source", "destination")
        assert read_all(backend, "destination") == b"short"

    def test_copy_if_match_holds_only_for_the_current_etag(self, backend: Backend) -> None:
        """A conditional copy succeeds on the current etag and refuses a stale one."""
        first = backend.put("cond", b"one", metadata={"v": "1"})
        if first.etag is None:  # no etags: conditional copies are refused outright
            with pytest.raises(BackendError):
                backend.copy("cond", "cond", metadata={"v": "2"}, if_match="anything")
            return
        backend.put("cond", b"two", metadata={"v": "1"})
        with pytest.raises(ObjectChangedError):
            backend.copy("cond", "cond", metadata={"v": "2"}, if_match=first.etag)
        assert read_all(backend, "cond") == b"two"
        current = backend.head("cond").etag
        backend.copy("cond", "cond", metadata={"v": "3"}, if_match=current)
        assert dict(backend.head("cond").metadata) == {"v": "3"}

    def test_get_if_match_reads_only_the_version_with_that_etag(self, backend: Backend) -> None:
        """A conditional read succeeds on the current etag and refuses a stale one; a backend
        without etags refuses the condition."""
        first = backend.put("read-cond", b"one")
        if first.etag is None:
            with pytest.raises(BackendError, match="etag"):
                backend.get("read-cond", if_match="anything")
            return
        with closing(backend.get("read-cond", start=1, if_match=first.etag)) as stream:
            assert stream.read() == b"ne"
        backend.put("read-cond", b"two")
        for start, end in ((0, None), (1, 2), (1, 1)):
            with pytest.raises(ObjectChangedError):
                backend.get("read-cond", start=start, end=end, if_match=first.etag).close()

    def test_put_if_match_replaces_only_the_version_with_that_etag(self, backend: Backend) -> None:
        """A conditional write replaces the object only while it has the etag given; a stale
        etag leaves the newer object as it is; a backend without etags refuses it."""
        first = backend.put("write-cond", b"one")
        if first.etag is None:
            with pytest.raises(BackendError, match="etag"):
                backend.put("write-cond", b"two", if_match="anything")
            assert read_all(backend, "write-cond") == b"one"
            return
        second = backend.put("write-cond", b"two", if_match=first.etag)
        with pytest.raises(ObjectChangedError):
            backend.put("write-cond", b"three", if_match=first.etag)
        assert read_all(backend, "write-cond") == b"two"
        assert backend.head("write-cond").etag == second.etag

    def test_copy_of_a_missing_source_raises(self, backend: Backend) -> None:
        """Copying an absent object raises ObjectNotFoundError naming it, and creates nothing."""
        with pytest.raises(ObjectNotFoundError, match="no-source"):
            backend.copy("no-source", "destination")
        assert _names(backend.list()) == []

    # names

    @pytest.mark.parametrize("name", BAD_NAMES, ids=[ascii(name)[:40] for name in BAD_NAMES])
    def test_invalid_names_are_refused_everywhere(self, backend: Backend, name: str) -> None:
        """put, get, head, delete and copy refuse the name with InvalidNameError saying why."""
        backend.put("ok", b"x")
        operations: list[Callable[[], object]] = [
            lambda: backend.put(name, b"data"),
            lambda: backend.get(name),
            lambda: backend.head(name),
            lambda: backend.delete(name),
            lambda: backend.copy("ok", name),
            lambda: backend.copy(name, "ok-copy"),
        ]
        for operation in operations:
            with pytest.raises(InvalidNameError) as raised:
                operation()
            assert isinstance(raised.value, ValueError)
            assert len(str(raised.value)) > 20
        assert _names(backend.list()) == ["ok"]

    @pytest.mark.parametrize("name", GOOD_NAMES, ids=[ascii(name)[:40] for name in GOOD_NAMES])
    def test_unusual_valid_names_round_trip(self, backend: Backend, name: str) -> None:
        """Unicode, spaces, punctuation and 1024-byte names store, list, copy and delete."""
        backend.put(name, name.encode())
        assert read_all(backend, name) == name.encode()
        assert backend.head(name).name == name
        assert _names(backend.list()) == [name]
        assert _names(backend.list(name[:3])) == [name]
        backend.copy(name, "copied")
        assert read_all(backend, "copied") == name.encode()
        backend.delete(name)
        assert _names(backend.list()) == ["copied"]

    # large objects

    def test_large_object_streams_in_bounded_memory(self, backend: Backend) -> None:
        """8 MiB go in from a stream and out in pieces, and (if bounded) under 4 MiB of peak."""
        data = random.Random(8).randbytes(LARGE_SIZE)  # noqa: S311 - reproducible test data
        source = ChunkyReader(data, sizes=(1 << 30, 300_001, 4096))
        with _peak_memory(enabled=self.bounded_memory) as peaks:
            info = backend.put("large/object", source)
        assert info.size == LARGE_SIZE
        assert 0 < source.largest_request <= PIECE_LIMIT

        view = memoryview(data)
        offset = 0
        with (
            _peak_memory(enabled=self.bounded_memory) as read_peaks,
            closing(backend.get("large/object")) as stream,
        ):
            while piece := stream.read(256 << 10):
                assert view[offset : offset + len(piece)] == piece
                offset += len(piece)
        assert offset == LARGE_SIZE
        for peak in (*peaks, *read_peaks):
            assert peak < MEMORY_LIMIT

        start, end = PIECE_LIMIT - 5, 3 * PIECE_LIMIT + 7
        assert read_all(backend, "large/object", start=start, end=end) == data[start:end]
        assert (
            read_all(backend, "large/object", start=PIECE_LIMIT - 9, end=PIECE_LIMIT + 9)
            == (data[PIECE_LIMIT - 9 : PIECE_LIMIT + 9])
        )
        assert read_all(backend, "large/object", start=LARGE_SIZE - 3) == data[-3:]
