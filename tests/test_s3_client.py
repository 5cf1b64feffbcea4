"""EncryptingS3Client: put, get, head and delete in every mode, on moto_server and SeaweedFS.

Every test drives a real boto3 client against a real server; request counts come from
botocore's own event hooks.
"""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import sealstore
from sealstore import _aead
from sealstore.s3 import EncryptingS3Client
from tests.leaks import SecretRegistry
from tests.s3_client_support import SERVERS, Setup, customer, error_of, made_setup

MODES = ("AES256", "aws:kms", "SSE-C")
DATA = os.urandom(100_000)  # six chunks, the last short


@pytest.fixture(params=SERVERS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    """The encrypting client over a fresh boto3 client, on each server."""
    with made_setup(request, request.param, tmp_path) as made:
        yield made


def write_args(mode: str, key: bytes) -> dict[str, Any]:
    """The SSE arguments of a write in ``mode`` (``key`` for SSE-C)."""
    if mode == "SSE-C":
        return customer(key)
    return {"ServerSideEncryption": mode}


def read_args(mode: str, key: bytes) -> dict[str, Any]:
    """The SSE arguments of a read in ``mode``: only SSE-C has any."""
    return customer(key) if mode == "SSE-C" else {}


def sent_parameters(setup: Setup) -> list[dict[str, Any]]:
    """Record the parameters of every request the raw client builds."""
    seen: list[dict[str, Any]] = []
    setup.raw.meta.events.register(
        "before-parameter-build.s3", lambda params, **_: seen.append(dict(params))
    )
    return seen


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_in_every_mode(setup: Setup, mode: str) -> None:
    """put/get/head in each mode: plaintext back, SSE fields echoed, plaintext sizes."""
    key = os.urandom(32)
    seen = sent_parameters(setup)
    put = setup.s3.put_object(
        Bucket=setup.bucket,
        Key=setup.key("a"),
        Body=DATA,
        Metadata={"kind": "x"},
        **write_args(mode, key),
    )
    got = setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("a"), **read_args(mode, key))
    head = setup.s3.head_object(Bucket=setup.bucket, Key=setup.key("a"), **read_args(mode, key))
    assert got["Body"].read() == DATA
    assert got["ContentLength"] == head["ContentLength"] == len(DATA)
    assert got["Metadata"] == head["Metadata"] == {"kind": "x"}
    assert got["ETag"] == put["ETag"] == head["ETag"]
    for answer in (put, got, head):
        if mode == "SSE-C":
            assert answer["SSECustomerAlgorithm"] == "AES256"
            assert answer["SSECustomerKeyMD5"] == customer(key)["SSECustomerKeyMD5"]
            assert "ServerSideEncryption" not in answer
        else:
            assert answer["ServerSideEncryption"] == mode
    sse = {"ServerSideEncryption", "SSEKMSKeyId", "SSECustomerKey", "SSECustomerAlgorithm"}
    assert not any(sse & params.keys() for params in seen)  # none reached the server
    stored = setup.raw.get_object(Bucket=setup.bucket, Key=setup.key("a"))
    assert stored["Body"].read() != DATA
    assert stored["ContentLength"] == _aead.body_size(len(DATA))


def test_kms_arguments_are_honoured(setup: Setup) -> None:
    """aws:kms with a key id, a context and bucket keys: echoed, bound, and cached."""
    key_id = setup.kms.create_key(principal="default").key_id
    context = base64.b64encode(json.dumps({"tenant": "7"}).encode()).decode()
    put = setup.s3.put_object(
        Bucket=setup.bucket,
        Key=setup.key("k"),
        Body=b"x",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key_id,
        SSEKMSEncryptionContext=context,
        BucketKeyEnabled=True,
    )
    assert (put["SSEKMSKeyId"], put["BucketKeyEnabled"]) == (key_id, True)
    got = setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("k"))
    assert got["Body"].read() == b"x"
    assert (got["SSEKMSKeyId"], got["BucketKeyEnabled"]) == (key_id, True)
    info = setup.raw.head_object(Bucket=setup.bucket, Key=setup.key("k"))
    parsed = sealstore.placement.parse_detached_header(
        sealstore.placement.read_marker(info["Metadata"], "k")[1] or b""
    )
    assert parsed.context == {"tenant": "7", "sealstore:object": setup.key("k")}
    plain = setup.s3.put_object(
        Bucket=setup.bucket,
        Key=setup.key("p"),
        Body=b"y",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key_id,
    )
    assert plain["BucketKeyEnabled"] is False


