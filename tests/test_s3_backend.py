"""``S3Backend`` on two real S3 servers (moto_server and SeaweedFS), and its error seam."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.response import StreamingBody
from botocore.stub import Stubber

import sealstore
from sealstore.backends import Backend, ReadableStream
from sealstore.backends import s3 as s3_module
from sealstore.backends._rules import MAX_NAME_BYTES, is_valid_name
from sealstore.backends.s3 import (
    DEFAULT_PART_SIZE,
    MAX_METADATA_SIZE,
    MIN_PART_SIZE,
    S3Api,
    S3Backend,
)
from sealstore.testing.contracts import BackendContract
from tests.servers import free_ports

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20


def s3_client(endpoint: str, **config: Any) -> S3Client:
    """A boto3 S3 client for ``endpoint``, signing with the test servers' dummy credentials."""
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**config) if config else None,
    )


class Recorder:
    """An S3 client that forwards every call and records the operations' names.

    ``before`` runs before a named operation is forwarded; ``extra`` adds arguments to it.
    """

    def __init__(self, client: S3Client) -> None:
        self.client = client
        self.calls: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.before: dict[str, Callable[[], object]] = {}
        self.extra: dict[str, dict[str, Any]] = {}

    def __getattr__(self, operation: str) -> Any:
        method = getattr(self.client, operation)
        if not callable(method):  # the client's meta, with its configuration
            return method

        def call(**request: Any) -> Any:
            self.calls.append(operation)
            self.requests.append(request)
            if operation in self.before:
                self.before[operation]()
            return method(**request, **self.extra.get(operation, {}))

        return call


class RandomReader:
    """``size`` random bytes, made as they are read (never all in memory), and their SHA-256.

    Reads return at most ``most`` bytes, like a socket or a pipe; ``fail_after`` raises
    ``RuntimeError`` once that many bytes have been handed out.
    """

    def __init__(self, size: int, *, most: int = MiB, fail_after: int | None = None) -> None:
        self.left = size
        self.most = most
        self.fail_after = fail_after
        self.given = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        if self.fail_after is not None and self.given >= self.fail_after:
            raise RuntimeError("the source disk went away")
        wanted = self.left if size < 0 else size
        piece = os.urandom(min(wanted, self.left, self.most))
        self.left -= len(piece)
        self.given += len(piece)
        self.digest.update(piece)
        return piece


def unique_bucket(client: S3Client) -> str:
    """A new bucket no other test uses."""
    name = f"sealstore-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return name


def sha256_of(stream: ReadableStream) -> str:
    """The SHA-256 of everything in ``stream``, read 1 MiB at a time, then closed."""
    digest = hashlib.sha256()
    try:
        while piece := stream.read(MiB):
            digest.update(piece)
    finally:
        stream.close()
    return digest.hexdigest()


def read_all(backend: S3Backend, name: str, start: int = 0, end: int | None = None) -> bytes:
    """The bytes ``[start, end)`` of ``name``."""
    stream = backend.get(name, start=start, end=end)
    try:
        return stream.read()
    finally:
        stream.close()


