"""EncryptingS3Client multipart uploads: aligned, unaligned and out-of-order parts, parts from
two clients, the final chunk, SSE-C keys per part, copies of parts, ranged reads across parts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sealstore import _aead
from sealstore.s3 import UPLOADS_PREFIX, EncryptingS3Client
from tests.s3_client_support import SERVERS, Setup, customer, error_of, made_setup

MiB = 1 << 20
PART = 5 * MiB


@pytest.fixture(params=SERVERS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    """The encrypting client over a fresh boto3 client, on each server."""
    with made_setup(request, request.param, tmp_path) as made:
        yield made


@pytest.fixture(scope="module")
def data() -> bytes:
    """Three full parts and a short one."""
    return os.urandom(3 * PART + 100_003)


def _refused(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as excinfo:
        call(**kwargs)
    return error_of(excinfo)


class Upload:
    """One multipart upload of ``key``, driven through any client."""

    def __init__(self, setup: Setup, key: str, client: EncryptingS3Client, **create: Any) -> None:
        self.setup = setup
        self.where: dict[str, Any] = {"Bucket": setup.bucket, "Key": key}
        self.id = client.create_multipart_upload(**self.where, **create)["UploadId"]
        self.etags: dict[int, str] = {}

    def part(
        self, client: EncryptingS3Client, number: int, body: bytes, **extra: Any
    ) -> dict[str, Any]:
        answer = client.upload_part(
            **self.where, UploadId=self.id, PartNumber=number, Body=body, **extra
        )
        self.etags[number] = answer["ETag"]
        return answer

    def complete(self, client: EncryptingS3Client, **extra: Any) -> dict[str, Any]:
        parts = [{"PartNumber": n, "ETag": self.etags[n]} for n in sorted(self.etags)]
        return client.complete_multipart_upload(
            **self.where, UploadId=self.id, MultipartUpload={"Parts": parts}, **extra
        )


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[at : at + size] for at in range(0, len(data), size)]


def _check_reads(setup: Setup, key: str, data: bytes, **extra: Any) -> None:
    """The object reads back whole, across part boundaries, and at its end."""
    where = {"Bucket": setup.bucket, "Key": key, **extra}
    assert setup.s3.get_object(**where)["Body"].read() == data
    for start, end in ((PART - 10, PART + 10), (2 * PART - 20_000, 2 * PART + 40_000)):
        got = setup.s3.get_object(**where, Range=f"bytes={start}-{end - 1}")
        assert got["Body"].read() == data[start:end]
    assert setup.s3.get_object(**where, Range="bytes=-20")["Body"].read() == data[-20:]
    assert setup.s3.head_object(**where)["ContentLength"] == len(data)
    listed = setup.s3.list_objects_v2(Bucket=setup.bucket, Prefix=key)["Contents"]
    assert listed[0]["Size"] == len(data)


def test_aligned_parts_in_order(setup: Setup, data: bytes) -> None:
    """Full parts and a short last one, in order through one client."""
    upload = Upload(setup, setup.key("o"), setup.s3)
    for number, piece in enumerate(_pieces(data, PART), 1):
        upload.part(setup.s3, number, piece)
    setup.requests.clear()
    answer = upload.complete(setup.s3)
    assert answer["ServerSideEncryption"] == "AES256"
    assert "UploadPart" not in setup.requests.names  # the last part ended the body
    _check_reads(setup, setup.key("o"), data)
    state = setup.raw.list_objects_v2(Bucket=setup.bucket, Prefix=UPLOADS_PREFIX + upload.id)
    assert state.get("KeyCount", 0) == 0


def test_full_last_part_gets_the_final_chunk_at_completion(setup: Setup) -> None:
    """When the last part is full-size, completing adds the 16-byte empty final chunk."""
    data = os.urandom(2 * PART)
    upload = Upload(setup, setup.key("f"), setup.s3)
    for number, piece in enumerate(_pieces(data, PART), 1):
        upload.part(setup.s3, number, piece)
    setup.requests.clear()
    upload.complete(setup.s3)
    assert setup.requests.names.count("UploadPart") == 1
    _check_reads(setup, setup.key("f"), data)
    stored = setup.raw.head_object(Bucket=setup.bucket, Key=setup.key("f"))["ContentLength"]
    assert stored == _aead.body_size(len(data))
    part = setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("f"), PartNumber=2)
    assert part["Body"].read() == data[PART:]


def test_parts_out_of_order_from_two_clients(setup: Setup, data: bytes) -> None:
    """With the part size declared, parts go in any order through two clients."""
    second = setup.other()
    secret = os.urandom(32)
    upload = Upload(setup, setup.key("x"), setup.s3, part_size=PART, **customer(secret))
    pieces = _pieces(data, PART)
    upload.part(second, 4, pieces[3], **customer(secret))
    upload.part(setup.s3, 2, pieces[1], **customer(secret))
    upload.part(second, 1, pieces[0], **customer(secret))
    upload.part(second, 3, pieces[2], **customer(secret))
    answer = upload.complete(second, **customer(secret))
    assert answer["SSECustomerAlgorithm"] == "AES256"
    _check_reads(setup, setup.key("x"), data, **customer(secret))


def test_last_part_first_learns_the_part_size(setup: Setup, data: bytes) -> None:
    """Without a declared size, a short part needs a full part uploaded before it, whose
    size a fresh client learns from ListParts."""
    upload = Upload(setup, setup.key("l"), setup.s3)
    pieces = _pieces(data, PART)
    second = setup.other()
    setup.requests.clear()
    code = _refused(
        second.upload_part, **upload.where, UploadId=upload.id, PartNumber=4, Body=pieces[3]
    )
    assert code == ("InvalidArgument", 400)
    assert "UploadPart" not in setup.requests.names
    upload.part(setup.s3, 2, pieces[1])
    upload.part(second, 4, pieces[3])
    upload.part(setup.s3, 3, pieces[2])
    upload.part(second, 1, pieces[0])
    upload.complete(setup.s3)
    _check_reads(setup, setup.key("l"), data)


def test_unaligned_parts_in_order_through_one_client(setup: Setup) -> None:
    """Parts of 5 MiB + 1 (S3 allows them) work in order through one client."""
    data = os.urandom(3 * (PART + 1))
    upload = Upload(setup, setup.key("u"), setup.s3, ServerSideEncryption="aws:kms")
    for number, piece in enumerate(_pieces(data, PART + 1), 1):
        upload.part(setup.s3, number, piece)
    upload.complete(setup.s3)
    _check_reads(setup, setup.key("u"), data)


def test_unaligned_parts_elsewhere_are_refused_before_sending(setup: Setup) -> None:
    """An unaligned part that cannot be placed, or a second client joining an unaligned
    upload, is refused with a clear error and nothing sent."""
    data = os.urandom(2 * (PART + 1))
    upload = Upload(setup, setup.key("r"), setup.s3)
    upload.part(setup.s3, 1, data[: PART + 1])
    second = setup.other()
    setup.requests.clear()
    for client in (second, setup.s3):
        code = _refused(
            client.upload_part,
            **upload.where,
            UploadId=upload.id,
            PartNumber=3,
            Body=data[PART + 1 :],
        )
        assert code == ("InvalidArgument", 400)
    assert "UploadPart" not in setup.requests.names
    upload.part(setup.s3, 2, data[PART + 1 :])
    code = _refused(upload.complete, client=second)
    assert code == ("InvalidPart", 400)
    upload.complete(setup.s3)
    assert setup.s3.get_object(**upload.where)["Body"].read() == data


def test_a_part_larger_than_the_part_size_is_refused(setup: Setup) -> None:
    """Parts of differing sizes out of order would leave holes: refused before sending."""
    upload = Upload(setup, setup.key("b"), setup.s3, part_size=PART)
    setup.requests.clear()
    code = _refused(
        setup.s3.upload_part,
        **upload.where,
        UploadId=upload.id,
        PartNumber=2,
        Body=bytes(PART + 16384),
    )
    assert code == ("InvalidArgument", 400)
    assert "UploadPart" not in setup.requests.names
    setup.s3.abort_multipart_upload(**upload.where, UploadId=upload.id)


def test_sse_c_parts_need_the_uploads_key(setup: Setup) -> None:
    """An upload part with another SSE-C key than the upload's, or none, is a 400."""
    secret = os.urandom(32)
    upload = Upload(setup, setup.key("c"), setup.s3, **customer(secret))
    where = {**upload.where, "UploadId": upload.id, "PartNumber": 1, "Body": bytes(100)}
    second = setup.other()
    for client in (setup.s3, second):
        assert _refused(client.upload_part, **where, **customer())[1] == 400
        assert _refused(client.upload_part, **where)[1] == 400
    managed = Upload(setup, setup.key("m"), setup.s3)
    code = _refused(
        setup.s3.upload_part,
        **managed.where,
        UploadId=managed.id,
        PartNumber=1,
        Body=b"x",
        **customer(secret),
    )
    assert code == ("InvalidArgument", 400)


