"""EncryptingS3Client at its edges: the decrypting body on its own, odd arguments, versioned
sources, bounded caches and multipart corner cases."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import sealstore
from sealstore import _aead
from sealstore.s3 import EncryptingS3Client, multipart
from sealstore.s3._body import DecryptingBody, discard
from sealstore.s3._errors import translated
from tests.s3_client_support import SERVERS, Setup, customer, error_of, made_setup

MiB = 1 << 20
PART = 5 * MiB


@pytest.fixture(params=SERVERS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    """The encrypting client over a fresh boto3 client, on each server."""
    with made_setup(request, request.param, tmp_path) as made:
        yield made


def _refused(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as excinfo:
        call(**kwargs)
    return error_of(excinfo)


# -- the body on its own ----------------------------------------------------------------------


def _sealed_body(plaintext: bytes) -> tuple[bytes, _aead.ChunkOpener]:
    key, context = os.urandom(32), b"context"
    sealer = _aead.ChunkSealer.new(key, context)
    out = bytearray(_aead.sealed_run_size(len(plaintext), final=True))
    sealer.seal_run_into(0, plaintext, out, final=True)
    return bytes(out), _aead.ChunkOpener(key, context, sealer.prefix)


def _body(sealed: bytes, opener: _aead.ChunkOpener, size: int) -> DecryptingBody:
    final_index = size // _aead.CHUNK_SIZE
    return DecryptingBody(
        io.BytesIO(sealed),
        opener,
        first=0,
        last=final_index,
        skip=0,
        length=size,
        final_index=final_index,
        final_sealed=len(sealed) - final_index * _aead.SEALED_CHUNK_SIZE,
    )


def test_a_stream_that_ends_early_fails_and_stays_failed() -> None:
    """A stream shorter than its chunks: DecryptionError, then every read refuses."""
    plaintext = b"line one\nline two\nno newline at the end"
    sealed, opener = _sealed_body(plaintext * 1000)
    body = _body(sealed[:-5], opener, len(plaintext) * 1000)
    assert body.readable()
    assert len(body.read(20_000)) == 20_000
    with pytest.raises(sealstore.DecryptionError):
        body.read()
    with pytest.raises(sealstore.DecryptionError):
        body.read(1)
    whole, opener = _sealed_body(plaintext)
    lines = list(_body(whole, opener, len(plaintext)).iter_lines(keepends=True))
    assert lines == [b"line one\n", b"line two\n", b"no newline at the end"]
    with pytest.raises(sealstore.DecryptionError):
        discard(io.BytesIO(b"abc"), 4)


def test_errors_without_an_s3_code_are_internal_errors() -> None:
    """A sealstore error S3 has no code for is a 500 InternalError, its cause kept."""
    error = sealstore.KmsError("the KMS failed")
    made = translated(error, "GetObject")
    assert made.response["Error"]["Code"] == "InternalError"
    assert made.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert made.__cause__ is error


# -- arguments ---------------------------------------------------------------------------------


def test_odd_but_valid_arguments(setup: Setup) -> None:
    """A Range S3 ignores answers the whole object; a 32-character text key is its bytes
    (as boto3 sends it); a text file body is encoded."""
    where: dict[str, Any] = {"Bucket": setup.bucket, "Key": setup.key("o")}
    setup.s3.put_object(**where, Body=io.StringIO("text body"))
    for ignored in ("bytes=abc", "bytes=9-2", "items=0-1"):
        got = setup.s3.get_object(**where, Range=ignored)
        assert got["Body"].read() == b"text body"
        assert "ContentRange" not in got
    text_key = "k" * 32
    setup.s3.put_object(**where, Body=b"v", SSECustomerAlgorithm="AES256", SSECustomerKey=text_key)
    assert setup.s3.get_object(**where, **customer(b"k" * 32))["Body"].read() == b"v"
    code = _refused(
        setup.s3.put_object,
        **where,
        Body=b"v",
        SSECustomerAlgorithm="AES256",
        SSECustomerKey="not base64 and not 32 long",
    )
    assert code == ("InvalidArgument", 400)
    code = _refused(
        setup.s3.put_object, **where, Body=b"v", ServerSideEncryption="aws:kms", SSEKMSKeyId=""
    )
    assert code == ("InvalidArgument", 400)
    context = base64.b64encode(json.dumps({"a": 1}).encode()).decode()
    code = _refused(
        setup.s3.put_object,
        **where,
        Body=b"v",
        ServerSideEncryption="aws:kms",
        SSEKMSEncryptionContext=context,
    )
    assert code == ("InvalidArgument", 400)


def test_the_kms_provider_cache_is_bounded(setup: Setup) -> None:
    """With room for one provider, several key ids still work, one after another."""
    small = setup.other(kms_cache_size=1)
    ids = [setup.kms.create_key(principal="default").key_id for _ in range(3)]
    for number, key_id in enumerate(ids * 2):
        where = {"Bucket": setup.bucket, "Key": setup.key(f"k{number}")}
        small.put_object(**where, Body=b"v", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
        assert small.get_object(**where)["SSEKMSKeyId"] == key_id


def test_a_missing_bucket_is_the_servers_error(setup: Setup) -> None:
    """Writing without SSE arguments to a missing bucket answers S3's NoSuchBucket."""
    code = _refused(setup.s3.put_object, Bucket=f"missing-{os.urandom(4).hex()}", Key="k", Body=b"")
    assert code == ("NoSuchBucket", 404)