def test_default_encryption_is_managed(setup: Setup) -> None:
    """No SSE argument and no bucket default: the client's managed keys."""
    put = setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("d"), Body=b"z")
    assert put["ServerSideEncryption"] == "AES256"


RANGES = [
    ("bytes=0-9", slice(0, 10)),
    ("bytes=16380-16390", slice(16380, 16391)),
    ("bytes=50000-", slice(50000, None)),
    ("bytes=-5", slice(-5, None)),
    ("bytes=-200000", slice(0, None)),
    ("bytes=99999-500000", slice(99999, None)),
    ("bytes=0-", slice(0, None)),
]


@pytest.mark.parametrize(("given", "expected"), RANGES, ids=[r for r, _ in RANGES])
def test_ranges(setup: Setup, given: str, expected: slice) -> None:
    """Ranges (closed, open, suffix, past the end) answer the plaintext bytes and figures."""
    setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("r"), Body=DATA)
    got = setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("r"), Range=given)
    want = DATA[expected]
    assert got["Body"].read() == want
    assert got["ContentLength"] == len(want)
    start = expected.indices(len(DATA))[0]
    assert got["ContentRange"] == f"bytes {start}-{start + len(want) - 1}/{len(DATA)}"


@pytest.mark.parametrize("size", [0, 1, 16384, 32768, 50_000])
def test_sizes_at_chunk_boundaries(setup: Setup, size: int) -> None:
    """Empty objects and objects that end on a chunk boundary read back whole and by range."""
    data = os.urandom(size)
    setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("s"), Body=data)
    got = setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("s"))
    assert got["Body"].read() == data
    if size:
        tail = setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("s"), Range="bytes=-3")
        assert tail["Body"].read() == data[-3:]
    else:
        with pytest.raises(ClientError) as excinfo:
            setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("s"), Range="bytes=0-")
        assert error_of(excinfo) == ("InvalidRange", 416)


def test_part_number_of_a_single_part_object(setup: Setup) -> None:
    """PartNumber=1 of an object written in one request is the whole object."""
    setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("p"), Body=DATA)
    got = setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("p"), PartNumber=1)
    assert got["Body"].read() == DATA
    assert got["ContentLength"] == len(DATA)


def test_conditions_reach_the_server(setup: Setup) -> None:
    """IfMatch, IfNoneMatch, IfModifiedSince and IfUnmodifiedSince answer as S3 does."""
    put = setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("c"), Body=DATA)
    where = {"Bucket": setup.bucket, "Key": setup.key("c")}
    assert setup.s3.get_object(**where, IfMatch=put["ETag"])["Body"].read() == DATA
    past = datetime.now(timezone.utc) - timedelta(days=1)
    future = datetime.now(timezone.utc) + timedelta(days=1)
    for condition, code in (
        ({"IfMatch": '"0123"'}, "PreconditionFailed"),
        ({"IfNoneMatch": put["ETag"]}, "304"),
        ({"IfModifiedSince": future}, "304"),
        ({"IfUnmodifiedSince": past}, "PreconditionFailed"),
    ):
        with pytest.raises(ClientError) as excinfo:
            setup.s3.get_object(**where, Range="bytes=5-9", **condition)
        assert error_of(excinfo)[0] == code, condition
    ranged = setup.s3.get_object(**where, Range="bytes=5-9", IfModifiedSince=past)
    assert ranged["Body"].read() == DATA[5:10]


# -- the error table --------------------------------------------------------------------------