def test_list_parts_abort_and_gaps(setup: Setup) -> None:
    """list_parts reports plaintext sizes; a gap in part numbers is refused at completion;
    abort removes the upload and its state."""
    upload = Upload(setup, setup.key("g"), setup.s3, Metadata={"a": "1"})
    upload.part(setup.s3, 1, bytes(PART))
    upload.part(setup.s3, 3, bytes(1000))
    parts = setup.s3.list_parts(**upload.where, UploadId=upload.id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, PART), (3, 1000)]
    pages = setup.s3.get_paginator("list_parts").paginate(**upload.where, UploadId=upload.id)
    assert [p["Size"] for page in pages for p in page["Parts"]] == [PART, 1000]
    assert _refused(upload.complete, client=setup.s3) == ("InvalidPart", 400)
    setup.s3.abort_multipart_upload(**upload.where, UploadId=upload.id)
    state = setup.raw.list_objects_v2(Bucket=setup.bucket, Prefix=UPLOADS_PREFIX + upload.id)
    assert state.get("KeyCount", 0) == 0
    code = _refused(
        setup.other().upload_part, **upload.where, UploadId=upload.id, PartNumber=2, Body=b"x"
    )
    assert code == ("NoSuchUpload", 404)


def test_upload_part_copy(setup: Setup) -> None:
    """upload_part_copy uploads the plaintext of a source range as a part."""
    source = os.urandom(PART + 50_000)
    setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("src"), Body=source)
    upload = Upload(setup, setup.key("dst"), setup.s3)
    copied = setup.s3.upload_part_copy(
        **upload.where,
        UploadId=upload.id,
        PartNumber=1,
        CopySource={"Bucket": setup.bucket, "Key": setup.key("src")},
        CopySourceRange=f"bytes=0-{PART - 1}",
    )
    upload.etags[1] = copied["CopyPartResult"]["ETag"]
    upload.part(setup.s3, 2, b"tail")
    upload.complete(setup.s3)
    got = setup.s3.get_object(**upload.where)["Body"].read()
    assert got == source[:PART] + b"tail"


