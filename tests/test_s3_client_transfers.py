"""EncryptingS3Client's managed transfers (upload_file, upload_fileobj, download_file,
download_fileobj) over the concurrent transfer engine, on moto_server and SeaweedFS."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

import sealstore
from sealstore.backends.s3 import S3Backend
from tests.s3_client_support import SERVERS, Setup, customer, error_of, made_setup
from tests.test_s3_backend import RandomReader

MiB = 1 << 20
PART = 5 * MiB
CONFIG = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=3)


@pytest.fixture(params=SERVERS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    """The encrypting client over a fresh boto3 client, on each server."""
    with made_setup(request, request.param, tmp_path) as made:
        yield made


def test_fileobj_transfers_in_concurrent_parts(setup: Setup) -> None:
    """upload_fileobj sends TransferConfig-sized parts, download_fileobj reads them back in
    as many ranged GETs; both report every plaintext byte to Callback."""
    key = setup.key("big")
    data = os.urandom(2 * PART + 1000)
    sent: list[int] = []
    setup.s3.put_object(Bucket=setup.bucket, Key=key, Body=b"")  # reads the bucket's default
    setup.requests.clear()
    setup.s3.upload_fileobj(
        io.BytesIO(data), setup.bucket, key, Callback=sent.append, Config=CONFIG
    )
    assert setup.requests.names == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
    ]
    assert sum(sent) == len(data)
    assert setup.s3.get_object(Bucket=setup.bucket, Key=key)["Body"].read() == data
    received: list[int] = []
    sink = io.BytesIO()
    setup.requests.clear()
    setup.s3.download_fileobj(setup.bucket, key, sink, Callback=received.append, Config=CONFIG)
    assert sink.getvalue() == data
    assert sum(received) == len(data)
    assert setup.requests.names == ["GetObject"] * 2  # the short final chunk rides along


def test_customer_keys_through_extra_args(setup: Setup) -> None:
    """SSE-C arguments in ExtraArgs encrypt and decrypt; a download without them is S3's
    400, and no argument of theirs reaches the server."""
    key = setup.key("sse-c")
    arguments = customer()
    data = os.urandom(PART + 7)
    setup.s3.upload_fileobj(io.BytesIO(data), setup.bucket, key, ExtraArgs=arguments, Config=CONFIG)
    sink = io.BytesIO()
    setup.s3.download_fileobj(setup.bucket, key, sink, ExtraArgs=arguments, Config=CONFIG)
    assert sink.getvalue() == data
    with pytest.raises(ClientError) as refused:
        setup.s3.download_fileobj(setup.bucket, key, io.BytesIO(), Config=CONFIG)
    assert error_of(refused)[1] == 400
    with pytest.raises(ClientError) as wrong:
        setup.s3.download_fileobj(setup.bucket, key, io.BytesIO(), ExtraArgs=customer())
    assert error_of(wrong)[1] == 400


def test_files_and_the_store_read_each_other(setup: Setup, tmp_path: Path) -> None:
    """upload_file writes what EncryptedStore over S3Backend reads, and download_file reads
    what the store writes, small and multipart, with content type kept."""
    source = tmp_path / "in.bin"
    data = os.urandom(PART + 70_000)
    source.write_bytes(data)
    key = setup.key("file")
    setup.s3.upload_file(
        str(source), setup.bucket, key, ExtraArgs={"ContentType": "text/csv"}, Config=CONFIG
    )
    assert setup.raw.head_object(Bucket=setup.bucket, Key=key)["ContentType"] == "text/csv"
    store = sealstore.EncryptedStore(S3Backend(setup.raw, setup.bucket), setup.managed)
    assert store.get(key) == data
    store.put(setup.key("from-store"), b"small one")
    target = tmp_path / "out.bin"
    setup.s3.download_file(setup.bucket, setup.key("from-store"), str(target))
    assert target.read_bytes() == b"small one"
    setup.s3.download_file(setup.bucket, key, str(target), Config=CONFIG)
    assert target.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out.bin"]


def test_one_thread_and_empty_objects(setup: Setup) -> None:
    """use_threads=False sends the parts one at a time; an empty object is one PutObject and
    reads back empty."""
    single = TransferConfig(multipart_chunksize=PART, use_threads=False)
    data = os.urandom(2 * PART)
    key = setup.key("single")
    setup.s3.upload_fileobj(io.BytesIO(data), setup.bucket, key, Config=single)
    sink = io.BytesIO()
    setup.s3.download_fileobj(setup.bucket, key, sink, Config=single)
    assert sink.getvalue() == data
    setup.requests.clear()  # the bucket's default was read by the first upload
    setup.s3.upload_fileobj(io.BytesIO(), setup.bucket, setup.key("empty"))
    assert setup.requests.names == ["PutObject"]
    sink = io.BytesIO()
    setup.s3.download_fileobj(setup.bucket, setup.key("empty"), sink)
    assert sink.getvalue() == b""


def test_a_failed_upload_is_aborted_and_a_failed_download_leaves_no_file(
    setup: Setup, tmp_path: Path
) -> None:
    """A source failing mid-upload aborts it, the old object stays; a download of a tampered
    object raises and leaves no file behind."""
    key = setup.key("doc")
    setup.s3.put_object(Bucket=setup.bucket, Key=key, Body=b"old")
    with pytest.raises(RuntimeError, match="went away"):
        setup.s3.upload_fileobj(
            RandomReader(4 * PART, fail_after=2 * PART), setup.bucket, key, Config=CONFIG
        )
    uploads = setup.raw.list_multipart_uploads(Bucket=setup.bucket, Prefix=key)
    assert uploads.get("Uploads", []) == []
    assert setup.s3.get_object(Bucket=setup.bucket, Key=key)["Body"].read() == b"old"
    setup.s3.upload_fileobj(io.BytesIO(os.urandom(PART + 1)), setup.bucket, key, Config=CONFIG)
    stored = setup.raw.get_object(Bucket=setup.bucket, Key=key)
    body = bytearray(stored["Body"].read())
    body[PART] ^= 1
    setup.raw.put_object(
        Bucket=setup.bucket, Key=key, Body=bytes(body), Metadata=stored["Metadata"]
    )
    folder = tmp_path / "downloads"
    folder.mkdir()
    with pytest.raises(ClientError) as failed:
        setup.s3.download_file(setup.bucket, key, str(folder / "out.bin"), Config=CONFIG)
    assert error_of(failed) == ("DecryptionFailed", 400)
    assert list(folder.iterdir()) == []


def test_plaintext_objects_are_refused_unless_allowed(setup: Setup) -> None:
    """An object the client did not write is refused, or copied as it is when allowed."""
    key = setup.key("plain")
    data = os.urandom(PART + 3)
    setup.raw.put_object(Bucket=setup.bucket, Key=key, Body=data)
    with pytest.raises(ClientError) as refused:
        setup.s3.download_fileobj(setup.bucket, key, io.BytesIO(), Config=CONFIG)
    assert error_of(refused)[1] == 400
    sink = io.BytesIO()
    setup.other(allow_plaintext_reads=True).download_fileobj(setup.bucket, key, sink, Config=CONFIG)
    assert sink.getvalue() == data


_CHILD = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path
    import boto3
    from boto3.s3.transfer import TransferConfig
    import sealstore
    from sealstore.s3 import EncryptingS3Client

    def rss():
        status = Path("/proc/self/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    endpoint, bucket, source, target, part = sys.argv[1:6]
    raw = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    s3 = EncryptingS3Client(raw, managed=sealstore.ManagedKeys(sealstore.MemoryKeyringStore()))
    config = TransferConfig(multipart_chunksize=int(part), max_concurrency=4)
    s3.put_object(Bucket=bucket, Key="warm-up", Body=b"x")
    Path("/proc/self/clear_refs").write_text("5")
    start = rss()[0]
    s3.upload_file(source, bucket, "big", Config=config)
    upload = rss()[1] - start
    Path("/proc/self/clear_refs").write_text("5")
    start = rss()[0]
    s3.download_file(bucket, "big", target, Config=config)
    download = rss()[1] - start
    print(json.dumps({"upload_kib": upload, "download_kib": download}))
    """
)


