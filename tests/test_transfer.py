"""The store on S3 in concurrent parts: layout, failures, memory, progress and requests,
against moto_server and SeaweedFS."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

import sealstore
from sealstore import _aead, _transfer
from sealstore.backends.s3 import S3Backend
from sealstore.placement import read_marker
from tests.test_s3_backend import RandomReader, s3_client, unique_bucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20
PART = 5 * MiB
"""The smallest part S3 accepts, so that multipart objects stay small in tests."""
SEALED_PART = _aead.sealed_run_size(PART, final=False)


@pytest.fixture(params=["moto", "seaweedfs"])
def client(request: pytest.FixtureRequest) -> S3Client:
    """A boto3 client of a real S3 server (moto_server, then SeaweedFS)."""
    endpoint: str = request.getfixturevalue(f"{request.param}_server")
    return s3_client(endpoint)


@pytest.fixture
def bucket(client: S3Client) -> str:
    """A bucket of the test's own."""
    return unique_bucket(client)


@pytest.fixture
def keys() -> sealstore.ManagedKeys:
    """Managed keys in memory."""
    return sealstore.ManagedKeys(sealstore.MemoryKeyringStore())


def make_store(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys, concurrency: int = 3
) -> sealstore.EncryptedStore:
    """A store on ``bucket`` with 5 MiB parts."""
    backend = S3Backend(client, bucket, part_size=PART, concurrency=concurrency)
    return sealstore.EncryptedStore(backend, keys)


class Requests:
    """Counts the HTTP requests a client sends, by operation, through botocore's events."""

    def __init__(self, client: S3Client) -> None:
        self.names: list[str] = []
        self.bodies: dict[int, int] = {}
        self._lock = threading.Lock()
        client.meta.events.register("before-send.s3", self._sent)
        client.meta.events.register("before-parameter-build.s3.UploadPart", self._part)

    def _sent(self, event_name: str, **_: Any) -> None:
        with self._lock:
            self.names.append(event_name.rsplit(".", 1)[-1])

    def _part(self, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.bodies[params["PartNumber"]] = len(params["Body"])

    def taken(self) -> list[str]:
        """The operations sent since the last call, in order."""
        with self._lock:
            names, self.names = self.names, []
        return names


@pytest.mark.parametrize(
    "size",
    [PART + 1, 2 * PART, 3 * PART - 1, 3 * PART + 12_345],
    ids=["one-part-and-a-byte", "two-whole-parts", "unaligned", "three-parts-and-some"],
)
def test_multipart_put_follows_the_shared_part_layout(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys, size: int
) -> None:
    """Part 1 starts with the body prefix, every part holds whole chunks by index, the last
    ends with the short final chunk; the stored object is plain format v1."""
    store = make_store(client, bucket, keys)
    requests = Requests(client)
    data = os.urandom(size)
    head = store.put("big", io.BytesIO(data))
    parts = -(-size // PART) if size % PART else size // PART
    assert requests.taken() == [
        "CreateMultipartUpload",
        *["UploadPart"] * parts,
        "CompleteMultipartUpload",
    ]
    last = size - (parts - 1) * PART
    expected = dict.fromkeys(range(1, parts), SEALED_PART)
    expected[1] += _aead.BODY_PREFIX_SIZE
    expected[parts] = expected.get(parts, 0) + _aead.sealed_run_size(last, final=True)
    assert requests.bodies == expected
    stored = client.get_object(Bucket=bucket, Key="big")
    placement, header = read_marker(stored["Metadata"], "big")
    body = stored["Body"].read()
    assert placement == "detached"
    assert len(body) == head.stored_size == _aead.body_size(size)
    assert sealstore.decrypt(body, keys, header=header) == data
    assert store.get("big") == data


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART], ids=["empty", "byte", "under", "one"])
def test_a_body_of_one_part_is_one_put(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys, size: int
) -> None:
    """Up to one part (a whole one included, its empty final chunk appended), one PutObject;
    reading it back costs one GetObject."""
    store = make_store(client, bucket, keys)
    requests = Requests(client)
    data = os.urandom(size)
    assert store.put("small", io.BytesIO(data)).plaintext_size == size
    assert requests.taken() == ["PutObject"]
    assert store.get("small") == data
    assert requests.taken() == ["GetObject"]