@attrs.frozen
class Place:
    """A bucket on one of the real servers, shared by the session's tests.

    Each test works under a prefix of its own: SeaweedFS gives every bucket volumes of its
    own, so a bucket per test would soon exhaust them.
    """

    server: str
    client: S3Client
    bucket: str

    @property
    def by_directory(self) -> bool:
        """Whether the server needs ``list_by_directory`` (SeaweedFS lists by directory)."""
        return self.server == "seaweedfs"

    def backend(
        self,
        prefix: str,
        *,
        client: S3Api | None = None,
        bucket: str | None = None,
        **options: Any,
    ) -> S3Backend:
        """An ``S3Backend`` on this bucket (or ``bucket``) under ``prefix``."""
        options.setdefault("list_by_directory", self.by_directory)
        return S3Backend(
            self.client if client is None else client,
            self.bucket if bucket is None else bucket,
            prefix,
            **options,
        )

    def pending_uploads(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` of multipart uploads neither completed nor aborted."""
        answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [upload["Key"] for upload in answer.get("Uploads", [])]


@pytest.fixture(scope="session")
def moto_place(moto_server: str) -> Place:
    """The session's bucket on moto_server."""
    client = s3_client(moto_server)
    return Place("moto", client, unique_bucket(client))


@pytest.fixture(scope="session")
def seaweedfs_place(seaweedfs_server: str) -> Place:
    """The session's bucket on SeaweedFS."""
    client = s3_client(seaweedfs_server)
    return Place("seaweedfs", client, unique_bucket(client))


@pytest.fixture(params=["moto_place", "seaweedfs_place"], ids=["moto", "seaweedfs"])
def place(request: pytest.FixtureRequest) -> Place:
    """Each server's shared bucket in turn."""
    found: Place = request.getfixturevalue(request.param)
    return found


@pytest.fixture
def own_prefix() -> str:
    """A prefix no other test uses (not named ``prefix``: the contract has such a parameter)."""
    return f"test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def backend(place: Place, own_prefix: str) -> S3Backend:
    """An ``S3Backend`` under a fresh prefix, with 5 MiB parts to keep uploads quick."""
    return place.backend(own_prefix, part_size=MIN_PART_SIZE)


@pytest.fixture
def offline() -> S3Client:
    """A client for a port where nothing listens: for tests that must send no request."""
    return s3_client("http://127.0.0.1:9", connect_timeout=0.5, retries={"total_max_attempts": 1})


# --- the backend contract on both servers ----------------------------------------------------


class TestS3BackendContract(BackendContract):
    """The contract every backend passes, on moto_server and on SeaweedFS.

    Streams go up in parts of at least 5 MiB (S3's minimum), one part held in memory: above
    the contract's 4 MiB peak, so its memory check is off here and
    ``test_stream_of_40_mib_uploads_in_parts_with_bounded_memory`` checks S3's own bound.
    """

    bounded_memory = False

    @pytest.fixture
    def backend(self, request: pytest.FixtureRequest, place: Place, own_prefix: str) -> Backend:
        """A backend under a fresh prefix of each server's shared bucket.

        A valid name too long to follow the prefix (the contract's 1024-byte name) gets the
        root of a bucket of its own: S3's key limit counts the prefix.
        """
        callspec = getattr(request.node, "callspec", None)
        name = callspec.params.get("name") if callspec is not None else None
        if (
            isinstance(name, str)
            and is_valid_name(name)
            and len(name.encode("utf-8")) + len(own_prefix) > MAX_NAME_BYTES
        ):
            return place.backend("", bucket=unique_bucket(place.client))
        return place.backend(own_prefix, part_size=MIN_PART_SIZE)

    def test_list_reports_metadata_when_kept(self, backend: Backend) -> None:
        """S3 listings carry no user metadata: list gives it empty, head gives it whole."""
        backend.put("listed", b"x", metadata={"kind": "a"})
        (info,) = backend.list("listed")
        assert (info.name, info.size, dict(info.metadata)) == ("listed", 1, {})
        assert dict(backend.head("listed").metadata) == {"kind": "a"}


# --- the protocol's basics on both servers ---------------------------------------------------


def test_satisfies_backend_protocol(backend: S3Backend) -> None:
    """``S3Backend`` is usable wherever a ``Backend`` is expected, and keeps metadata."""
    as_protocol: Backend = backend
    assert as_protocol.keeps_metadata is True


def test_put_head_get_delete(backend: S3Backend) -> None:
    """Bytes round-trip with their metadata; put and head agree on size and etag."""
    written = backend.put("docs/a.txt", b"hello world", metadata={"kind": "note"})
    head = backend.head("docs/a.txt")
    assert (written.name, written.size, written.version_id) == ("docs/a.txt", 11, None)
    assert (head.size, dict(head.metadata), head.etag) == (11, {"kind": "note"}, written.etag)
    assert written.etag is not None
    assert not written.etag.startswith('"')
    assert head.last_modified is not None
    assert read_all(backend, "docs/a.txt") == b"hello world"
    backend.delete("docs/a.txt")
    with pytest.raises(sealstore.ObjectNotFoundError):
        backend.head("docs/a.txt")


def test_delete_of_missing_object_is_reported(backend: S3Backend) -> None:
    """Deleting a missing object raises ObjectNotFoundError, though S3 itself would not."""
    with pytest.raises(sealstore.ObjectNotFoundError, match="never-written"):
        backend.delete("never-written")
    with pytest.raises(KeyError):
        backend.delete("never-written")


def test_list_gives_sizes_and_empty_metadata(backend: S3Backend) -> None:
    """Listing reports stored sizes and etags but no metadata (S3 listings carry none)."""
    backend.put("a/one", b"1", metadata={"kind": "x"})
    backend.put("a/two", b"22")
    backend.put("b/three", b"333")
    listed = list(backend.list("a/"))
    assert [(info.name, info.size, dict(info.metadata)) for info in listed] == [
        ("a/one", 1, {}),
        ("a/two", 2, {}),
    ]
    assert listed[0].etag == backend.head("a/one").etag
    assert [info.name for info in backend.list()] == ["a/one", "a/two", "b/three"]
    assert list(backend.list("c")) == []


# --- streamed uploads -------------------------------------------------------------------------


def test_stream_of_40_mib_uploads_in_parts_with_bounded_memory(
    place: Place, own_prefix: str
) -> None:
    """A 40 MiB stream goes up as 8 MiB parts while Python memory peaks under two parts."""
    backend = place.backend(own_prefix)
    source = RandomReader(40 * MiB)
    tracemalloc.start()
    try:
        written = backend.put("big/forty", source, metadata={"kind": "bulk"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * DEFAULT_PART_SIZE
    assert written.size == 40 * MiB
    assert written.etag is not None
    assert written.etag.endswith("-5")  # five parts: the multipart upload was used
    head = backend.head("big/forty")
    assert (head.size, dict(head.metadata)) == (40 * MiB, {"kind": "bulk"})
    assert sha256_of(backend.get("big/forty")) == source.digest.hexdigest()


@pytest.mark.parametrize(
    ("size", "parts"),
    [(0, 0), (1, 0), (MIN_PART_SIZE - 1, 0), (MIN_PART_SIZE, 1), (2 * MIN_PART_SIZE + 3, 3)],
)
def test_stream_sizes_around_the_part_size(backend: S3Backend, size: int, parts: int) -> None:
    """Streams shorter than a part take one PutObject; longer ones the parts they need."""
    source = RandomReader(size, most=777_777)
    written = backend.put("edge/object", source)
    assert written.size == backend.head("edge/object").size == size
    assert written.etag is not None
    assert written.etag.endswith(f"-{parts}") == bool(parts)
    assert sha256_of(backend.get("edge/object")) == source.digest.hexdigest()


def test_iterable_of_uneven_pieces(backend: S3Backend) -> None:
    """An iterable's pieces, larger and smaller than a part, are cut into parts in order."""
    pieces = [os.urandom(3 * MiB), os.urandom(9 * MiB), b"", os.urandom(1), b"xyz"]
    written = backend.put("edge/pieces", iter(pieces), metadata={"from": "iterable"})
    assert written.size == 12 * MiB + 4
    assert written.etag is not None
    assert written.etag.endswith("-3")
    assert read_all(backend, "edge/pieces") == b"".join(pieces)
    assert dict(backend.head("edge/pieces").metadata) == {"from": "iterable"}


@pytest.mark.parametrize("calculation", ["when_supported", "when_required"])
def test_part_checksums_follow_the_clients_setting(
    place: Place, own_prefix: str, calculation: str
) -> None:
    """Parts carry CRC32s declared at creation, unless the client is set to 'when_required'."""
    recorder = Recorder(
        s3_client(place.client.meta.endpoint_url, request_checksum_calculation=calculation)
    )
    backend = place.backend(own_prefix, client=recorder, part_size=MIN_PART_SIZE)
    source = RandomReader(MIN_PART_SIZE + 10)
    assert backend.put("edge/checked", source).size == MIN_PART_SIZE + 10
    requests = dict(zip(recorder.calls, recorder.requests, strict=True))
    parts = requests["complete_multipart_upload"]["MultipartUpload"]["Parts"]
    if calculation == "when_supported":
        assert requests["create_multipart_upload"]["ChecksumAlgorithm"] == "CRC32"
        assert all(part["ChecksumCRC32"] for part in parts)
    else:
        assert "ChecksumAlgorithm" not in requests["create_multipart_upload"]
        assert all("ChecksumCRC32" not in part for part in parts)
    assert len(parts) == 2
    assert sha256_of(backend.get("edge/checked")) == source.digest.hexdigest()


def test_bytes_likes_are_stored_in_one_request(backend: S3Backend) -> None:
    """bytes, bytearray and memoryview data each take one PutObject."""
    for data in (b"plain", bytearray(b"array"), memoryview(b"view of bytes")[2:]):
        written = backend.put("edge/bytes-like", data)  # type: ignore[arg-type]
        assert written.size == len(bytes(data))
        assert read_all(backend, "edge/bytes-like") == bytes(data)


def test_too_many_parts_is_refused_and_aborted(
    place: Place, own_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream needing more parts than S3 allows fails with advice, and leaves no upload."""
    monkeypatch.setattr(s3_module, "MAX_PARTS", 2)
    backend = place.backend(own_prefix, part_size=MIN_PART_SIZE)
    with pytest.raises(sealstore.BackendError, match="larger part_size"):
        backend.put("edge/huge", RandomReader(2 * MIN_PART_SIZE + 1))
    assert place.pending_uploads(own_prefix) == []
    with pytest.raises(sealstore.ObjectNotFoundError):
        backend.head("edge/huge")


def test_failing_stream_aborts_the_upload(
    backend: S3Backend, place: Place, own_prefix: str
) -> None:
    """A stream failing after two parts leaves the old object, and no pending upload."""
    backend.put("edge/kept", b"old content")
    with pytest.raises(RuntimeError, match="disk went away"):
        backend.put("edge/kept", RandomReader(30 * MiB, fail_after=12 * MiB))
    with pytest.raises(RuntimeError, match="disk went away"):
        backend.put("edge/never", RandomReader(30 * MiB, fail_after=12 * MiB))
    assert read_all(backend, "edge/kept") == b"old content"
    with pytest.raises(sealstore.ObjectNotFoundError):
        backend.head("edge/never")
    assert place.pending_uploads(own_prefix) == []


def test_failing_part_aborts_the_upload(place: Place, own_prefix: str) -> None:
    """An upload the server no longer knows fails with BackendError and is left aborted."""
    client = place.client
    recorder = Recorder(client)

    def abort_behind_our_back() -> None:
        answer = client.list_multipart_uploads(Bucket=place.bucket, Prefix=own_prefix)
        for upload in answer.get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=place.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )

    recorder.before["upload_part"] = abort_behind_our_back
    backend = place.backend(own_prefix, client=recorder, part_size=MIN_PART_SIZE)
    with pytest.raises(sealstore.BackendError, match="UploadPart of 'edge/refused'") as caught:
        backend.put("edge/refused", RandomReader(11 * MiB))
    assert isinstance(caught.value.__cause__, ClientError)
    assert "abort_multipart_upload" in recorder.calls
    assert place.pending_uploads(own_prefix) == []
    with pytest.raises(sealstore.ObjectNotFoundError):
        backend.head("edge/refused")


def test_text_data_is_refused_before_any_request(place: Place, own_prefix: str) -> None:
    """``str`` data, and an iterable of ``str``, are TypeErrors; nothing is left behind."""
    recorder = Recorder(place.client)
    backend = place.backend(own_prefix, client=recorder)
    with pytest.raises(TypeError):
        backend.put("edge/text", "not bytes")  # type: ignore[arg-type]
    assert recorder.calls == []
    with pytest.raises(TypeError):
        backend.put("edge/text", iter([b"x" * (8 * MiB), "text"]))  # type: ignore[arg-type]
    assert place.pending_uploads(own_prefix) == []


# --- metadata ---------------------------------------------------------------------------------


def test_metadata_at_the_limit_round_trips(backend: S3Backend) -> None:
    """Metadata of exactly 2 KB (keys plus values) is stored and returned unchanged."""
    metadata = {
        "header": "h" * (MAX_METADATA_SIZE - len("header") - len("mode") - 3),
        "mode": "abc",
    }
    assert sum(len(k) + len(v) for k, v in metadata.items()) == MAX_METADATA_SIZE
    backend.put("meta/full", b"x", metadata=metadata)
    assert dict(backend.head("meta/full").metadata) == metadata


@pytest.mark.parametrize(
    "metadata",
    [
        {"header": "h" * (MAX_METADATA_SIZE - len("header") + 1)},
        {"Upper": "x"},
        {"k": "caf\u00e9"},
        {"k": ""},
        {"k": " padded"},
        {"k": "padded "},
    ],
    ids=["too-large", "uppercase-key", "non-ascii-value", "empty-value", "leading", "trailing"],
)
def test_metadata_s3_cannot_keep_is_refused_before_any_request(
    offline: S3Client, metadata: dict[str, str]
) -> None:
    """Metadata over 2 KB, or that S3 would alter, is a ValueError before any request."""
    recorder = Recorder(offline)
    backend = S3Backend(recorder, "some-bucket")
    with pytest.raises(ValueError, match="metadata") as caught:
        backend.put("meta/refused", b"x", metadata=metadata)
    assert "caf\u00e9" not in str(caught.value)
    with pytest.raises(ValueError, match="metadata"):
        backend.put("meta/refused", RandomReader(6 * MiB), metadata=metadata)
    with pytest.raises(ValueError, match="metadata"):
        backend.copy("meta/refused", "meta/other", metadata=metadata)
    assert recorder.calls == []


# --- ranged reads -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, slice(0, 1000)),
        (10, 20, slice(10, 20)),
        (999, None, slice(999, 1000)),
        (990, 5000, slice(990, 1000)),
        (0, 1, slice(0, 1)),
        (500, 500, slice(0, 0)),
        (1000, None, slice(0, 0)),
        (1000, 1005, slice(0, 0)),
        (5000, None, slice(0, 0)),
    ],
)
def test_ranged_reads(backend: S3Backend, start: int, end: int | None, expected: slice) -> None:
    """A range is one GetObject; ranges past the end are cut, empty ranges read nothing."""
    data = os.urandom(1000)
    backend.put("range/object", data)
    assert read_all(backend, "range/object", start, end) == data[expected]


def test_ranges_of_an_empty_object(backend: S3Backend) -> None:
    """Every range of an empty object reads nothing (S3 answers 416, which means empty)."""
    backend.put("range/empty", b"")
    assert read_all(backend, "range/empty") == b""
    assert read_all(backend, "range/empty", 0, 10) == b""
    assert read_all(backend, "range/empty", 3) == b""


def test_ranges_of_a_missing_object_and_bad_ranges(backend: S3Backend) -> None:
    """A missing object is reported even for an empty range; a reversed range is refused."""
    for start, end in [(0, None), (5, 10), (3, 3)]:
        with pytest.raises(sealstore.ObjectNotFoundError):
            backend.get("range/missing", start=start, end=end)
    with pytest.raises(ValueError, match="start"):
        backend.get("range/missing", start=-1)
    with pytest.raises(ValueError, match="before its start"):
        backend.get("range/missing", start=5, end=4)


def test_ranged_stream_is_a_binary_file(backend: S3Backend) -> None:
    """The stream reads in pieces, fills buffers, closes with ``with``, then refuses reads."""
    backend.put("range/file", b"0123456789")
    stream = backend.get("range/file", start=2, end=9)
    assert isinstance(stream, io.RawIOBase)
    with stream:
        assert stream.read(3) == b"234"
        buffer = bytearray(2)
        assert stream.readinto(buffer) == 2
        assert bytes(buffer) == b"56"
        assert stream.read() == b"78"
        assert stream.read(5) == b""
    with pytest.raises(ValueError, match="closed"):
        stream.read(1)
    whole = backend.get("range/file")
    assert isinstance(whole, io.RawIOBase)
    with io.BufferedReader(whole) as buffered:
        assert buffered.read() == b"0123456789"


# --- prefixes and names -----------------------------------------------------------------------


def test_prefixes_isolate_backends_on_one_bucket(place: Place, own_prefix: str) -> None:
    """Two prefixes on one bucket never see each other's objects; a parent prefix sees both."""
    first = place.backend(own_prefix + "tenant-a/")
    second = place.backend(own_prefix + "tenant-a-b/")
    whole = place.backend(own_prefix)
    first.put("x", b"first", metadata={"owner": "a"})
    second.put("x", b"second")
    first.put("dir/y", b"y")
    assert [info.name for info in first.list()] == ["dir/y", "x"]
    assert [info.name for info in second.list()] == ["x"]
    assert [info.name for info in whole.list()] == ["tenant-a-b/x", "tenant-a/dir/y", "tenant-a/x"]
    assert read_all(first, "x") == b"first"
    assert read_all(second, "x") == b"second"
    first.delete("x")
    assert read_all(second, "x") == b"second"
    with pytest.raises(sealstore.ObjectNotFoundError):
        first.head("x")
    first.copy("dir/y", "dir/z")
    assert read_all(whole, "tenant-a/dir/z") == b"y"
    assert repr(first).startswith("S3Backend(bucket=")
    assert "client" not in repr(first)


@pytest.mark.parametrize("bad", ["tenant", "/tenant/", "a//", "../", "tenant/../", "x\\y/"])
def test_prefix_must_be_a_directory(offline: S3Client, bad: str) -> None:
    """A prefix that is not '' or a valid name followed by '/' is refused at construction."""
    with pytest.raises(sealstore.InvalidNameError, match="prefix"):
        S3Backend(offline, "some-bucket", bad)


@pytest.mark.parametrize(
    "name", ["", "/abs", "a//b", "a/./b", "../up", "a/..", "nul\x00", "tab\tname", "back\\slash"]
)
def test_invalid_names_are_refused_before_any_request(offline: S3Client, name: str) -> None:
    """Names every backend refuses are InvalidNameError here too, with no request made."""
    recorder = Recorder(offline)
    backend = S3Backend(recorder, "some-bucket")
    for operation in (
        lambda: backend.put(name, b"x"),
        lambda: backend.get(name),
        lambda: backend.head(name),
        lambda: backend.delete(name),
        lambda: backend.copy(name, "ok"),
        lambda: backend.copy("ok", name),
    ):
        with pytest.raises(sealstore.InvalidNameError):
            operation()
    assert recorder.calls == []


def long_name(size: int) -> str:
    """A valid name of ``size`` bytes, in segments of 199 bytes."""
    name = (("n" * 199 + "/") * 6)[:size]
    assert not name.endswith("/")
    return name


def test_key_length_counts_the_prefix(place: Place, own_prefix: str) -> None:
    """A name fitting 1024 bytes alone but not after the prefix is refused without a request."""
    recorder = Recorder(place.client)
    backend = place.backend(own_prefix, client=recorder)
    room = 1024 - len(own_prefix)
    with pytest.raises(sealstore.InvalidNameError, match="1024"):
        backend.put(long_name(room + 2), b"")
    assert recorder.calls == []
    assert backend.put(long_name(room), b"ok").size == 2
    assert [info.name for info in backend.list()] == [long_name(room)]


def test_listing_skips_keys_that_are_not_names(
    backend: S3Backend, place: Place, own_prefix: str
) -> None:
    """Keys written by other tools that are no valid name (markers, controls) are not listed."""
    backend.put("tools/kept", b"k")
    for key in ["tools/marker/", "tools/bell\x07", "tools/.sealstore-reserved"]:
        place.client.put_object(Bucket=place.bucket, Key=own_prefix + key, Body=b"")
    assert [info.name for info in backend.list("tools/")] == ["tools/kept"]


def test_long_segment_on_each_server(backend: S3Backend, place: Place) -> None:
    """A 300-byte segment is stored by moto and refused by SeaweedFS as InvalidNameError."""
    name = "long/" + "s" * 300
    if place.server == "moto":
        backend.put(name, b"ok")
        assert read_all(backend, name) == b"ok"
    else:
        with pytest.raises(sealstore.InvalidNameError, match="too long"):
            backend.put(name, b"ok")


# --- listing order ----------------------------------------------------------------------------

ORDER_NAMES = ["a", "a b", "a-c", "a.d", "a/b", "a/b/c", "a/b-x", "a0", "b", "\u00e9", "\u4e2d"]


@pytest.mark.parametrize("by_directory_mode", [False, True])
def test_listing_is_in_name_order_across_pages(
    place: Place, own_prefix: str, by_directory_mode: bool
) -> None:
    """Names come in code-point order across pages of two; SeaweedFS needs the directory mode."""
    # SeaweedFS lists a directory before its siblings that sort before '/': its flat listing
    # raises BackendError naming the fix instead of returning names out of order.
    recorder = Recorder(place.client)
    recorder.extra["list_objects_v2"] = {"MaxKeys": 2}
    backend = place.backend(own_prefix, client=recorder, list_by_directory=by_directory_mode)
    for name in reversed(ORDER_NAMES):
        backend.put(name, b"")
    if place.server == "seaweedfs" and not by_directory_mode:
        with pytest.raises(sealstore.BackendError, match="list_by_directory=True"):
            list(backend.list())
        return
    assert [info.name for info in backend.list()] == sorted(ORDER_NAMES)
    assert [info.name for info in backend.list("a")] == sorted(ORDER_NAMES)[:8]
    assert [info.name for info in backend.list("a/b")] == ["a/b", "a/b-x", "a/b/c"]
    assert [info.name for info in backend.list("a/b/")] == ["a/b/c"]
    assert [info.name for info in backend.list("zz")] == []
    assert recorder.calls.count("list_objects_v2") > 6


def test_listing_an_impossible_prefix_sends_nothing(offline: S3Client) -> None:
    """A prefix no valid name can start with lists nothing without asking the server."""
    recorder = Recorder(offline)
    backend = S3Backend(recorder, "some-bucket")
    assert list(backend.list("../")) == []
    assert list(backend.list("x" * 1100)) == []
    with pytest.raises(TypeError):
        backend.list(7)  # type: ignore[arg-type]
    assert recorder.calls == []


# --- copy -------------------------------------------------------------------------------------


def test_same_name_copy_rewrites_only_metadata(backend: S3Backend) -> None:
    """Copying an object onto itself with new metadata replaces the metadata, keeps the bytes."""
    backend.put("copy/self", b"body bytes", metadata={"version": "1", "other": "x"})
    rewritten = backend.copy("copy/self", "copy/self", metadata={"version": "2"})
    assert (rewritten.name, rewritten.size, dict(rewritten.metadata)) == (
        "copy/self",
        10,
        {"version": "2"},
    )
    assert dict(backend.head("copy/self").metadata) == {"version": "2"}
    assert read_all(backend, "copy/self") == b"body bytes"
    unchanged = backend.copy("copy/self", "copy/self")
    assert dict(unchanged.metadata) == {"version": "2"}


def test_copy_keeps_or_replaces_metadata(backend: S3Backend) -> None:
    """A copy keeps the source's metadata unless new metadata is given."""
    backend.put("copy/source", b"payload", metadata={"kind": "original"})
    kept = backend.copy("copy/source", "copy/kept")
    replaced = backend.copy("copy/source", "copy/replaced", metadata={"kind": "new"})
    assert dict(kept.metadata) == dict(backend.head("copy/kept").metadata) == {"kind": "original"}
    assert (
        dict(replaced.metadata) == dict(backend.head("copy/replaced").metadata) == {"kind": "new"}
    )
    assert kept.size == replaced.size == 7
    assert kept.etag == backend.head("copy/kept").etag
    assert read_all(backend, "copy/replaced") == b"payload"
    with pytest.raises(sealstore.ObjectNotFoundError, match="copy/absent"):
        backend.copy("copy/absent", "copy/anywhere")


def test_large_copy_goes_in_parts(place: Place, own_prefix: str) -> None:
    """Above the copy threshold, copies use UploadPartCopy, with or without new metadata."""
    recorder = Recorder(place.client)
    backend = place.backend(
        own_prefix, client=recorder, copy_threshold=6 * MiB, copy_part_size=MIN_PART_SIZE
    )
    data = os.urandom(2 * MIN_PART_SIZE + 5)
    backend.put("copy/big", data, metadata={"kind": "big"})
    recorder.calls.clear()
    copied = backend.copy("copy/big", "copy/big-copy")
    assert recorder.calls.count("upload_part_copy") == 3
    assert "copy_object" not in recorder.calls
    assert (copied.size, dict(copied.metadata)) == (len(data), {"kind": "big"})
    assert copied.etag is not None
    assert copied.etag.endswith("-3")
    rewritten = backend.copy("copy/big", "copy/big", metadata={"kind": "rewrapped"})
    assert dict(rewritten.metadata) == {"kind": "rewrapped"}
    for name, metadata in [("copy/big-copy", {"kind": "big"}), ("copy/big", {"kind": "rewrapped"})]:
        assert read_all(backend, name) == data
        assert dict(backend.head(name).metadata) == metadata
    assert place.pending_uploads(own_prefix) == []


def test_failed_part_copy_aborts(place: Place, own_prefix: str) -> None:
    """A source deleted during a copy in parts fails the copy and leaves no upload behind."""
    recorder = Recorder(place.client)
    backend = place.backend(
        own_prefix, client=recorder, copy_threshold=6 * MiB, copy_part_size=MIN_PART_SIZE
    )
    backend.put("copy/vanishing", os.urandom(2 * MIN_PART_SIZE))
    recorder.before["upload_part_copy"] = lambda: place.client.delete_object(
        Bucket=place.bucket, Key=own_prefix + "copy/vanishing"
    )
    with pytest.raises(sealstore.SealstoreError):
        backend.copy("copy/vanishing", "copy/never")
    assert "abort_multipart_upload" in recorder.calls
    assert place.pending_uploads(own_prefix) == []
    with pytest.raises(sealstore.ObjectNotFoundError):
        backend.head("copy/never")


def test_source_overwritten_during_copy_fails_on_seaweedfs(
    seaweedfs_place: Place, own_prefix: str
) -> None:
    """A source replaced between HeadObject and CopyObject fails the copy (If-Match)."""
    # moto ignores x-amz-copy-source-if-match; SeaweedFS and AWS honour it.
    place = seaweedfs_place
    recorder = Recorder(place.client)
    backend = place.backend(own_prefix, client=recorder)
    backend.put("copy/moving", b"first version")
    recorder.before["copy_object"] = lambda: place.client.put_object(
        Bucket=place.bucket, Key=own_prefix + "copy/moving", Body=b"second, longer version"
    )
    with pytest.raises(sealstore.BackendError, match="changed since its etag was read"):
        backend.copy("copy/moving", "copy/target")
    with pytest.raises(sealstore.ObjectNotFoundError):
        backend.head("copy/target")


# --- errors from real servers -----------------------------------------------------------------


def test_missing_bucket_is_a_backend_error(place: Place) -> None:
    """Every operation on a missing bucket says the bucket does not exist, not the object."""
    backend = S3Backend(place.client, f"sealstore-missing-{uuid.uuid4().hex[:12]}")
    for operation in (
        lambda: backend.put("a", b"x"),
        lambda: backend.put("a", RandomReader(6 * MiB)),
        lambda: backend.get("a"),
        lambda: backend.get("a", start=2, end=2),
        lambda: backend.head("a"),
        lambda: backend.delete("a"),
        lambda: backend.copy("a", "b"),
        lambda: list(backend.list()),
    ):
        with pytest.raises(sealstore.BackendError, match="does not exist") as caught:
            operation()
        assert not isinstance(caught.value, sealstore.ObjectNotFoundError)


def test_wrong_credentials_on_seaweedfs(seaweedfs_server: str, seaweedfs_place: Place) -> None:
    """Requests signed with unknown credentials fail with advice about credentials."""
    # moto accepts any credentials; SeaweedFS (like AWS) checks them.
    intruder = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=seaweedfs_server,
        aws_access_key_id="nobody",
        aws_secret_access_key="wrong",
    )
    backend = S3Backend(intruder, seaweedfs_place.bucket)
    for operation in (lambda: backend.put("a", b"x"), lambda: list(backend.list())):
        with pytest.raises(sealstore.BackendError, match="credentials") as caught:
            operation()
        assert isinstance(caught.value.__cause__, ClientError)


def test_server_not_running() -> None:
    """Connection refused is a BackendError naming the operation, raised from botocore's."""
    (port,) = free_ports(1)
    client = s3_client(
        f"http://127.0.0.1:{port}",
        connect_timeout=1,
        read_timeout=1,
        retries={"total_max_attempts": 1},
    )
    backend = S3Backend(client, "some-bucket")
    for operation, name in (
        (lambda: backend.put("docs/a", b"x"), "PutObject"),
        (lambda: backend.get("docs/a"), "GetObject"),
        (lambda: backend.head("docs/a"), "HeadObject"),
        (lambda: list(backend.list("docs/")), "ListObjectsV2"),
    ):
        with pytest.raises(sealstore.BackendError, match=name) as caught:
            operation()
        assert isinstance(caught.value.__cause__, EndpointConnectionError)
        assert "running" in str(caught.value)


def test_server_that_never_answers() -> None:
    """A read timeout is a BackendError raised from botocore's ReadTimeoutError."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = s3_client(
            f"http://127.0.0.1:{port}",
            connect_timeout=1,
            read_timeout=0.2,
            retries={"total_max_attempts": 1},
        )
        with pytest.raises(sealstore.BackendError, match="HeadObject") as caught:
            S3Backend(client, "some-bucket").head("docs/a")
    assert isinstance(caught.value.__cause__, ReadTimeoutError)


# --- error translation at the seam, with botocore's Stubber ----------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Backend, Stubber]]:
    """An ``S3Backend`` over a client whose answers are queued with a Stubber (no network)."""
    client = s3_client("http://127.0.0.1:9")
    with Stubber(client) as stubber:
        yield S3Backend(client, "stub-bucket", "app/"), stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "expected", "words"),
    [
        ("NoSuchKey", 404, sealstore.ObjectNotFoundError, "no object named"),
        ("NoSuchBucket", 404, sealstore.BackendError, "does not exist"),
        ("KeyTooLongError", 400, sealstore.InvalidNameError, "too long"),
        ("AccessDenied", 403, sealstore.BackendError, "credentials"),
        ("SignatureDoesNotMatch", 403, sealstore.BackendError, "credentials"),
        ("SlowDown", 503, sealstore.BackendError, "try again later"),
        ("InternalError", 500, sealstore.BackendError, "try again later"),
        ("SomethingNew", 502, sealstore.BackendError, "try again later"),
        ("InvalidArgument", 400, sealstore.BackendError, "InvalidArgument"),
    ],
)
def test_error_codes_translate(
    stubbed: tuple[S3Backend, Stubber],
    code: str,
    status: int,
    expected: type[sealstore.SealstoreError],
    words: str,
) -> None:
    """Each S3 error code becomes the sealstore error the protocol promises, from the original."""
    backend, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=status)
    with pytest.raises(expected, match=words) as caught:
        backend.get("docs/report.pdf")
    assert type(caught.value) is expected
    assert isinstance(caught.value.__cause__, ClientError)
    assert "docs/report.pdf" in str(caught.value)


def test_head_404_with_the_bucket_present_is_a_missing_object(
    stubbed: tuple[S3Backend, Stubber],
) -> None:
    """A bare 404 from HeadObject is a missing object when HeadBucket finds the bucket."""
    backend, stubber = stubbed
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    stubber.add_response("head_bucket", {}, {"Bucket": "stub-bucket"})
    with pytest.raises(sealstore.ObjectNotFoundError, match="s3://stub-bucket/app/"):
        backend.head("docs/gone")


def test_head_404_when_bucket_access_is_denied_is_a_missing_object(
    stubbed: tuple[S3Backend, Stubber],
) -> None:
    """When HeadBucket is denied, a bare 404 from HeadObject still means a missing object."""
    backend, stubber = stubbed
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    stubber.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
    with pytest.raises(sealstore.ObjectNotFoundError):
        backend.head("docs/gone")


def stub_body(stubber: Stubber, failure: Exception) -> None:
    """Queue a GetObject answer for ``app/docs/a`` whose body raises ``failure`` when read."""

    class Broken(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            raise failure

    stubber.add_response(
        "get_object",
        {"Body": StreamingBody(Broken(), 10), "ContentLength": 10},
        {"Bucket": "stub-bucket", "Key": "app/docs/a"},
    )


@pytest.mark.parametrize(
    "failure",
    [
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
        ResponseStreamingError(error=ConnectionResetError("connection reset")),
        ConnectionResetError("connection reset"),
    ],
)
def test_errors_while_reading_a_body_translate(
    stubbed: tuple[S3Backend, Stubber], failure: Exception
) -> None:
    """A transfer failing half-way raises BackendError from the transport's error."""
    backend, stubber = stubbed
    stub_body(stubber, failure)
    stream = backend.get("docs/a")
    with pytest.raises(sealstore.BackendError, match="cannot read 'docs/a'") as caught:
        stream.read(5)
    assert caught.value.__cause__ is failure
    stream.close()
    stream.close()


def test_other_errors_while_reading_a_body_pass_through(
    stubbed: tuple[S3Backend, Stubber],
) -> None:
    """An error that is not the transport's is not disguised as a storage error."""
    backend, stubber = stubbed
    stub_body(stubber, LookupError("a bug in a wrapper"))
    stream = backend.get("docs/a")
    with pytest.raises(LookupError, match="a bug"):
        stream.read()
    stream.close()


def test_directory_listing_tolerates_odd_answers(stubbed: tuple[S3Backend, Stubber]) -> None:
    """A listing skips keys outside the prefix, and a directory equal to the prefix itself."""
    client = stubbed[0].client
    backend = S3Backend(client, "stub-bucket", "app/", list_by_directory=True)
    stubber = stubbed[1]
    stubber.add_response(
        "list_objects_v2",
        {
            "Contents": [{"Key": "app/docs/a", "Size": 1}, {"Key": "elsewhere/b", "Size": 2}],
            "CommonPrefixes": [{"Prefix": "app/docs/"}],
            "IsTruncated": False,
        },
        {"Bucket": "stub-bucket", "Prefix": "app/docs/", "Delimiter": "/"},
    )
    assert [(info.name, info.size) for info in backend.list("docs/")] == [("docs/a", 1)]


def test_other_errors_pass_through(stubbed: tuple[S3Backend, Stubber]) -> None:
    """An exception that is not from S3 or botocore is not disguised as a storage error."""

    class Surprise(Exception):
        pass

    backend, _ = stubbed

    class Exploding:
        def __getattr__(self, _name: str) -> Callable[..., Any]:
            def fail(**_request: Any) -> Any:
                raise Surprise

            return fail

    with pytest.raises(Surprise):
        S3Backend(Exploding(), "stub-bucket").head("a")
    assert backend.bucket == "stub-bucket"


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda client: S3Backend(client, "some-bucket", part_size=MIN_PART_SIZE - 1),
        lambda client: S3Backend(client, "some-bucket", part_size=(5 << 30) + 1),
        lambda client: S3Backend(client, "some-bucket", copy_part_size=MiB),
        lambda client: S3Backend(client, "some-bucket", copy_threshold=-1),
    ],
    ids=["part-too-small", "part-too-large", "copy-part-too-small", "negative-threshold"],
)
def test_sizes_out_of_s3_limits_are_refused(
    offline: S3Client, build: Callable[[S3Client], S3Backend]
) -> None:
    """Part sizes S3 would refuse are a ValueError at construction."""
    with pytest.raises(ValueError, match="must be an int"):
        build(offline)


@pytest.mark.parametrize("bucket", ["", "a/b"])
def test_bucket_must_be_a_name(offline: S3Client, bucket: str) -> None:
    """An empty bucket name, or one with '/', is a ValueError at construction."""
    with pytest.raises(ValueError, match="bucket"):
        S3Backend(offline, bucket)
