"""``copy_object`` and ``upload_part_copy``: decrypt the source, encrypt for the destination.

The destination's ciphertext cannot be the source's: the object key is bound into every
object's encryption context, and the copy may change the mode or the key. So a copy reads the
source through the client (``CopySourceSSECustomer...`` serve as its SSE-C arguments, the
``CopySourceIf...`` conditions as its conditions) and writes the plaintext through the client
with the destination's arguments. The plaintext passes through memory: a ``CopyObject``
copies at most 5 GiB on S3 as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, unquote

from sealstore.s3._errors import raise_client_error

if TYPE_CHECKING:
    from sealstore.s3.client import EncryptingS3Client

__all__ = ["copy_object", "upload_part_copy"]

_CONDITIONS: Final = {
    "CopySourceIfMatch": "IfMatch",
    "CopySourceIfNoneMatch": "IfNoneMatch",
    "CopySourceIfModifiedSince": "IfModifiedSince",
    "CopySourceIfUnmodifiedSince": "IfUnmodifiedSince",
}
_SOURCE_KEYS: Final = {
    "CopySourceSSECustomerAlgorithm": "SSECustomerAlgorithm",
    "CopySourceSSECustomerKey": "SSECustomerKey",
    "CopySourceSSECustomerKeyMD5": "SSECustomerKeyMD5",
}
_COPIED_HEADERS: Final = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
    "Expires",
    "WebsiteRedirectLocation",
)
_DROPPED: Final = ("TaggingDirective", "ExpectedSourceBucketOwner", "ChecksumAlgorithm")


def _source(value: object, operation: str) -> dict[str, Any]:
    """``{"Bucket", "Key"[, "VersionId"]}`` of a ``CopySource`` (a dict, or boto3's string)."""
    if isinstance(value, Mapping) and "Bucket" in value and "Key" in value:
        return {k: value[k] for k in ("Bucket", "Key", "VersionId") if k in value}
    if isinstance(value, str) and "/" in value.lstrip("/"):
        path, _, query = value.lstrip("/").partition("?")
        bucket, _, key = path.partition("/")
        found: dict[str, Any] = {"Bucket": bucket, "Key": unquote(key)}
        version = parse_qs(query).get("versionId")
        if version:
            found["VersionId"] = version[0]
        return found
    raise_client_error(operation, "InvalidArgument", "CopySource must name a bucket and a key")


def _read_source(
    client: EncryptingS3Client, params: dict[str, Any], operation: str, plaintext_range: object
) -> tuple[bytes, dict[str, Any]]:
    """The source's plaintext and its ``get_object`` answer; the copy arguments are taken
    out of ``params``."""
    request = _source(params.pop("CopySource"), operation)
    for given, name in (*_CONDITIONS.items(), *_SOURCE_KEYS.items()):
        if given in params:
            request[name] = params.pop(given)
    if plaintext_range is not None:
        request["Range"] = plaintext_range
    response = client.get_object(**request)
    with response["Body"] as body:
        data = body.read()
    return data, response


def copy_object(client: EncryptingS3Client, params: dict[str, Any]) -> dict[str, Any]:
    """``CopyObject`` through the client (see the module's docstring)."""
    operation = "CopyObject"
    data, source = _read_source(client, params, operation, None)
    directive = params.pop("MetadataDirective", "COPY")
    for name in _DROPPED:
        params.pop(name, None)
    if directive == "COPY":
        params["Metadata"] = source.get("Metadata") or {}
        for name in _COPIED_HEADERS:
            params.pop(name, None)
            if source.get(name) is not None:
                params[name] = source[name]
    elif directive != "REPLACE":
        raise_client_error(
            operation, "InvalidArgument", "MetadataDirective must be 'COPY' or 'REPLACE'"
        )
    written = client.put_object(**params, Body=data)
    head = client.client.head_object(Bucket=params["Bucket"], Key=params["Key"])
    answer = {
        k: v
        for k, v in written.items()
        if k not in {"ETag", "ChecksumCRC32", "ChecksumCRC64NVME", "ChecksumType"}
    }
    answer["CopyObjectResult"] = {"ETag": written.get("ETag"), "LastModified": head["LastModified"]}
    if source.get("VersionId") is not None:
        answer["CopySourceVersionId"] = source["VersionId"]
    return answer


def upload_part_copy(client: EncryptingS3Client, params: dict[str, Any]) -> dict[str, Any]:
    """``UploadPartCopy``: the source's plaintext (``CopySourceRange`` in plaintext terms)
    uploaded as the part."""
    operation = "UploadPartCopy"
    data, source = _read_source(client, params, operation, params.pop("CopySourceRange", None))
    written = client.upload_part(**params, Body=data)
    head_etag = written.get("ETag")
    answer = {k: v for k, v in written.items() if k != "ETag"}
    answer["CopyPartResult"] = {"ETag": head_etag, "LastModified": source.get("LastModified")}
    if source.get("VersionId") is not None:
        answer["CopySourceVersionId"] = source["VersionId"]
    return answer