def test_listing_sizes_of_objects_the_client_did_not_write(setup: Setup) -> None:
    """A stored size no encrypted object can have is listed unchanged."""
    setup.raw.put_object(Bucket=setup.bucket, Key=setup.key("tiny"), Body=b"0123456789")
    listed = setup.s3.list_objects_v2(Bucket=setup.bucket, Prefix=setup.key("tiny"))
    assert listed["Contents"][0]["Size"] == 10
    lenient = setup.other(allow_plaintext_reads=True)
    with pytest.raises(ClientError):
        setup.s3.get_object_attributes(
            Bucket=setup.bucket, Key=setup.key("tiny"), ObjectAttributes=["ETag"]
        )
    attributes = lenient.get_object_attributes(
        Bucket=setup.bucket, Key=setup.key("tiny"), ObjectAttributes=["ETag"]
    )
    assert "ObjectSize" not in attributes


def test_copies_of_versioned_sources(setup: Setup) -> None:
    """A source version named in CopySource (dict or string) is the one copied."""
    bucket = f"sealstore-{os.urandom(8).hex()}"
    setup.raw.create_bucket(Bucket=bucket)
    setup.raw.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = setup.s3.put_object(Bucket=bucket, Key="s", Body=b"first")["VersionId"]
    setup.s3.put_object(Bucket=bucket, Key="s", Body=b"second")
    copied = setup.s3.copy_object(
        Bucket=bucket, Key="d", CopySource=f"{bucket}/s?versionId={first}"
    )
    assert copied["CopySourceVersionId"] == first
    assert setup.s3.get_object(Bucket=bucket, Key="d")["Body"].read() == b"first"
    upload = setup.s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    part = setup.s3.upload_part_copy(
        Bucket=bucket,
        Key="m",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "s", "VersionId": first},
    )
    assert part["CopySourceVersionId"] == first
    setup.s3.complete_multipart_upload(
        Bucket=bucket,
        Key="m",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
    )
    assert setup.s3.get_object(Bucket=bucket, Key="m")["Body"].read() == b"first"


# -- multipart corners ---------------------------------------------------------------------


def test_head_of_one_part(setup: Setup) -> None:
    """head_object with PartNumber reports that part's plaintext size."""
    where: dict[str, Any] = {"Bucket": setup.bucket, "Key": setup.key("h")}
    upload = setup.s3.create_multipart_upload(**where)["UploadId"]
    etags = [
        setup.s3.upload_part(**where, UploadId=upload, PartNumber=n, Body=bytes(size))["ETag"]
        for n, size in ((1, PART), (2, 1000))
    ]
    setup.s3.complete_multipart_upload(
        **where,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]},
    )
    assert setup.s3.head_object(**where)["ContentLength"] == PART + 1000
    assert setup.s3.head_object(**where, PartNumber=2)["ContentLength"] == 1000
    got = setup.s3.get_object(**where, PartNumber=2)
    assert (got["Body"].read(), got["ContentRange"]) == (
        bytes(1000),
        f"bytes {PART}-{PART + 999}/{PART + 1000}",
    )


