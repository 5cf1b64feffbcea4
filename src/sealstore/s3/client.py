"""``EncryptingS3Client``: a boto3 S3 client that encrypts client-side, in boto3's own words.

Code written for S3's server-side encryption (``ServerSideEncryption="aws:kms"``,
``SSECustomerKey=...``) runs unchanged against any S3-compatible server: the arguments pick a
sealstore key provider instead of reaching the server, objects are stored in sealstore's
format with the header in their metadata (:mod:`sealstore.placement`), and answers carry the
plaintext figures. Objects are bound to their key as :class:`~sealstore.EncryptedStore`
binds them to their name, so the client and ``EncryptedStore(S3Backend(client, bucket))``
read each other's objects. Everything the client does not change passes through.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, final

from sealstore.envelope import encrypt_detached
from sealstore.errors import InvalidDataError, SealstoreError
from sealstore.header import parse_header
from sealstore.keys import ManagedKeys
from sealstore.kms.base import KmsClient
from sealstore.placement import METADATA_KEY, place, read_marker
from sealstore.s3 import _copy, _listing, _read, _transfers
from sealstore.s3._bucket import BucketDefaults
from sealstore.s3._errors import raise_client_error, translated
from sealstore.s3._sse import Encryption, Keys, echo, take_write_arguments
from sealstore.s3.multipart import Uploads
from sealstore.store import OBJECT_CONTEXT_KEY

__all__ = ["EncryptingS3Client"]

CHECKSUM_VALUES: Final = (
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
)
"""Checksums a caller computed over the plaintext: the server sees ciphertext, so they are
checked here (``ContentMD5``) or dropped, and botocore computes its own for the bytes sent."""
_WRITES: Final = frozenset(
    {
        "put_object",
        "upload_part",
        "create_multipart_upload",
        "complete_multipart_upload",
        "copy_object",
        "upload_part_copy",
    }
)
_PAGED: Final = frozenset({"list_objects_v2", "list_objects", "list_parts"})
_BYPASSING: Final = frozenset(
    {
        "copy",
        "select_object_content",
        "write_get_object_response",
    }
)
"""The wrapped client's methods that would move plaintext or ciphertext past the client:
never forwarded."""


@final
class EncryptingS3Client:
    """A boto3 S3 ``client`` whose objects are encrypted and decrypted in the application.

    ``managed`` serves ``ServerSideEncryption="AES256"``, ``kms`` serves ``"aws:kms"``
    (through a :class:`~sealstore.KmsKeys` per key id, kept in a cache of ``kms_cache_size``,
    acting as ``principal``), and ``SSECustomerKey`` needs nothing configured. A write without
    SSE arguments uses the bucket's default (``put_bucket_encryption``), else managed keys if
    given, else the KMS's default key. Objects the client did not encrypt are refused on read
    unless ``allow_plaintext_reads``. ``kms_key_ids``, if given, are the only KMS keys (as the
    KMS reports their ids) objects may be written or read under. A bucket's default is read
    again after ``bucket_default_ttl`` seconds::

        s3 = EncryptingS3Client(boto3.client("s3"), managed=ManagedKeys(keyring))
        s3.put_object(Bucket="b", Key="k", Body=b"secret", ServerSideEncryption="AES256")
        s3.get_object(Bucket="b", Key="k")["Body"].read()  # b"secret"

    Safe to share between threads, as a boto3 client is.
    """

    def __init__(
        self,
        client: Any,
        *,
        managed: ManagedKeys | None = None,
        kms: KmsClient | None = None,
        principal: str = "default",
        allow_plaintext_reads: bool = False,
        kms_cache_size: int = 64,
        kms_key_ids: Iterable[str] | None = None,
        bucket_default_ttl: float = 60.0,
    ) -> None:
        if kms_cache_size < 1:
            raise ValueError("kms_cache_size must be at least 1")
        if isinstance(kms_key_ids, str):
            raise TypeError("kms_key_ids is a collection of key ids, not one string")
        self._client = client
        allowed = None if kms_key_ids is None else frozenset(kms_key_ids)
        self._keys = Keys(managed, kms, principal, kms_cache_size, allowed)
        self.allow_plaintext_reads = allow_plaintext_reads
        self._defaults = BucketDefaults(client, bucket_default_ttl, self._keys.for_write)
        self._uploads = Uploads(self)

    @property
    def client(self) -> Any:
        """The wrapped boto3 client (requests through it are neither encrypted nor decrypted)."""
        return self._client

    def __getattr__(self, name: str) -> Any:
        """Every other attribute of the wrapped client: ``meta``, ``exceptions``, bucket calls."""
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _BYPASSING:
            raise AttributeError(
                f"EncryptingS3Client does not forward {name}: the wrapped client's would move "
                "data without encrypting or decrypting it; use put_object, get_object or a "
                "multipart upload through this client"
            )
        return getattr(self._client, name)

    def __repr__(self) -> str:
        return f"EncryptingS3Client({self._client!r})"

    # -- objects ----------------------------------------------------------------------------

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        """``PutObject``, encrypted; the answer echoes the SSE arguments."""
        operation = "PutObject"
        params = dict(kwargs)
        metadata = user_metadata(params, operation)
        encryption = self.encryption_for(params, operation)
        data = body_bytes(params.pop("Body", b""))
        check_md5(params.pop("ContentMD5", None), data, operation)
        stored, header, marker = self.seal(params, encryption, data, operation)
        response = self._client.put_object(**params, Body=stored, Metadata={**metadata, **marker})
        answer = _read.plain_fields(response)
        answer.update(echo(parse_header(header), encryption.customer, encryption.kms_key_id))
        return answer

    # -- managed transfers (boto3's names and arguments) --------------------------------------

    def upload_file(  # noqa: PLR0917 - boto3's signature
        self,
        Filename: str,
        Bucket: str,
        Key: str,
        ExtraArgs: dict[str, Any] | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: Any = None,
    ) -> None:
        """Encrypt the file ``Filename`` into an object in concurrent parts, as boto3's
        ``upload_file`` uploads it: ``ExtraArgs`` takes the SSE arguments and ``put_object``'s
        others, ``Callback`` gets plaintext bytes, ``Config`` (a ``TransferConfig``) sets the
        part size and the number of threads. Memory stays near ``max_concurrency + 3`` parts."""
        _transfers.upload_file(
            self, Filename, Bucket, Key, extra_args=ExtraArgs, callback=Callback, config=Config
        )

    def upload_fileobj(  # noqa: PLR0917 - boto3's signature
        self,
        Fileobj: Any,
        Bucket: str,
        Key: str,
        ExtraArgs: dict[str, Any] | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: Any = None,
    ) -> None:
        """:meth:`upload_file` from a binary file object, read once, in order."""
        _transfers.upload_fileobj(
            self, Fileobj, Bucket, Key, extra_args=ExtraArgs, callback=Callback, config=Config
        )

    def download_file(  # noqa: PLR0917 - boto3's signature
        self,
        Bucket: str,
        Key: str,
        Filename: str,
        ExtraArgs: dict[str, Any] | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: Any = None,
    ) -> None:
        """Decrypt an object into the file ``Filename`` from concurrent ranged GETs, as
        boto3's ``download_file`` does: a temporary file is renamed over ``Filename`` once
        every byte is authenticated. ``ExtraArgs`` takes ``VersionId`` and the SSE-C
        arguments; ``Callback`` and ``Config`` as for :meth:`upload_file`."""
        _transfers.download_file(
            self, Bucket, Key, Filename, extra_args=ExtraArgs, callback=Callback, config=Config
        )

    def download_fileobj(  # noqa: PLR0917 - boto3's signature
        self,
        Bucket: str,
        Key: str,
        Fileobj: Any,
        ExtraArgs: dict[str, Any] | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: Any = None,
    ) -> None:
        """:meth:`download_file` into a binary file object, written in order, only with
        authenticated bytes (on an error, what was written must be discarded)."""
        _transfers.download_fileobj(
            self, Bucket, Key, Fileobj, extra_args=ExtraArgs, callback=Callback, config=Config
        )

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        """``GetObject``, decrypted as ``Body`` is read (``Range`` and ``PartNumber`` in
        plaintext terms); at most 2 requests for a detached header, 1 near the start."""
        return _read.get_object(
            self._client, self._keys, dict(kwargs), allow_plaintext=self.allow_plaintext_reads
        )

    def head_object(self, **kwargs: Any) -> dict[str, Any]:
        """``HeadObject`` with the plaintext ``ContentLength``; SSE-C keys are checked."""
        return _read.head_object(
            self._client, self._keys, dict(kwargs), allow_plaintext=self.allow_plaintext_reads
        )

    def delete_object(self, **kwargs: Any) -> Any:
        """``DeleteObject``, unchanged."""
        return self._client.delete_object(**kwargs)

    def delete_objects(self, **kwargs: Any) -> Any:
        """``DeleteObjects``, unchanged."""
        return self._client.delete_objects(**kwargs)

    def copy_object(self, **kwargs: Any) -> dict[str, Any]:
        """``CopyObject``: decrypted from the source, encrypted for the destination's key."""
        return _copy.copy_object(self, dict(kwargs))

    def get_object_attributes(self, **kwargs: Any) -> dict[str, Any]:
        """``GetObjectAttributes`` with the plaintext ``ObjectSize`` (a ``HeadObject`` first)."""
        return _listing.object_attributes(self, dict(kwargs))

    # -- listings ---------------------------------------------------------------------------

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        """``ListObjectsV2`` with plaintext sizes computed from the stored ones (no request
        per object); the client's reserved keys are left out."""
        return _listing.plaintext_listing(self._client.list_objects_v2(**kwargs))

    def list_objects(self, **kwargs: Any) -> dict[str, Any]:
        """``ListObjects``, as :meth:`list_objects_v2`."""
        return _listing.plaintext_listing(self._client.list_objects(**kwargs))

    def get_paginator(self, operation_name: str) -> Any:
        """boto3's paginator; for listings and ``list_parts`` it pages through this client."""
        paginator = self._client.get_paginator(operation_name)
        if operation_name not in _PAGED:
            return paginator
        return type(paginator)(
            getattr(self, operation_name), paginator._pagination_cfg, paginator._model
        )

    # -- multipart uploads ------------------------------------------------------------------

    def create_multipart_upload(
        self, *, part_size: int | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """``CreateMultipartUpload``; ``part_size`` (sealstore's, optional) declares the
        plaintext size of every part but the last, so parts can come in any order."""
        return self._uploads.create(dict(kwargs), part_size)

    def upload_part(self, **kwargs: Any) -> dict[str, Any]:
        """``UploadPart``, encrypted as chunks of the object's body (see the docs)."""
        return self._uploads.upload_part(dict(kwargs))

    def upload_part_copy(self, **kwargs: Any) -> dict[str, Any]:
        """``UploadPartCopy``: the plaintext of the source range, uploaded as a part."""
        return _copy.upload_part_copy(self, dict(kwargs))

    def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        """``CompleteMultipartUpload``, ending the body with its final chunk."""
        return self._uploads.complete(dict(kwargs))

    def abort_multipart_upload(self, **kwargs: Any) -> Any:
        """``AbortMultipartUpload``, and the upload's state removed."""
        return self._uploads.abort(dict(kwargs))

    def list_parts(self, **kwargs: Any) -> dict[str, Any]:
        """``ListParts`` with each part's plaintext size."""
        return self._uploads.list_parts(dict(kwargs))

    # -- bucket default encryption ----------------------------------------------------------

    def put_bucket_encryption(self, **kwargs: Any) -> dict[str, Any]:
        """Set the bucket's default encryption, kept in the bucket (see the docs)."""
        params = dict(kwargs)
        params.pop("ContentMD5", None)
        params.pop("ChecksumAlgorithm", None)
        bucket = params.pop("Bucket")
        configuration = params.pop("ServerSideEncryptionConfiguration")
        return self._defaults.put(bucket, configuration, params)

    def get_bucket_encryption(self, **kwargs: Any) -> dict[str, Any]:
        """The bucket's default encryption (S3's 404 when it has none)."""
        return self._defaults.get(kwargs["Bucket"])

    def delete_bucket_encryption(self, **kwargs: Any) -> dict[str, Any]:
        """Remove the bucket's default encryption."""
        params = dict(kwargs)
        return self._defaults.delete(params.pop("Bucket"), params)

    # -- presigned requests -----------------------------------------------------------------

    def generate_presigned_url(
        self, ClientMethod: str, Params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        """A presigned URL, refused where it would hand out ciphertext or take plaintext."""
        params = dict(Params or {})
        if ClientMethod in _WRITES:
            _refuse_presign(f"a presigned {ClientMethod} would store data unencrypted")
        if ClientMethod in {"get_object", "head_object"}:
            head = self._client.head_object(Bucket=params["Bucket"], Key=params["Key"])
            if read_marker(head.get("Metadata") or {}, params["Key"])[0] is not None:
                _refuse_presign(
                    f"object {params['Key']!r} is encrypted client-side: a presigned URL would "
                    "hand out ciphertext (S3 decrypts for presigned URLs; client-side "
                    "encryption cannot). Serve it through get_object instead"
                )
        return self._client.generate_presigned_url(ClientMethod, Params=Params, **kwargs)

    def generate_presigned_post(self, *args: Any, **kwargs: Any) -> Any:
        """Refused: a browser upload through a presigned POST would store plaintext."""
        _refuse_presign("a presigned POST would store data unencrypted")

    # -- shared with the other operations ---------------------------------------------------

    def encryption_for(self, params: dict[str, Any], operation: str) -> Encryption:
        """The encryption a write asks for (its SSE arguments taken out of ``params``)."""
        given = take_write_arguments(params, operation)
        if given is not None:
            return given
        default = self._defaults.default(params["Bucket"])
        if default is not None:
            return default
        if self._keys.managed is not None:
            return Encryption("AES256")
        if self._keys.kms is not None:
            return Encryption("aws:kms")
        raise_client_error(
            operation,
            "InvalidArgument",
            "no encryption asked for, the bucket has no default encryption and the client "
            "has no managed keys: give ServerSideEncryption or SSECustomerKey",
        )

    def provider_and_context(
        self, params: dict[str, Any], encryption: Encryption, operation: str
    ) -> tuple[Any, dict[str, str]]:
        """The provider and encryption context of a new object at ``params["Key"]``."""
        provider = self._keys.for_write(encryption, operation)
        context = {**encryption.kms_context, OBJECT_CONTEXT_KEY: params["Key"]}
        return provider, context

    def seal(
        self, params: dict[str, Any], encryption: Encryption, data: bytes, operation: str
    ) -> tuple[bytes, bytes, dict[str, str]]:
        """``(stored bytes, header, metadata marker)`` of ``data`` as the object
        ``params["Key"]``; the caller's plaintext checksums are taken out of ``params``."""
        for name in (*CHECKSUM_VALUES, "ContentLength"):
            params.pop(name, None)
        provider, context = self.provider_and_context(params, encryption, operation)
        try:
            header, body = encrypt_detached(data, provider, context=context)
        except SealstoreError as error:
            raise translated(error, operation) from error
        self._keys.check_kms_key(parse_header(header), operation)
        placement, marker = place(header, keeps_metadata=True)
        stored = body if placement == "detached" else header + body
        return stored, header, marker or {}

    @property
    def keys(self) -> Keys:
        """The client's providers (for its own modules)."""
        return self._keys


def _refuse_presign(message: str) -> None:
    raise_client_error("GeneratePresignedUrl", "InvalidRequest", message)


def user_metadata(params: dict[str, Any], operation: str) -> dict[str, str]:
    """The caller's ``Metadata``, which may not use the key the client keeps headers under."""
    metadata = dict(params.pop("Metadata", None) or {})
    if any(str(key).lower() == METADATA_KEY for key in metadata):
        raise_client_error(
            operation,
            "InvalidArgument",
            f"the metadata key {METADATA_KEY!r} is reserved for the object's encryption header",
        )
    return metadata


def body_bytes(body: object) -> bytes:
    """A request's ``Body`` as bytes: bytes, text (UTF-8) or a binary file, as boto3 takes."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    read = getattr(body, "read", None)
    if read is not None:
        data = read()
        if isinstance(data, str):
            return data.encode("utf-8")
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
    raise InvalidDataError(f"Body must be bytes, str or a binary file, not {type(body).__name__}")


def check_md5(given: object, data: bytes, operation: str) -> None:
    """Check a ``ContentMD5`` the caller computed over the plaintext (the server never sees it)."""
    if given is None:
        return
    digest = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
    if given != digest:
        raise_client_error(
            operation, "BadDigest", "The Content-MD5 you specified did not match what we received"
        )
