"""EncryptingS3Client: listings, attributes, copies, bucket default encryption, presigned
URLs, and the number of requests each costs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sealstore import _aead
from sealstore.s3 import BUCKET_ENCRYPTION_KEY
from tests.s3_client_support import SERVERS, Setup, customer, error_of, made_setup

MiB = 1 << 20


@pytest.fixture(params=SERVERS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    """The encrypting client over a fresh boto3 client, on each server."""
    with made_setup(request, request.param, tmp_path) as made:
        yield made


@pytest.fixture
def fresh(setup: Setup) -> str:
    """A bucket of this test's own (its default encryption is this test's business)."""
    bucket = f"sealstore-{os.urandom(8).hex()}"
    setup.raw.create_bucket(Bucket=bucket)
    return bucket


def _refused(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as excinfo:
        call(**kwargs)
    return error_of(excinfo)


# -- listings -----------------------------------------------------------------------------


def test_listing_reports_plaintext_sizes_at_the_bare_request_count(setup: Setup) -> None:
    """list_objects_v2 and its paginator: plaintext sizes, the same requests as the bare
    client (no request per object)."""
    sizes = [0, 1, 16384, 100_000, 7]
    for number, size in enumerate(sizes):
        setup.s3.put_object(Bucket=setup.bucket, Key=setup.key(f"o{number}"), Body=bytes(size))
    setup.requests.clear()
    listed = setup.s3.list_objects_v2(Bucket=setup.bucket, Prefix=setup.prefix)
    assert [entry["Size"] for entry in listed["Contents"]] == sizes
    assert setup.requests.names == ["ListObjectsV2"]
    setup.requests.clear()
    pages = setup.s3.get_paginator("list_objects_v2").paginate(
        Bucket=setup.bucket, Prefix=setup.prefix, PaginationConfig={"PageSize": 2}
    )
    seen = [entry["Size"] for page in pages for entry in page.get("Contents", [])]
    assert seen == sizes
    bare = setup.raw.get_paginator("list_objects_v2").paginate(
        Bucket=setup.bucket, Prefix=setup.prefix, PaginationConfig={"PageSize": 2}
    )
    ours = len(setup.requests)
    setup.requests.clear()
    assert [e["Size"] for p in bare for e in p.get("Contents", [])] != sizes  # stored sizes
    assert len(setup.requests) == ours == 3
    v1 = setup.s3.list_objects(Bucket=setup.bucket, Prefix=setup.prefix)
    assert [entry["Size"] for entry in v1["Contents"]] == sizes
    other = setup.s3.get_paginator("list_object_versions")  # other operations: unchanged
    assert other._method == setup.raw.list_object_versions


def test_listing_hides_the_reserved_keys(setup: Setup, fresh: str) -> None:
    """The bucket default's object is not listed, by key nor as a common prefix."""
    setup.s3.put_bucket_encryption(
        Bucket=fresh,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    setup.s3.put_object(Bucket=fresh, Key="visible", Body=b"v")
    flat = setup.s3.list_objects_v2(Bucket=fresh)
    assert [entry["Key"] for entry in flat["Contents"]] == ["visible"]
    assert flat["KeyCount"] == 1
    nested = setup.s3.list_objects_v2(Bucket=fresh, Delimiter="/")
    assert nested.get("CommonPrefixes", []) == []
    assert [entry["Key"] for entry in nested["Contents"]] == ["visible"]
    assert "Contents" in setup.raw.list_objects_v2(Bucket=fresh, Prefix=BUCKET_ENCRYPTION_KEY)


def test_object_attributes(setup: Setup) -> None:
    """get_object_attributes reports the plaintext ObjectSize; SSE-C keys are checked."""
    secret = os.urandom(32)
    where = {"Bucket": setup.bucket, "Key": setup.key("a")}
    put = setup.s3.put_object(**where, Body=bytes(50_000), **customer(secret))
    answer = setup.s3.get_object_attributes(
        **where, ObjectAttributes=["ObjectSize", "ETag"], **customer(secret)
    )
    assert answer["ObjectSize"] == 50_000
    assert answer["ETag"] == put["ETag"].strip('"')
    assert _refused(
        setup.s3.get_object_attributes, **where, ObjectAttributes=["ObjectSize"], **customer()
    ) == ("InvalidArgument", 400)


# -- copies -------------------------------------------------------------------------------

MODES = ("AES256", "aws:kms", "SSE-C")


def _write(mode: str, key: bytes) -> dict[str, Any]:
    return customer(key) if mode == "SSE-C" else {"ServerSideEncryption": mode}


def _read(mode: str, key: bytes, prefix: str = "") -> dict[str, Any]:
    if mode != "SSE-C":
        return {}
    return {prefix + name: value for name, value in customer(key).items()}


@pytest.mark.parametrize("source_mode", MODES)
@pytest.mark.parametrize("target_mode", MODES)
def test_copies_across_every_pair_of_modes(
    setup: Setup, source_mode: str, target_mode: str
) -> None:
    """copy_object re-encrypts for the destination, in any mode, from any mode."""
    source_key, target_key = os.urandom(32), os.urandom(32)
    data = os.urandom(40_000)
    source = {"Bucket": setup.bucket, "Key": setup.key("src")}
    setup.s3.put_object(
        **source,
        Body=data,
        Metadata={"a": "1"},
        ContentType="text/x-a",
        **_write(source_mode, source_key),
    )
    answer = setup.s3.copy_object(
        Bucket=setup.bucket,
        Key=setup.key("dst"),
        CopySource=source,
        **_write(target_mode, target_key),
        **_read(source_mode, source_key, "CopySource"),
    )
    assert answer["CopyObjectResult"]["ETag"]
    assert answer["CopyObjectResult"]["LastModified"]
    got = setup.s3.get_object(
        Bucket=setup.bucket, Key=setup.key("dst"), **_read(target_mode, target_key)
    )
    assert got["Body"].read() == data
    assert got["Metadata"] == {"a": "1"}
    assert got["ContentType"] == "text/x-a"
    if target_mode == "SSE-C":
        assert answer["SSECustomerKeyMD5"] == customer(target_key)["SSECustomerKeyMD5"]
    else:
        assert answer["ServerSideEncryption"] == target_mode


def test_copy_options(setup: Setup) -> None:
    """MetadataDirective REPLACE, string sources, copy conditions and missing keys."""
    setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("s"), Body=b"v", Metadata={"a": "1"})
    setup.s3.copy_object(
        Bucket=setup.bucket,
        Key=setup.key("d"),
        CopySource=f"{setup.bucket}/{setup.key('s')}",
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
    )
    got = setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("d"))
    assert (got["Body"].read(), got["Metadata"]) == (b"v", {"b": "2"})
    where = {"Bucket": setup.bucket, "Key": setup.key("d2")}
    code = _refused(
        setup.s3.copy_object,
        **where,
        CopySource=f"{setup.bucket}/{setup.key('s')}",
        CopySourceIfMatch='"0000"',
    )
    assert code[0] == "PreconditionFailed"
    code = _refused(
        setup.s3.copy_object,
        **where,
        CopySource=f"{setup.bucket}/{setup.key('s')}",
        MetadataDirective="MERGE",
    )
    assert code == ("InvalidArgument", 400)
    assert _refused(setup.s3.copy_object, **where, CopySource="nonsense")[1] == 400
    secret = os.urandom(32)
    setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("c"), Body=b"v", **customer(secret))
    code = _refused(
        setup.s3.copy_object, **where, CopySource={"Bucket": setup.bucket, "Key": setup.key("c")}
    )
    assert code == ("InvalidRequest", 400)