@pytest.mark.parametrize(
    "size", [96 * MiB, pytest.param(1 << 30, marks=pytest.mark.slow)], ids=["96MiB", "1GiB"]
)
def test_file_transfers_keep_memory_bounded(
    seaweedfs_bucket: tuple[Any, str], seaweedfs_server: str, tmp_path: Path, size: int
) -> None:
    """upload_file and download_file of a large file, in a fresh process: its resident
    memory grows by a few parts (concurrency 4 of 5 MiB), never by the file's size."""
    _, bucket = seaweedfs_bucket
    source = tmp_path / "source"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(size // MiB):
            piece = os.urandom(MiB)
            digest.update(piece)
            out.write(piece)
    target = tmp_path / "target"
    arguments = [seaweedfs_server, bucket, str(source), str(target), str(PART)]
    run = subprocess.run(  # noqa: S603 - this module's own child script
        [sys.executable, "-c", _CHILD, *arguments], capture_output=True, text=True, check=True
    )
    grown = json.loads(run.stdout)
    copied = hashlib.sha256()
    with target.open("rb") as copy:
        while piece := copy.read(MiB):
            copied.update(piece)
    assert copied.hexdigest() == digest.hexdigest()
    assert grown["upload_kib"] < 64 * 1024
    assert grown["download_kib"] < 64 * 1024


def test_kms_objects_with_a_header_too_large_for_metadata(setup: Setup) -> None:
    """aws:kms with a context too large for metadata: the header goes in front of the body,
    at the start of part 1, and downloads read it from the first answer; a key the KMS does
    not know is S3's KMS error, before any part is sent."""
    key_id = setup.kms.create_key(principal="default").key_id
    note = base64.b64encode(json.dumps({"note": "x" * 1500}).encode()).decode()
    arguments = {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": key_id,
        "SSEKMSEncryptionContext": note,
    }
    key = setup.key("inline")
    data = os.urandom(PART + 123)
    setup.s3.upload_fileobj(io.BytesIO(data), setup.bucket, key, ExtraArgs=arguments, Config=CONFIG)
    assert setup.raw.head_object(Bucket=setup.bucket, Key=key)["Metadata"]["sealstore"] == "inline"
    sink = io.BytesIO()
    setup.s3.download_fileobj(setup.bucket, key, sink, Config=CONFIG)
    assert sink.getvalue() == data
    assert setup.s3.get_object(Bucket=setup.bucket, Key=key)["Body"].read() == data
    setup.requests.clear()
    with pytest.raises(ClientError) as refused:
        setup.s3.upload_fileobj(
            io.BytesIO(data),
            setup.bucket,
            setup.key("unknown-key"),
            ExtraArgs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "no-such-key"},
        )
    assert error_of(refused)[1] == 400
    assert "UploadPart" not in setup.requests.names