def test_multipart_refusals(setup: Setup) -> None:
    """A context too large for metadata, an upload id used for another key, and an SSE-C
    upload completed elsewhere without its key are refused."""
    where: dict[str, Any] = {"Bucket": setup.bucket, "Key": setup.key("m")}
    big = base64.b64encode(json.dumps({"note": "x" * 3000}).encode()).decode()
    code = _refused(
        setup.s3.create_multipart_upload,
        **where,
        ServerSideEncryption="aws:kms",
        SSEKMSEncryptionContext=big,
    )
    assert code == ("InvalidArgument", 400)
    secret = os.urandom(32)
    upload = setup.s3.create_multipart_upload(**where, **customer(secret))["UploadId"]
    other = setup.other()
    code = _refused(
        other.upload_part,
        Bucket=setup.bucket,
        Key=setup.key("elsewhere"),
        UploadId=upload,
        PartNumber=1,
        Body=b"x",
        **customer(secret),
    )
    assert code == ("NoSuchUpload", 404)
    etag = setup.s3.upload_part(
        **where, UploadId=upload, PartNumber=1, Body=b"x", **customer(secret)
    )["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    code = _refused(
        other.complete_multipart_upload, **where, UploadId=upload, MultipartUpload=parts
    )
    assert code == ("InvalidRequest", 400)
    other.complete_multipart_upload(
        **where, UploadId=upload, MultipartUpload=parts, **customer(secret)
    )
    assert setup.s3.get_object(**where, **customer(secret))["Body"].read() == b"x"


def test_checksummed_uploads_get_a_checksummed_final_part(setup: Setup) -> None:
    """With ChecksumAlgorithm, the added final part carries its checksum like the others."""
    where: dict[str, Any] = {"Bucket": setup.bucket, "Key": setup.key("sum")}
    upload = setup.s3.create_multipart_upload(**where, ChecksumAlgorithm="CRC32")["UploadId"]
    parts = []
    for number in (1, 2):
        answer = setup.s3.upload_part(
            **where, UploadId=upload, PartNumber=number, Body=bytes(PART), ChecksumAlgorithm="CRC32"
        )
        parts.append(
            {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]}
        )
    setup.s3.complete_multipart_upload(**where, UploadId=upload, MultipartUpload={"Parts": parts})
    assert setup.s3.get_object(**where, Range="bytes=-3")["Body"].read() == bytes(3)


def test_forgotten_uploads_are_read_again(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that keeps few uploads in memory reads an evicted one's state again."""
    monkeypatch.setattr(multipart, "_KEEP", 1)
    client = EncryptingS3Client(setup.raw, managed=setup.managed)
    first: dict[str, Any] = {"Bucket": setup.bucket, "Key": setup.key("one")}
    second: dict[str, Any] = {"Bucket": setup.bucket, "Key": setup.key("two")}
    one = client.create_multipart_upload(**first)["UploadId"]
    client.create_multipart_upload(**second)
    etag = client.upload_part(**first, UploadId=one, PartNumber=1, Body=b"abc")["ETag"]
    client.complete_multipart_upload(
        **first, UploadId=one, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert client.get_object(**first)["Body"].read() == b"abc"


def test_kms_key_ids_limit_the_keys_used(setup: Setup) -> None:
    """With kms_key_ids, objects under other KMS keys are refused on read and on write
    (a bucket default naming another key included)."""
    trusted = setup.kms.create_key(principal="default").key_id
    other = setup.kms.create_key(principal="default").key_id
    strict = setup.other(kms_key_ids=[trusted])
    where = {"Bucket": setup.bucket, "Key": setup.key("k")}
    setup.s3.put_object(**where, Body=b"v", ServerSideEncryption="aws:kms", SSEKMSKeyId=other)
    assert _refused(strict.get_object, **where) == ("AccessDenied", 403)
    code = _refused(
        strict.put_object, **where, Body=b"w", ServerSideEncryption="aws:kms", SSEKMSKeyId=other
    )
    assert code == ("AccessDenied", 403)
    assert setup.s3.get_object(**where)["Body"].read() == b"v"  # nothing was overwritten
    code = _refused(
        strict.create_multipart_upload, **where, ServerSideEncryption="aws:kms", SSEKMSKeyId=other
    )
    assert code == ("AccessDenied", 403)
    strict.put_object(**where, Body=b"t", ServerSideEncryption="aws:kms", SSEKMSKeyId=trusted)
    assert strict.get_object(**where)["Body"].read() == b"t"
    assert strict.put_object(**where, Body=b"m", ServerSideEncryption="AES256")
    with pytest.raises(TypeError):
        setup.other(kms_key_ids=trusted)