# -- bucket default encryption ----------------------------------------------------------


def test_bucket_default_is_seen_by_a_second_client(setup: Setup, fresh: str) -> None:
    """put_bucket_encryption is kept in the bucket: another client writes under it."""
    key_id = setup.kms.create_key(principal="default").key_id
    assert _refused(setup.s3.get_bucket_encryption, Bucket=fresh) == (
        "ServerSideEncryptionConfigurationNotFoundError",
        404,
    )
    configuration = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": key_id,
                },
                "BucketKeyEnabled": True,
            }
        ]
    }
    setup.s3.put_bucket_encryption(Bucket=fresh, ServerSideEncryptionConfiguration=configuration)
    second = setup.other()
    assert second.get_bucket_encryption(Bucket=fresh)["ServerSideEncryptionConfiguration"] == (
        configuration
    )
    put = second.put_object(Bucket=fresh, Key="k", Body=b"v")
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"], put["BucketKeyEnabled"]) == (
        "aws:kms",
        key_id,
        True,
    )
    own = setup.s3.put_object(Bucket=fresh, Key="k2", Body=b"v")  # its own cached default
    assert own["SSEKMSKeyId"] == key_id
    explicit = second.put_object(Bucket=fresh, Key="k3", Body=b"v", ServerSideEncryption="AES256")
    assert explicit["ServerSideEncryption"] == "AES256"
    setup.s3.delete_bucket_encryption(Bucket=fresh)
    assert setup.other().put_object(Bucket=fresh, Key="k4", Body=b"v")["ServerSideEncryption"] == (
        "AES256"
    )


@pytest.mark.parametrize(
    "configuration",
    [
        {"Rules": []},
        {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:fsx"}}]},
        {
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "AES256",
                        "KMSMasterKeyID": "k",
                    }
                }
            ]
        },
    ],
)
def test_bad_bucket_defaults_are_refused(setup: Setup, fresh: str, configuration: Any) -> None:
    """A default the client cannot serve is refused before it is stored."""
    code = _refused(
        setup.s3.put_bucket_encryption,
        Bucket=fresh,
        ServerSideEncryptionConfiguration=configuration,
    )
    assert code == ("MalformedXML", 400)