def _refused(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as excinfo:
        call(**kwargs)
    return error_of(excinfo)


def test_sse_c_reads_need_the_right_key(setup: Setup) -> None:
    """GET/HEAD of an SSE-C object without its key, or with another, is a 400."""
    key = os.urandom(32)
    where = {"Bucket": setup.bucket, "Key": setup.key("c")}
    setup.s3.put_object(**where, Body=DATA, **customer(key))
    for call in (setup.s3.get_object, setup.s3.head_object):
        assert _refused(call, **where)[1] == 400
        assert _refused(call, **where, **customer())[1] == 400
        assert _refused(call, **where, Range="bytes=-1", **customer())[1] == 400


@pytest.mark.parametrize(
    "arguments",
    [
        {"SSECustomerKey": b"k" * 32},  # a key without its algorithm
        {"SSECustomerAlgorithm": "AES256"},  # an algorithm without a key
        {"SSECustomerAlgorithm": "AES128", "SSECustomerKey": b"k" * 32},
        {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": b"short"},
        {**customer(b"k" * 32), "SSECustomerKeyMD5": "AAAAAAAAAAAAAAAAAAAAAA=="},
        {**customer(b"k" * 32), "ServerSideEncryption": "AES256"},
        {**customer(b"k" * 32), "ServerSideEncryption": "aws:kms"},
        {"ServerSideEncryption": "AES256", "SSEKMSKeyId": "some-key"},
        {"ServerSideEncryption": "aws:kms:dsse"},
        {"ServerSideEncryption": "rot13"},
        {"SSEKMSKeyId": "some-key"},
        {"ServerSideEncryption": "aws:kms", "SSEKMSEncryptionContext": "not base64!"},
        {
            "ServerSideEncryption": "aws:kms",
            "SSEKMSEncryptionContext": base64.b64encode(b'{"sealstore:x": "1"}').decode(),
        },
        {"Metadata": {"sealstore": "detached:AAAA"}},
    ],
)
def test_bad_write_arguments_are_refused_before_any_request(
    setup: Setup, arguments: dict[str, Any]
) -> None:
    """Conflicting, incomplete or unknown SSE arguments: 400 InvalidArgument, nothing sent."""
    setup.requests.clear()
    code = _refused(
        setup.s3.put_object, Bucket=setup.bucket, Key=setup.key("x"), Body=b"d", **arguments
    )
    assert code == ("InvalidArgument", 400)
    assert len(setup.requests) == 0


def test_customer_key_as_base64_text(setup: Setup) -> None:
    """A base64 SSECustomerKey (as S3's HTTP API takes it) is the same key as its bytes."""
    key = os.urandom(32)
    text = base64.b64encode(key).decode()
    where = {"Bucket": setup.bucket, "Key": setup.key("b64")}
    setup.s3.put_object(**where, Body=b"v", SSECustomerAlgorithm="AES256", SSECustomerKey=text)
    assert setup.s3.get_object(**where, **customer(key))["Body"].read() == b"v"


@pytest.mark.parametrize("mode", ["AES256", "aws:kms"])
def test_sse_c_arguments_on_other_objects_are_refused(setup: Setup, mode: str) -> None:
    """SSE-C arguments on GET/HEAD of a managed or KMS object: 400."""
    where = {"Bucket": setup.bucket, "Key": setup.key("m")}
    setup.s3.put_object(**where, Body=b"v", ServerSideEncryption=mode)
    assert _refused(setup.s3.get_object, **where, **customer()) == ("InvalidArgument", 400)
    assert _refused(setup.s3.head_object, **where, **customer()) == ("InvalidArgument", 400)


def test_range_past_the_end_and_missing_objects(setup: Setup) -> None:
    """A range past the end is 416 InvalidRange; a missing object 404 NoSuchKey."""
    where = {"Bucket": setup.bucket, "Key": setup.key("e")}
    setup.s3.put_object(**where, Body=DATA)
    for given in ("bytes=100000-", "bytes=100000-100005", "bytes=5000000-", "bytes=-0"):
        assert _refused(setup.s3.get_object, **where, Range=given) == ("InvalidRange", 416)
    missing = {"Bucket": setup.bucket, "Key": setup.key("missing")}
    assert _refused(setup.s3.get_object, **missing) == ("NoSuchKey", 404)
    assert _refused(setup.s3.get_object, **missing, Range="bytes=-4") == ("NoSuchKey", 404)
    assert _refused(setup.s3.head_object, **missing)[1] == 404


def test_kms_denial_is_access_denied(setup: Setup) -> None:
    """A KMS that refuses the principal: 403 AccessDenied, on write and on read."""
    owned = setup.kms.create_key(principal="owner").key_id
    where = {"Bucket": setup.bucket, "Key": setup.key("k")}
    denied = _refused(
        setup.s3.put_object, **where, Body=b"v", ServerSideEncryption="aws:kms", SSEKMSKeyId=owned
    )
    assert denied == ("AccessDenied", 403)
    owner = EncryptingS3Client(setup.raw, kms=setup.kms, principal="owner")
    owner.put_object(**where, Body=b"v", ServerSideEncryption="aws:kms", SSEKMSKeyId=owned)
    assert _refused(setup.s3.get_object, **where) == ("AccessDenied", 403)
    setup.kms.disable_key(owned, principal="owner")
    assert _refused(owner.get_object, **where)[1] == 400


def test_tampered_ciphertext_never_answers_data(setup: Setup) -> None:
    """An altered body: a ClientError at once (prefix) or a DecryptionError from read (chunk),
    never plaintext of the altered chunk."""
    where = {"Bucket": setup.bucket, "Key": setup.key("t")}
    setup.s3.put_object(**where, Body=DATA)
    stored = setup.raw.get_object(**where)
    body = bytearray(stored["Body"].read())
    metadata = stored["Metadata"]
    body[10] ^= 1  # the prefix: the commitment fails
    setup.raw.put_object(**where, Body=bytes(body), Metadata=metadata)
    assert _refused(setup.s3.get_object, **where) == ("DecryptionFailed", 400)
    body[10] ^= 1
    body[56 + 16400 + 5] ^= 1  # chunk 1
    setup.raw.put_object(**where, Body=bytes(body), Metadata=metadata)
    got = setup.s3.get_object(**where)
    assert got["Body"].read(16384) == DATA[:16384]
    with pytest.raises(sealstore.DecryptionError):
        got["Body"].read(10)
    assert (
        setup.s3.get_object(**where, Range="bytes=40000-40009")["Body"].read() == DATA[40000:40010]
    )
    body[56 + 16400 + 5] ^= 1
    del body[-1]  # truncated inside the final chunk: it fails when reached
    setup.raw.put_object(**where, Body=bytes(body), Metadata=metadata)
    with pytest.raises(sealstore.DecryptionError):
        setup.s3.get_object(**where)["Body"].read()
    with pytest.raises(sealstore.DecryptionError):
        setup.s3.get_object(**where, Range="bytes=-3")["Body"].read()
    del body[-1710:]  # truncated at a chunk boundary: the size alone is impossible
    setup.raw.put_object(**where, Body=bytes(body), Metadata=metadata)
    assert _refused(setup.s3.get_object, **where, Range="bytes=0-3") == ("DecryptionFailed", 400)


def test_moved_ciphertext_does_not_decrypt(setup: Setup) -> None:
    """An object copied by another tool to another key is refused there."""
    setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("from"), Body=b"v")
    setup.raw.copy_object(
        Bucket=setup.bucket,
        Key=setup.key("to"),
        CopySource={"Bucket": setup.bucket, "Key": setup.key("from")},
    )
    code = _refused(setup.s3.get_object, Bucket=setup.bucket, Key=setup.key("to"))
    assert code == ("InvalidRequest", 400)


def test_plaintext_objects(setup: Setup) -> None:
    """Objects written without the client: refused, unless plaintext reads are allowed."""
    where = {"Bucket": setup.bucket, "Key": setup.key("plain")}
    setup.raw.put_object(**where, Body=b"hello plaintext")
    assert _refused(setup.s3.get_object, **where) == ("InvalidRequest", 400)
    assert _refused(setup.s3.head_object, **where) == ("InvalidRequest", 400)
    lenient = setup.other(allow_plaintext_reads=True)
    assert lenient.get_object(**where)["Body"].read() == b"hello plaintext"
    assert lenient.get_object(**where, Range="bytes=6-10")["Body"].read() == b"plain"
    assert lenient.head_object(**where)["ContentLength"] == 15
    assert _refused(lenient.get_object, **where, **customer()) == ("InvalidArgument", 400)


def test_bodies_of_every_kind_and_checksums(setup: Setup) -> None:
    """Body as bytes, text or a file; a wrong ContentMD5 is BadDigest, a right one passes."""
    where = {"Bucket": setup.bucket, "Key": setup.key("b")}
    setup.s3.put_object(**where, Body="héllo")
    assert setup.s3.get_object(**where)["Body"].read() == "héllo".encode()
    setup.s3.put_object(**where, Body=io.BytesIO(DATA))
    assert setup.s3.get_object(**where)["Body"].read() == DATA
    md5 = base64.b64encode(__import__("hashlib").md5(b"v").digest()).decode()
    setup.s3.put_object(**where, Body=b"v", ContentMD5=md5)
    assert _refused(setup.s3.put_object, **where, Body=b"w", ContentMD5=md5) == ("BadDigest", 400)
    with pytest.raises(sealstore.InvalidDataError):
        setup.s3.put_object(**where, Body=12)


def test_streaming_body_reads(setup: Setup) -> None:
    """Body reads in pieces, iterates, gives lines, and closes like boto3's StreamingBody."""
    text = b"".join(b"line %d\n" % n for n in range(5000))
    where = {"Bucket": setup.bucket, "Key": setup.key("lines")}
    setup.s3.put_object(**where, Body=text)
    body = setup.s3.get_object(**where)["Body"]
    assert body.read(7) == b"line 0\n"
    assert b"".join(body) == text[7:]
    assert list(setup.s3.get_object(**where)["Body"].iter_lines())[:2] == [b"line 0", b"line 1"]
    with setup.s3.get_object(**where)["Body"] as closing:
        assert closing.read(4) == b"line"
    assert closing.closed
    assert "plaintext hidden" in repr(closing)


def test_everything_else_passes_through(setup: Setup) -> None:
    """Attributes the client does not change are the wrapped client's."""
    assert setup.s3.meta is setup.raw.meta
    assert setup.s3.exceptions is setup.raw.exceptions
    assert setup.s3.client is setup.raw
    assert setup.s3.head_bucket(Bucket=setup.bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    where = {"Bucket": setup.bucket, "Key": setup.key("gone")}
    setup.s3.put_object(**where, Body=b"v")
    setup.s3.delete_object(**where)
    setup.s3.put_object(**where, Body=b"v")
    setup.s3.delete_objects(Bucket=setup.bucket, Delete={"Objects": [{"Key": where["Key"]}]})
    assert _refused(setup.s3.head_object, **where)[1] == 404
    with pytest.raises(AttributeError, match="without encrypting"):
        _ = setup.s3.copy
    with pytest.raises(AttributeError):
        _ = setup.s3._private  # private names are not forwarded
    assert "EncryptingS3Client" in repr(setup.s3)


def test_one_client_shared_between_threads(setup: Setup) -> None:
    """Eight threads writing and reading in every mode through one client."""
    errors: list[BaseException] = []

    def work(number: int) -> None:
        try:
            key = os.urandom(32)
            mode = MODES[number % 3]
            data = os.urandom(20_000 + number)
            name = setup.key(f"thread-{number}")
            for _ in range(3):
                setup.s3.put_object(
                    Bucket=setup.bucket, Key=name, Body=data, **write_args(mode, key)
                )
                got = setup.s3.get_object(Bucket=setup.bucket, Key=name, **read_args(mode, key))
                assert got["Body"].read() == data
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_constructor_checks() -> None:
    """A KMS cache must hold at least one provider."""
    with pytest.raises(ValueError, match="kms_cache_size"):
        EncryptingS3Client(object(), kms_cache_size=0)


@pytest.mark.parametrize("mode", MODES)
def test_keys_and_plaintext_never_reach_a_log(
    setup: Setup, mode: str, plaintext: bytes, secrets: SecretRegistry
) -> None:
    """With every logger at DEBUG (botocore's request logs included), neither the customer
    key nor the plaintext appears in a record or an error message."""
    key = os.urandom(32)
    secrets.add(key)
    where = {"Bucket": setup.bucket, "Key": setup.key("secret")}
    setup.s3.put_object(**where, Body=plaintext, **write_args(mode, key))
    assert setup.s3.get_object(**where, **read_args(mode, key))["Body"].read() == plaintext
    refused = customer() if mode == "SSE-C" else customer(key)  # another key, or SSE-C
    with pytest.raises(ClientError) as excinfo:
        setup.s3.get_object(**where, Range="bytes=0-3", **refused)
    assert not secrets.find([str(excinfo.value), excinfo.value.response, repr(setup.s3)])