def test_small_single_part_upload(setup: Setup) -> None:
    """An upload of one short part is one ordinary object."""
    upload = Upload(setup, setup.key("s"), setup.s3)
    upload.part(setup.s3, 1, b"small")
    upload.complete(setup.s3)
    assert setup.s3.get_object(**upload.where)["Body"].read() == b"small"
    code = _refused(setup.s3.create_multipart_upload, **upload.where, part_size=1000)
    assert code == ("InvalidArgument", 400)


def test_concurrent_parts_through_one_client(setup: Setup, data: bytes) -> None:
    """Parts uploaded by a thread pool through one client (as a transfer manager does)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    secret = os.urandom(32)
    upload = Upload(setup, setup.key("pool"), setup.s3, part_size=PART, **customer(secret))
    pieces = list(enumerate(_pieces(data, PART), 1))
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda item: upload.part(setup.s3, *item, **customer(secret)), pieces)
        )
    assert len(answers) == len(pieces)
    listed = setup.s3.list_parts(**upload.where, UploadId=upload.id, **customer(secret))
    assert sum(part["Size"] for part in listed["Parts"]) == len(data)
    upload.complete(setup.s3)
    _check_reads(setup, setup.key("pool"), data, **customer(secret))


def test_parts_of_different_sizes_from_different_clients_are_refused(setup: Setup) -> None:
    """Full parts of two sizes, from clients that cannot see each other's: completing the
    upload is refused (the body would have a hole), never stored."""
    upload = Upload(setup, setup.key("holes"), setup.s3)
    upload.part(setup.other(), 1, bytes(PART))
    upload.part(setup.other(), 2, bytes(PART + 64 * 1024))
    upload.part(setup.other(), 3, b"end")
    assert _refused(upload.complete, client=setup.other()) == ("InvalidPart", 400)
    assert _refused(upload.complete, client=setup.s3) == ("InvalidPart", 400)
    missing = _refused(setup.s3.head_object, **upload.where)
    assert missing[1] == 404
    setup.s3.abort_multipart_upload(**upload.where, UploadId=upload.id)