def test_damaged_bucket_default(setup: Setup, fresh: str) -> None:
    """A damaged default object makes writes without SSE arguments fail clearly."""
    setup.raw.put_object(Bucket=fresh, Key=BUCKET_ENCRYPTION_KEY, Body=b"{not json")
    assert _refused(setup.s3.put_object, Bucket=fresh, Key="k", Body=b"v")[1] == 500
    assert setup.s3.put_object(Bucket=fresh, Key="k", Body=b"v", ServerSideEncryption="AES256")


def test_no_keys_no_default(setup: Setup, fresh: str) -> None:
    """A client without managed keys or KMS needs SSE arguments on every write."""
    bare = type(setup.s3)(setup.raw)
    assert _refused(bare.put_object, Bucket=fresh, Key="k", Body=b"v") == ("InvalidArgument", 400)
    for arguments in ({"ServerSideEncryption": "AES256"}, {"ServerSideEncryption": "aws:kms"}):
        code = _refused(bare.put_object, Bucket=fresh, Key="k", Body=b"v", **arguments)
        assert code == ("InvalidArgument", 400)
    assert bare.put_object(Bucket=fresh, Key="k", Body=b"v", **customer())
    kms_only = type(setup.s3)(setup.raw, kms=setup.kms)
    assert kms_only.put_object(Bucket=fresh, Key="k", Body=b"v")["ServerSideEncryption"] == (
        "aws:kms"
    )
    assert _refused(bare.get_object, Bucket=fresh, Key="k") == ("InvalidRequest", 400)
    setup.s3.put_object(Bucket=fresh, Key="m", Body=b"v")
    assert _refused(bare.get_object, Bucket=fresh, Key="m") == ("InvalidRequest", 400)


# -- presigned URLs -------------------------------------------------------------------------


def test_presigned_urls_are_refused_for_encrypted_objects(setup: Setup) -> None:
    """A presigned GET of an encrypted object, and any presigned write, is refused."""
    setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("e"), Body=b"v")
    setup.raw.put_object(Bucket=setup.bucket, Key=setup.key("p"), Body=b"v")
    for method in ("get_object", "head_object"):
        with pytest.raises(ClientError, match="ciphertext"):
            setup.s3.generate_presigned_url(
                method, Params={"Bucket": setup.bucket, "Key": setup.key("e")}
            )
    with pytest.raises(ClientError, match="unencrypted"):
        setup.s3.generate_presigned_url(
            "put_object", Params={"Bucket": setup.bucket, "Key": setup.key("n")}
        )
    with pytest.raises(ClientError, match="unencrypted"):
        setup.s3.generate_presigned_post(Bucket=setup.bucket, Key=setup.key("n"))
    url = setup.s3.generate_presigned_url(
        "get_object", Params={"Bucket": setup.bucket, "Key": setup.key("p")}
    )
    assert setup.key("p") in url
    assert "list-type" in setup.s3.generate_presigned_url(
        "list_objects_v2", Params={"Bucket": setup.bucket}
    )


# -- request economy ------------------------------------------------------------------------


def test_cold_ranged_reads_cost_at_most_two_requests(setup: Setup) -> None:
    """A cold ranged get_object: 1 request near the start, 2 anywhere else, never a HEAD."""
    data = os.urandom(3 * MiB)
    where = {"Bucket": setup.bucket, "Key": setup.key("big")}
    setup.s3.put_object(**where, Body=data)
    cases = [
        ("bytes=0-4095", 1),
        ("bytes=200000-204095", 1),
        ("bytes=2000000-2004095", 2),
        ("bytes=-4096", 2),
        ("bytes=3000000-", 2),
    ]
    for given, requests in cases:
        setup.requests.clear()
        got = setup.s3.get_object(**where, Range=given)
        body = got["Body"].read()
        start = (
            int(given[6:].split("-")[0]) if not given.startswith("bytes=-") else len(data) - 4096
        )
        assert body == data[start : start + len(body)]
        assert setup.requests.names == ["GetObject"] * requests, given
    setup.requests.clear()
    assert setup.s3.get_object(**where)["Body"].read() == data
    assert setup.requests.names == ["GetObject"]
    setup.requests.clear()
    assert setup.s3.head_object(**where)["ContentLength"] == len(data)
    assert setup.requests.names == ["HeadObject"]


def test_ranged_reads_fetch_only_the_chunks_they_need(setup: Setup) -> None:
    """A 4 KiB read far from the start fetches one or two chunks and the 56-byte prefix."""
    data = os.urandom(3 * MiB)
    where = {"Bucket": setup.bucket, "Key": setup.key("big")}
    setup.s3.put_object(**where, Body=data)
    ranges: list[str] = []
    setup.raw.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: ranges.append(params["Range"])
    )
    setup.s3.get_object(**where, Range="bytes=2000000-2004095")["Body"].read()
    first = _aead.BODY_PREFIX_SIZE + (2_000_000 // 16384) * 16400
    assert ranges[0] == f"bytes={first}-{first + 16400 + 16 - 1}"
    assert ranges[1] == "bytes=0-55"