def test_download_is_concurrent_ranges_released_in_order(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """A download is one GET per part, the first bringing the header (a final chunk shorter
    than a chunk rides with the part before it); the sink sees the plaintext in order and the
    callback counts every byte."""
    store = make_store(client, bucket, keys)
    data = os.urandom(4 * PART + 999)
    store.put("big", data)
    requests = Requests(client)
    sink = io.BytesIO()
    progress: list[int] = []
    assert store.download("big", sink, callback=progress.append) == len(data)
    assert sink.getvalue() == data
    assert sum(progress) == len(data)
    assert requests.taken() == ["GetObject"] * 4
    store.put("big", data + bytes(40_000))  # two whole chunks more: a part of their own
    requests.taken()
    sink = io.BytesIO()
    store.download("big", sink)
    assert sink.getvalue() == data + bytes(40_000)
    assert requests.taken() == ["GetObject"] * 5


def test_upload_progress_counts_plaintext(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """The put callback gets every plaintext byte once, one part at a time."""
    store = make_store(client, bucket, keys)
    progress: list[int] = []
    store.put("big", RandomReader(2 * PART + 77), callback=progress.append)
    assert sorted(progress) == [77, PART, PART]


def test_a_failing_source_aborts_the_upload_and_keeps_the_old_object(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """A source that fails after two parts: the upload is aborted, nothing new is visible,
    and the object stored before under the name is still there."""
    store = make_store(client, bucket, keys)
    store.put("doc", b"the old version")
    with pytest.raises(RuntimeError, match="went away"):
        store.put("doc", RandomReader(6 * PART, fail_after=2 * PART + MiB))
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert store.get("doc") == b"the old version"


def test_a_failing_part_aborts_the_upload(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """A part the server cannot take (the connection fails): the error is raised, the
    upload aborted, the old object kept."""
    store = make_store(client, bucket, keys)
    store.put("doc", b"the old version")

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params["PartNumber"] == 2:
            raise ConnectionResetError("the network went away")

    client.meta.events.register("before-parameter-build.s3.UploadPart", refuse)
    with pytest.raises(ConnectionResetError):
        store.put("doc", RandomReader(4 * PART))
    client.meta.events.unregister("before-parameter-build.s3.UploadPart", refuse)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert store.get("doc") == b"the old version"


def test_a_replacement_mid_download_is_a_change_not_a_mix(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """Every range is conditional on the etag the header came with: an object replaced
    during a download raises ObjectChangedError, and the sink holds only old plaintext."""
    store = make_store(client, bucket, keys, concurrency=1)
    old = os.urandom(4 * PART)
    store.put("doc", old)
    sink = io.BytesIO()
    replaced: list[bool] = []

    def replace(_count: int) -> None:
        if not replaced:
            replaced.append(True)
            store.put("doc", os.urandom(4 * PART))

    with pytest.raises(sealstore.ObjectChangedError):
        store.download("doc", sink, callback=replace)
    assert old.startswith(sink.getvalue())


def test_a_truncated_body_fails_before_its_end_is_reported(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """A body cut by whole chunks: the size no longer adds up, nothing is released as the
    whole object."""
    store = make_store(client, bucket, keys)
    store.put("doc", os.urandom(2 * PART))
    stored = client.get_object(Bucket=bucket, Key="doc")
    body = stored["Body"].read()
    metadata = stored["Metadata"]
    client.put_object(Bucket=bucket, Key="doc", Body=body[:-16], Metadata=metadata)
    with pytest.raises(sealstore.DecryptionError):
        store.get("doc")
    cut = body[: _aead.BODY_PREFIX_SIZE + 500 * _aead.SEALED_CHUNK_SIZE + 100]
    client.put_object(Bucket=bucket, Key="doc", Body=cut, Metadata=metadata)
    sink = io.BytesIO()
    with pytest.raises(sealstore.DecryptionError):
        store.download("doc", sink)
    assert len(sink.getvalue()) <= 500 * _aead.CHUNK_SIZE


class _Digest:
    """A sink that keeps only a SHA-256 of what it is given."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.sha.update(data)
        return len(data)


def _peak(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_within_the_parts_in_flight(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """Put and download of 12 parts with concurrency 2 allocate at most concurrency + 3
    parts (put) and 2 * concurrency parts (download) at a time, and the client's copies,
    never the object."""
    store = make_store(client, bucket, keys, concurrency=2)
    size = 12 * PART
    source = RandomReader(size)
    put_peak = _peak(lambda: store.put("big", source))
    assert put_peak < 6.5 * PART
    sink = _Digest()
    download_peak = _peak(lambda: store.download("big", sink))

    assert sink.sha.hexdigest() == source.digest.hexdigest()
    assert download_peak < 5.5 * PART


def test_open_reads_near_the_start_cost_one_request(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """open() + a read near the start is one GET (header in its metadata, no HEAD); a read
    further on costs one more; each further read on the handle costs one."""
    store = make_store(client, bucket, keys)
    data = os.urandom(3 * MiB)
    store.put("doc", data)
    requests = Requests(client)
    with store.open("doc") as reader:
        assert reader.read(4096) == data[:4096]
        assert requests.taken() == ["GetObject"]
    with store.open("doc") as reader:
        reader.seek(2 * MiB)
        assert reader.read(4096) == data[2 * MiB : 2 * MiB + 4096]
        assert requests.taken() == ["GetObject", "GetObject"]
        reader.seek(MiB)
        assert reader.read(4096) == data[MiB : MiB + 4096]
        assert requests.taken() == ["GetObject"]


def test_an_inline_header_is_read_from_the_first_bytes(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """A header too large for metadata sits in front of the body: open and download still
    cost one request for a small object, and multipart puts start with it."""
    store = make_store(client, bucket, keys)
    context = {"note": "x" * 1500}
    small = os.urandom(100_000)
    big = os.urandom(PART + 5)
    assert store.put("small", small, context=context).placement == "inline"
    assert store.put("big", io.BytesIO(big), context=context).placement == "inline"
    requests = Requests(client)
    assert store.get("small") == small
    with store.open("small") as reader:
        assert reader.read() == small
    assert requests.taken() == ["GetObject", "GetObject"]
    assert store.get("big", context=context) == big
    assert store.head("big").plaintext_size == len(big)


def test_list_costs_the_listing_only(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """list() on S3 sends exactly the bare client's ListObjectsV2 requests, with the
    plaintext size from the stored size; details=True reads each header."""
    store = make_store(client, bucket, keys)
    for number in range(5):
        store.put(f"d/{number}", os.urandom(number * 10_000))
    client.put_object(Bucket=bucket, Key="d/plain", Body=b"not ours")
    requests = Requests(client)
    client.list_objects_v2(Bucket=bucket, Prefix="d/")
    bare = requests.taken()
    heads = list(store.list("d/"))
    assert requests.taken() == bare == ["ListObjectsV2"]
    assert [(h.name, h.plaintext_size, h.detailed) for h in heads] == [
        *[(f"d/{n}", n * 10_000, False) for n in range(5)],
        ("d/plain", None, False),
    ]
    assert not heads[-1].encrypted
    detailed = list(store.list("d/", details=True))
    assert requests.taken() == ["ListObjectsV2", *["HeadObject"] * 6]
    assert [h.mode for h in detailed] == [sealstore.Mode.MANAGED] * 5 + [None]


def test_the_writer_uploads_in_parts(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """open(name, "wb") on S3 goes through the same concurrent parts."""
    store = make_store(client, bucket, keys)
    requests = Requests(client)
    data = os.urandom(2 * PART + 3)
    with store.open("w", "wb") as writer:
        for at in range(0, len(data), MiB):
            writer.write(data[at : at + MiB])
    assert requests.taken().count("UploadPart") == 3
    assert store.get("w") == data


def test_plaintext_reads_go_through_the_first_get(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """An object the store did not write: refused by default; with plaintext reads allowed,
    read from the first GET on, whatever its size."""
    backend = S3Backend(client, bucket, part_size=PART)
    data = os.urandom(PART + 70_000)
    client.put_object(Bucket=bucket, Key="legacy", Body=data)
    client.put_object(Bucket=bucket, Key="empty", Body=b"")
    with pytest.raises(sealstore.NotEncryptedError):
        sealstore.EncryptedStore(backend, keys).get("legacy")
    store = sealstore.EncryptedStore(backend, keys, allow_plaintext_reads=True)
    progress: list[int] = []
    assert store.get("legacy", callback=progress.append) == data
    assert sum(progress) == len(data)
    assert store.get("empty") == b""


def _memory_target() -> tuple[_transfer.PartTarget, dict[str, Any]]:
    """A part target keeping what it is sent, as a storage would."""
    seen: dict[str, Any] = {"parts": {}, "aborted": False}

    class Target:
        def put_whole(self, body: bytearray) -> bytes:
            seen["whole"] = bytes(body)
            return b"put"

        def create(self) -> str:
            return "upload"

        def upload_part(self, upload_id: str, number: int, body: bytearray) -> dict[str, Any]:
            seen["parts"][number] = bytes(body)
            return {"PartNumber": number}

        def complete(self, upload_id: str, parts: Any) -> bytes:
            seen["order"] = [part["PartNumber"] for part in parts]
            return b"".join(seen["parts"][n] for n in seen["order"])

        def abort(self, upload_id: str) -> None:
            seen["aborted"] = True

    return Target(), seen


def test_the_engine_refuses_settings_it_cannot_honour() -> None:
    """Part sizes that are not whole chunks, and concurrency out of range, are refused."""
    sealer = _aead.ChunkSealer.new(os.urandom(32), b"context")
    target, _ = _memory_target()
    with pytest.raises(ValueError, match="multiple of 16384"):
        _transfer.upload_sealed(
            io.BytesIO(), sealer, target, lead=b"", part_size=1000, concurrency=1
        )
    with pytest.raises(ValueError, match="concurrency"):
        _transfer.check_concurrency(0)
    with pytest.raises(ValueError, match="multiple of 16384"):
        _transfer.download_sealed(
            lambda start, end: b"",
            None,  # type: ignore[arg-type]
            io.BytesIO(),
            body_start=0,
            body_size=72,
            part_size=5,
            concurrency=1,
        )
    assert _transfer.plaintext_part_size(PART + 1) == PART
    assert _transfer.plaintext_part_size(PART, size=100_000 * PART) == 10 * PART


class _NonBlocking:
    def read(self, size: int = -1) -> None:
        return None


def test_a_non_blocking_source_is_refused() -> None:
    """A source whose read returns None is refused, not taken as the end of the data."""
    sealer = _aead.ChunkSealer.new(os.urandom(32), b"context")
    target, seen = _memory_target()
    with pytest.raises(sealstore.InvalidDataError):
        _transfer.upload_sealed(
            _NonBlocking(),  # type: ignore[arg-type]
            sealer,
            target,
            lead=sealer.prefix,
            part_size=PART,
            concurrency=1,
        )
    assert "whole" not in seen


def test_the_engine_writes_the_layout_from_any_source() -> None:
    """Sources without readinto, and short reads, give the same body as one-shot
    encryption of the same plaintext under the same sealer."""
    key = os.urandom(32)
    sealer = _aead.ChunkSealer.new(key, b"context")
    data = os.urandom(2 * PART + 16_384)

    def pieces() -> Iterator[bytes]:
        for at in range(0, len(data), 100_000):
            yield data[at : at + 100_000]

    target, seen = _memory_target()
    response, size = _transfer.upload_sealed(
        sealstore._io.as_readable(pieces()),
        sealer,
        target,
        lead=sealer.prefix,
        part_size=PART,
        concurrency=2,
    )
    assert size == len(data)
    assert seen["order"] == [1, 2, 3]
    opener = _aead.ChunkOpener(key, b"context", response[: _aead.BODY_PREFIX_SIZE])
    out = io.BytesIO()
    _transfer.download_sealed(
        lambda start, end: response[start:end],
        opener,
        out,
        body_start=0,
        body_size=len(response),
        part_size=PART,
        concurrency=2,
    )
    assert out.getvalue() == data


def test_an_object_marked_inline_without_a_header_is_damaged(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """Metadata that says the header is in front of the body, over bytes that hold none:
    FormatError from get and open, never plaintext."""
    store = make_store(client, bucket, keys)
    client.put_object(
        Bucket=bucket, Key="odd", Body=b"no header here", Metadata={"sealstore": "inline"}
    )
    with pytest.raises(sealstore.FormatError, match="no header"):
        store.get("odd")
    with pytest.raises(sealstore.FormatError, match="no header"):
        store.open("odd")


def test_a_damaged_first_part_stops_the_parts_after_it(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """A chunk altered in the first part: DecryptionError, nothing of that part written,
    the parts fetched after it dropped."""
    store = make_store(client, bucket, keys, concurrency=2)
    store.put("doc", os.urandom(6 * PART))
    stored = client.get_object(Bucket=bucket, Key="doc")
    body = bytearray(stored["Body"].read())
    body[1000] ^= 1
    client.put_object(Bucket=bucket, Key="doc", Body=bytes(body), Metadata=stored["Metadata"])
    sink = io.BytesIO()
    with pytest.raises(sealstore.DecryptionError):
        store.download("doc", sink)
    assert sink.getvalue() == b""


def test_fetch_of_an_empty_range_brings_the_head_alone(
    client: S3Client, bucket: str, keys: sealstore.ManagedKeys
) -> None:
    """S3Backend.fetch with start == end returns what a head says and no bytes."""
    backend = S3Backend(client, bucket)
    backend.put("x", b"abcdef", metadata={"k": "v"})
    info, data = backend.fetch("x", start=3, end=3)
    assert (info.size, info.metadata, data) == (6, {"k": "v"}, b"")


class _NonBlockingFile:
    def readinto(self, buffer: Any) -> None:
        return None

    def read(self, size: int = -1) -> None:
        return None


def test_a_non_blocking_readinto_is_refused() -> None:
    """A source whose readinto returns None is refused as well."""
    sealer = _aead.ChunkSealer.new(os.urandom(32), b"context")
    target, _ = _memory_target()
    with pytest.raises(sealstore.InvalidDataError, match="readinto"):
        _transfer.upload_sealed(
            _NonBlockingFile(),  # type: ignore[arg-type]
            sealer,
            target,
            lead=b"",
            part_size=PART,
            concurrency=1,
        )


def test_an_upload_past_the_part_limit_is_aborted(monkeypatch: pytest.MonkeyPatch) -> None:
    """More parts than S3 allows: BackendError before the part past the limit is read
    further, and the upload is aborted."""
    monkeypatch.setattr(_transfer.upload, "MAX_PARTS", 2)
    sealer = _aead.ChunkSealer.new(os.urandom(32), b"context")
    target, seen = _memory_target()
    with pytest.raises(sealstore.BackendError, match="larger part size"):
        _transfer.upload_sealed(
            io.BytesIO(bytes(3 * PART)),
            sealer,
            target,
            lead=sealer.prefix,
            part_size=PART,
            concurrency=1,
        )
    assert seen["aborted"]


def test_a_failed_part_cancels_the_parts_queued_after_it() -> None:
    """With one thread, a part that fails leaves the queued parts unsent; the failure of
    that part is the one raised, and the upload is aborted."""
    sealer = _aead.ChunkSealer.new(os.urandom(32), b"context")
    target, seen = _memory_target()
    sent = target.upload_part

    def failing(upload_id: str, number: int, body: bytearray) -> Any:
        if number == 1:
            raise ConnectionResetError("part 1 lost")
        return sent(upload_id, number, body)

    target.upload_part = failing  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError, match="part 1 lost"):
        _transfer.upload_sealed(
            io.BytesIO(bytes(4 * PART)),
            sealer,
            target,
            lead=sealer.prefix,
            part_size=PART,
            concurrency=1,
        )
    assert seen["aborted"]
    assert seen["parts"] == {}
