"""``S3Backend``: objects in an S3 bucket, through a boto3 S3 client the caller builds.

Credentials, region, endpoint, retries and timeouts are the client's business::

    import boto3
    from sealstore.backends.s3 import S3Backend

    backend = S3Backend(boto3.client("s3"), "my-bucket", prefix="app/")
    backend.put("reports/q1.pdf", open("q1.pdf", "rb"), metadata={"kind": "report"})

How each operation maps onto S3:

- ``put`` of bytes is one ``PutObject``. A stream or an iterable is read ``part_size`` bytes at
  a time into one reused buffer: less than one part becomes a ``PutObject``, more a multipart
  upload (``CreateMultipartUpload``, ``UploadPart``..., ``CompleteMultipartUpload``) that is
  aborted if anything fails, the caller's stream included. Memory stays near one part.
- ``get`` is a ``GetObject`` with a ``Range`` header; a range starting at or after the end of
  the object gives an empty stream, as on every backend.
- ``head`` is ``HeadObject``; ``delete`` is ``HeadObject`` then ``DeleteObject``, because S3
  deletes missing keys without complaint and the protocol reports them.
- ``list`` is ``ListObjectsV2``. S3 returns no user metadata in listings, so the entries have
  the stored size, etag and time, and **empty metadata**; :meth:`S3Backend.head` gives it.
- ``copy`` is ``CopyObject`` (``MetadataDirective`` ``REPLACE`` when new metadata is given),
  or ``UploadPartCopy`` parts for sources larger than ``copy_threshold`` (5 GiB, the most one
  ``CopyObject`` copies). Every request of a copy names the source's etag, so a source that
  is overwritten meanwhile fails the copy instead of mixing two versions.

boto3 is not imported here, and botocore only when an error has to be recognised: any object
with the client's methods will do (see :class:`S3Api`). botocore exceptions never escape.
"""

from __future__ import annotations

import builtins
import contextlib
import heapq
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar, final

import attrs
from typing_extensions import Buffer

from sealstore._aws import error_code, error_status, is_botocore_error
from sealstore._io import GuardedStream, Readable, ReadableStream, pieces, read_up_to
from sealstore.backends._rules import (
    MAX_METADATA_SIZE,
    MAX_NAME_BYTES,
    check_metadata,
    check_name,
    check_range,
    is_valid_name,
    prefix_directory,
    shown,
)
from sealstore.backends.base import ObjectInfo
from sealstore.errors import (
    BackendError,
    InvalidNameError,
    ObjectChangedError,
    ObjectNotFoundError,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_COPY_PART_SIZE",
    "DEFAULT_PART_SIZE",
    "MAX_METADATA_SIZE",
    "MAX_PARTS",
    "MAX_SINGLE_REQUEST_SIZE",
    "MIN_PART_SIZE",
    "MultipartTarget",
    "S3Api",
    "S3Backend",
]

MIN_PART_SIZE: Final = 5 << 20
"""The smallest part S3 accepts in a multipart upload, except the last (5 MiB)."""

MAX_SINGLE_REQUEST_SIZE: Final = 5 << 30
"""The most one ``PutObject``, ``CopyObject`` or upload part carries (5 GiB)."""

MAX_PARTS: Final = 10_000
"""The most parts one multipart upload may have."""

DEFAULT_PART_SIZE: Final = 8 << 20
"""Part size of streamed uploads (8 MiB): objects up to 78 GiB."""
DEFAULT_CONCURRENCY: Final = 4
"""Parts a transfer moves at once unless ``concurrency=`` says otherwise."""

DEFAULT_COPY_PART_SIZE: Final = 512 << 20
"""Part size of server-side copies of objects over ``copy_threshold`` (512 MiB)."""

_NOT_FOUND: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_ACCESS_DENIED: Final = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
    }
)
_UNAVAILABLE: Final = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
)

_T = TypeVar("_T")


class S3Api(Protocol):
    """The methods of a boto3 S3 client that :class:`S3Backend` calls.

    A ``boto3.client("s3")`` has them all; a test double needs only these. Each takes the S3
    API's keyword arguments and returns its response dictionary, and reports a service error
    as an exception whose ``response["Error"]["Code"]`` is the S3 error code, as
    ``botocore.exceptions.ClientError`` does.
    """

    def put_object(self, *args: Any, **kwargs: Any) -> Any: ...
    def get_object(self, *args: Any, **kwargs: Any) -> Any: ...
    def head_object(self, *args: Any, **kwargs: Any) -> Any: ...
    def head_bucket(self, *args: Any, **kwargs: Any) -> Any: ...
    def delete_object(self, *args: Any, **kwargs: Any) -> Any: ...
    def copy_object(self, *args: Any, **kwargs: Any) -> Any: ...
    def list_objects_v2(self, *args: Any, **kwargs: Any) -> Any: ...
    def create_multipart_upload(self, *args: Any, **kwargs: Any) -> Any: ...
    def upload_part(self, *args: Any, **kwargs: Any) -> Any: ...
    def upload_part_copy(self, *args: Any, **kwargs: Any) -> Any: ...
    def complete_multipart_upload(self, *args: Any, **kwargs: Any) -> Any: ...
    def abort_multipart_upload(self, *args: Any, **kwargs: Any) -> Any: ...


def _check_bucket(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str) or not value or "/" in value:
        raise ValueError(f"bucket must be an S3 bucket name such as 'my-bucket', not {value!r}")


def _check_prefix(_instance: object, _attribute: object, value: str) -> None:
    if value == "":
        return
    if not isinstance(value, str) or not value.endswith("/") or not is_valid_name(value[:-1]):
        # A prefix that is not a directory would let "a" see the objects of "ab".
        raise InvalidNameError(
            f"invalid backend prefix {shown(value)}: use '' or a valid object name followed "
            "by '/', such as 'tenant-7/'"
        )


def _check_size(low: int, high: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{attribute.name} must be an int from {low} to {high} bytes")

    return check


@final
@attrs.frozen(eq=False)
class S3Backend:
    """Objects as keys ``prefix + name`` in an S3 bucket; metadata is kept as S3 user metadata.

    ``prefix`` is ``""`` or a directory such as ``"tenant-7/"``: backends with different
    prefixes on one bucket never see each other's objects (unless one prefix lies inside the
    other). Names follow the rules of every backend, and ``prefix + name`` may not exceed
    1024 UTF-8 bytes, S3's key limit.

    Metadata follows S3's portable rules (lowercase keys; printable ASCII values; at most
    :data:`MAX_METADATA_SIZE` bytes of keys and values together), checked before any request
    with :class:`ValueError`. Values must also be non-empty and free of leading and trailing
    spaces: HTTP trims them and some servers drop empty values.

    S3 errors become sealstore errors, raised ``from`` the original:

    - ``NoSuchKey`` and 404: :class:`~sealstore.ObjectNotFoundError` (a 404 from
      ``HeadObject`` is checked with ``HeadBucket``, so a missing bucket is not reported as a
      missing object)
    - ``KeyTooLongError``: :class:`~sealstore.InvalidNameError`
    - ``NoSuchBucket``, access denied, ``SlowDown``, 5xx and every other code, and botocore's
      own errors (connection refused, timeouts): :class:`~sealstore.BackendError`

    Messages name the S3 operation, the object and ``s3://bucket/prefix``; never data or
    metadata values.

    ``list`` relies on S3 listing keys in UTF-8 order, which is name order, and checks it as
    it goes. Some servers (SeaweedFS) list a directory's keys before its siblings that sort
    before ``/`` (``"a-b"`` after ``"a/c"``): with those, the listing raises
    :class:`~sealstore.BackendError` rather than return names out of order. Pass
    ``list_by_directory=True`` for them: each directory is then listed on its own
    (``Delimiter="/"``) and merged in name order, one request or more per directory.

    ``part_size`` (5 MiB to 5 GiB) is the part size of streamed uploads, which may have at
    most 10,000 parts. ``concurrency`` (1 to 64, default 4) is how many parts
    :class:`~sealstore.EncryptedStore` uploads, or ranges it downloads, at once through
    :meth:`fetch` and :meth:`uploads`. ``copy_threshold`` is the largest source copied by
    one ``CopyObject``, larger ones are copied in parts of ``copy_part_size`` (or more, to
    stay within 10,000).

    ::

        backend = S3Backend(boto3.client("s3"), "my-bucket", prefix="app/")
        backend.put("notes/today.txt", b"hello", metadata={"lang": "en"}).size  # 5
        [info.name for info in backend.list("notes/")]  # ["notes/today.txt"]
    """

    client: S3Api = attrs.field(repr=False)
    bucket: str = attrs.field(validator=_check_bucket)
    prefix: str = attrs.field(default="", validator=_check_prefix)
    part_size: int = attrs.field(
        default=DEFAULT_PART_SIZE,
        kw_only=True,
        validator=_check_size(MIN_PART_SIZE, MAX_SINGLE_REQUEST_SIZE),
    )
    copy_threshold: int = attrs.field(
        default=MAX_SINGLE_REQUEST_SIZE,
        kw_only=True,
        validator=_check_size(0, MAX_SINGLE_REQUEST_SIZE),
    )
    copy_part_size: int = attrs.field(
        default=DEFAULT_COPY_PART_SIZE,
        kw_only=True,
        validator=_check_size(MIN_PART_SIZE, MAX_SINGLE_REQUEST_SIZE),
    )
    list_by_directory: bool = attrs.field(default=False, kw_only=True)
    concurrency: int = attrs.field(
        default=DEFAULT_CONCURRENCY, kw_only=True, validator=_check_size(1, 64)
    )

    @property
    def keeps_metadata(self) -> bool:
        """True: metadata is stored as S3 user metadata and returned by :meth:`head`.

        :meth:`list` returns empty metadata: S3 listings carry none.
        """
        return True

    @property
    def lists_metadata(self) -> bool:
        """False: S3 listings carry no user metadata (:meth:`head` or :meth:`fetch` has it)."""
        return False

    # -- the Backend protocol ---------------------------------------------------------------

    def put(
        self,
        name: str,
        data: bytes | Readable | Iterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Store ``data`` as ``name``: bytes in one request, a stream in parts if it is large.

        Returns the size written, the etag and the version id where the bucket has versions.
        With ``if_match``, the ``PutObject`` (or ``CompleteMultipartUpload``) is conditional.
        """
        key = self._key(name)
        kept = _check_metadata(metadata)
        condition = {} if if_match is None else {"IfMatch": f'"{if_match}"'}
        given: object = data
        if isinstance(given, memoryview) and given.nbytes <= MAX_SINGLE_REQUEST_SIZE:
            given = given.tobytes()
        if isinstance(given, (bytes, bytearray)) and len(given) <= MAX_SINGLE_REQUEST_SIZE:
            return self._put_object(name, key, given, kept, condition)
        return self._put_stream(name, key, pieces(data), kept, condition)

    def get(
        self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
    ) -> ReadableStream:
        """A stream of the bytes ``[start, end)`` of ``name``, cut at the end of the object.

        One ``GetObject`` (conditional on ``if_match``); an empty range costs a ``HeadObject``
        (to report a missing object, or a changed one).
        """
        key = self._key(name)
        check_range(start, end)
        if end == start:
            info = self._head(name, key, "GetObject")
            if if_match is not None and info.etag != if_match:
                raise ObjectChangedError(
                    f"{shown(name)} in {self._where} changed since its etag was read: read it again"
                )
            return io.BytesIO()
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match is not None:
            request["IfMatch"] = f'"{if_match}"'
        if start or end is not None:
            request["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = self.client.get_object(**request)
        except Exception as error:
            if error_code(error) == "InvalidRange":
                # The range starts at or after the end of the object: nothing to read.
                return io.BytesIO()
            raise self._translated(error, "GetObject", name) from error
        failed = f"cannot read {shown(name)} in {self._where}"
        return GuardedStream(response["Body"], translate=lambda error: _read_error(error, failed))

    def fetch(
        self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
    ) -> tuple[ObjectInfo, bytes]:
        """The bytes ``[start, end)`` of ``name`` with what a ``HeadObject`` would say, in one
        ``GetObject``: :meth:`open_range`, read to its end."""
        info, stream = self.open_range(name, start=start, end=end, if_match=if_match)
        with contextlib.closing(stream):
            data = stream.read() if end is None else read_up_to(stream.read, max(0, end - start))
        return info, data

    def open_range(
        self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
    ) -> tuple[ObjectInfo, ReadableStream]:
        """What a ``HeadObject`` would say of ``name``, and a stream of its bytes
        ``[start, end)``, from one ``GetObject``.

        The :class:`~sealstore.backends.ObjectInfo` has the whole object's size (from the
        answer's ``Content-Range``), its metadata and etag, known as soon as the answer's
        headers arrive: a reader learns the header of an object and starts on its first bytes
        in one request. An empty object cannot be read by range on S3: it costs a
        ``HeadObject`` more.
        """
        key = self._key(name)
        check_range(start, end)
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match is not None:
            request["IfMatch"] = f'"{if_match}"'
        empty = end is not None and end <= start
        if empty:
            end = start + 1  # a ranged GET returns at least one byte; it is dropped
        if start or end is not None:
            request["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = self.client.get_object(**request)
        except Exception as error:
            if error_code(error) != "InvalidRange":
                raise self._translated(error, "GetObject", name) from error
            info = self._head(name, key, "GetObject")  # empty, or start past the end
            if if_match is not None and info.etag != if_match:
                raise ObjectChangedError(
                    f"{shown(name)} in {self._where} changed since its etag was read: read it again"
                ) from error
            return info, io.BytesIO()
        failed = f"cannot read {shown(name)} in {self._where}"
        stream: ReadableStream = GuardedStream(
            response["Body"], translate=lambda error: _read_error(error, failed)
        )
        if empty:
            stream.close()
            stream = io.BytesIO()
        info = ObjectInfo(
            name=name,
            size=_total_size(response),
            metadata=dict(response.get("Metadata") or {}),
            etag=_etag(response.get("ETag")),
            version_id=response.get("VersionId"),
            last_modified=_time(response.get("LastModified")),
        )
        return info, stream

    def uploads(
        self, name: str, *, metadata: Mapping[str, str] | None = None, if_match: str | None = None
    ) -> MultipartTarget:
        """Where a concurrent upload of ``name`` sends its parts (see :class:`MultipartTarget`).

        ``metadata`` is checked here, before any request; ``if_match`` makes the
        ``PutObject`` or ``CompleteMultipartUpload`` conditional, as for :meth:`put`.
        """
        return MultipartTarget(self, name, self._key(name), _check_metadata(metadata), if_match)

    def head(self, name: str) -> ObjectInfo:
        """Size, metadata, etag, version id and time of last write of ``name``."""
        return self._head(name, self._key(name), "HeadObject")

    def delete(self, name: str) -> None:
        """Remove ``name``; :class:`~sealstore.ObjectNotFoundError` if there is none.

        S3 deletes missing keys silently, so a ``HeadObject`` comes first. An object deleted
        by someone else between the two requests is not reported as missing.
        """
        key = self._key(name)
        self._head(name, key, "DeleteObject")
        self._call("DeleteObject", name, self.client.delete_object, self._at(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose name starts with ``prefix``, in name order, with empty metadata.

        Pages are fetched as the iterator advances. Keys that are not valid object names
        (written by other tools, such as ``dir/`` markers) are skipped.
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be str, not {type(prefix).__name__}")
        full = self.prefix + prefix
        if prefix_directory(prefix) is None or len(full.encode("utf-8", "replace")) > (
            MAX_NAME_BYTES
        ):
            return iter(())
        entries = self._walk(full) if self.list_by_directory else self._flat(full)
        return self._infos(entries)

    def copy(
        self,
        source: str,
        destination: str,
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Copy ``source`` to ``destination`` on the server; new ``metadata`` replaces the old.

        Copying an object onto itself with new metadata rewrites only the metadata (its cost
        does not depend on the object's size up to ``copy_threshold``); without metadata it
        changes nothing.
        """
        source_key = self._key(source)
        destination_key = self._key(destination)
        replacement = None if metadata is None else _check_metadata(metadata)
        original = self._head(source, source_key, "CopyObject")
        if if_match is not None and original.etag != if_match:
            raise ObjectChangedError(
                f"{shown(source)} in {self._where} changed since it was read; the copy was not made"
            )
        if source == destination and replacement is None:
            return original
        kept = dict(original.metadata) if replacement is None else replacement
        if original.size > self.copy_threshold:
            return self._copy_parts(original, source_key, destination, destination_key, kept)
        request: dict[str, Any] = {
            **self._at(destination_key),
            "CopySource": {"Bucket": self.bucket, "Key": source_key},
            **_if_match(original.etag),
        }
        if replacement is None:
            request["MetadataDirective"] = "COPY"
        else:
            request["MetadataDirective"] = "REPLACE"
            request["Metadata"] = replacement
        response = self._call("CopyObject", source, self.client.copy_object, request, destination)
        result = response.get("CopyObjectResult") or {}
        return ObjectInfo(
            name=destination,
            size=original.size,
            metadata=kept,
            etag=_etag(result.get("ETag")),
            version_id=response.get("VersionId"),
            last_modified=_time(result.get("LastModified")),
        )

    # -- writing ----------------------------------------------------------------------------

    def _put_object(
        self,
        name: str,
        key: str,
        body: bytes | bytearray,
        metadata: dict[str, str],
        condition: Mapping[str, str],
    ) -> ObjectInfo:
        response = self._call(
            "PutObject",
            name,
            self.client.put_object,
            {**self._at(key), "Body": body, "Metadata": metadata, **condition},
        )
        return ObjectInfo(
            name=name,
            size=len(body),
            metadata=metadata,
            etag=_etag(response.get("ETag")),
            version_id=response.get("VersionId"),
        )

    def _put_stream(
        self,
        name: str,
        key: str,
        data: Iterator[Buffer],
        metadata: dict[str, str],
        condition: Mapping[str, str],
    ) -> ObjectInfo:
        # One buffer, reused for every part: a part is sent before the next is read.
        buffer = bytearray(self.part_size)
        parts = _fill(buffer, data)
        first = next(parts, 0)
        if first < self.part_size:
            del buffer[first:]
            return self._put_object(name, key, buffer, metadata, condition)
        checksum = _default_checksum(self.client)
        upload_id = self._call(
            "CreateMultipartUpload",
            name,
            self.client.create_multipart_upload,
            {**self._at(key), "Metadata": metadata, **checksum},
        )["UploadId"]

        def upload() -> tuple[Any, int]:
            done: builtins.list[dict[str, Any]] = []
            size = 0
            for length in _chain_first(first, parts):
                number = len(done) + 1
                if number > MAX_PARTS:
                    raise BackendError(
                        f"cannot upload {shown(name)} to {self._where}: it is larger than "
                        f"{MAX_PARTS} parts of {self.part_size} bytes; create the backend "
                        "with a larger part_size"
                    )
                if length < len(buffer):
                    del buffer[length:]  # the last part
                request = {**self._at(key), "UploadId": upload_id, "PartNumber": number}
                response = self._call(
                    "UploadPart",
                    name,
                    self.client.upload_part,
                    {**request, "Body": buffer, **checksum},
                )
                done.append({"PartNumber": number, "ETag": response["ETag"]})
                if "ChecksumCRC32" in response and checksum:
                    done[-1]["ChecksumCRC32"] = response["ChecksumCRC32"]
                size += length
            return self._complete(name, key, upload_id, done, condition), size

        response, size = self._aborting(name, key, upload_id, upload)
        return ObjectInfo(
            name=name,
            size=size,
            metadata=metadata,
            etag=_etag(response.get("ETag")),
            version_id=response.get("VersionId"),
        )

    def _copy_parts(
        self,
        original: ObjectInfo,
        source_key: str,
        destination: str,
        destination_key: str,
        metadata: dict[str, str],
    ) -> ObjectInfo:
        size = original.size
        part = max(self.copy_part_size, -(-size // MAX_PARTS))
        upload_id = self._call(
            "CreateMultipartUpload",
            destination,
            self.client.create_multipart_upload,
            {**self._at(destination_key), "Metadata": metadata},
        )["UploadId"]
        copy_source = {"Bucket": self.bucket, "Key": source_key}

        def upload() -> Any:
            done: builtins.list[dict[str, Any]] = []
            for number, offset in enumerate(range(0, size, part), start=1):
                request = {
                    **self._at(destination_key),
                    "UploadId": upload_id,
                    "PartNumber": number,
                    "CopySource": copy_source,
                    "CopySourceRange": f"bytes={offset}-{min(offset + part, size) - 1}",
                    **_if_match(original.etag),
                }
                response = self._call(
                    "UploadPartCopy",
                    original.name,
                    self.client.upload_part_copy,
                    request,
                    destination,
                )
                done.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})
            return self._complete(destination, destination_key, upload_id, done)

        response = self._aborting(destination, destination_key, upload_id, upload)
        return ObjectInfo(
            name=destination,
            size=size,
            metadata=metadata,
            etag=_etag(response.get("ETag")),
            version_id=response.get("VersionId"),
        )

    def _complete(
        self,
        name: str,
        key: str,
        upload_id: str,
        parts: Sequence[Mapping[str, Any]],
        condition: Mapping[str, str] | None = None,
    ) -> Any:
        return self._call(
            "CompleteMultipartUpload",
            name,
            self.client.complete_multipart_upload,
            {
                **self._at(key),
                "UploadId": upload_id,
                "MultipartUpload": {"Parts": parts},
                **(condition or {}),
            },
        )

    def _aborting(self, name: str, key: str, upload_id: str, upload: Callable[[], _T]) -> _T:
        """Run ``upload``; on any failure abort the multipart upload, then re-raise."""
        try:
            return upload()
        except BaseException:
            # Best effort: if the abort fails too (the service went away), the upload stays
            # pending until a lifecycle rule (AbortIncompleteMultipartUpload) removes it.
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(**self._at(key), UploadId=upload_id)
            raise

    # -- reading ----------------------------------------------------------------------------

    def _head(self, name: str, key: str, operation: str) -> ObjectInfo:
        try:
            response = self.client.head_object(**self._at(key))
        except Exception as error:
            translated = self._translated(error, operation, name)
            if isinstance(translated, ObjectNotFoundError):
                # HEAD answers carry no error code: a missing bucket is a bare 404 as well.
                translated = self._missing_bucket(operation, name) or translated
            raise translated from error
        return ObjectInfo(
            name=name,
            size=int(response["ContentLength"]),
            metadata=dict(response.get("Metadata") or {}),
            etag=_etag(response.get("ETag")),
            version_id=response.get("VersionId"),
            last_modified=_time(response.get("LastModified")),
        )

    def _missing_bucket(self, operation: str, name: str) -> BackendError | None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as error:
            if error_code(error) in {"404", "NoSuchBucket", "NotFound"}:
                return self._no_bucket(operation, name)
        return None

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[Any]:
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter is not None:
            request["Delimiter"] = delimiter
        shown_prefix = prefix[len(self.prefix) :]
        while True:
            response = self._call(
                "ListObjectsV2", shown_prefix, self.client.list_objects_v2, request
            )
            yield response
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return
            request["ContinuationToken"] = token

    def _flat(self, prefix: str) -> Iterator[Mapping[str, Any]]:
        previous: str | None = None
        for page in self._pages(prefix, None):
            for entry in page.get("Contents") or ():
                key = entry["Key"]
                if previous is not None and key <= previous:
                    raise BackendError(
                        f"cannot list {self._where}: the server listed {shown(key)} after "
                        f"{shown(previous)}, which is not S3's name order (servers such as "
                        "SeaweedFS list by directory); create the backend with "
                        "list_by_directory=True"
                    )
                previous = key
                yield entry

    def _walk(self, prefix: str) -> Iterator[Mapping[str, Any]]:
        """Objects under ``prefix`` in key order, one directory level per listing."""
        # A stack rather than recursion: a 1024-byte key may have 512 levels.
        levels = [self._level(prefix)]
        while levels:
            found = next(levels[-1], None)
            if found is None:
                levels.pop()
            elif found[1] is None:
                levels.append(self._level(found[0]))
            else:
                yield found[1]

    def _level(self, prefix: str) -> Iterator[tuple[str, Mapping[str, Any] | None]]:
        """The objects (with their entry) and subdirectories (``None``) of one level, merged.

        Pages come in the server's order, where a subdirectory ``d/`` may sit where ``d``
        would (SeaweedFS) or where ``d/`` would (S3); either way nothing later on sorts below
        the last page's names with any trailing ``/`` removed. Entries below that bound are
        released in key order; the rest wait for the next page.
        """
        waiting: builtins.list[tuple[str, int, Mapping[str, Any] | None]] = []
        count = 0
        bound = ""
        for page in self._pages(prefix, "/"):
            for entry in page.get("Contents") or ():
                heapq.heappush(waiting, (entry["Key"], count, entry))
                bound = max(bound, entry["Key"])
                count += 1
            for common in page.get("CommonPrefixes") or ():
                directory = common["Prefix"]
                if directory.startswith(prefix) and len(directory) > len(prefix):
                    heapq.heappush(waiting, (directory, count, None))
                    bound = max(bound, directory.rstrip("/"))
                    count += 1
            while waiting and waiting[0][0] < bound:
                key, _, found = heapq.heappop(waiting)
                yield key, found
        while waiting:
            key, _, found = heapq.heappop(waiting)
            yield key, found

    def _infos(self, entries: Iterator[Mapping[str, Any]]) -> Iterator[ObjectInfo]:
        for entry in entries:
            key = entry["Key"]
            if not key.startswith(self.prefix):
                continue
            name = key[len(self.prefix) :]
            if not is_valid_name(name):
                continue
            yield ObjectInfo(
                name=name,
                size=int(entry["Size"]),
                etag=_etag(entry.get("ETag")),
                last_modified=_time(entry.get("LastModified")),
            )

    # -- names, calls and errors ------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, name: str) -> str:
        check_name(name)
        key = self.prefix + name
        size = len(key.encode("utf-8"))
        if size > MAX_NAME_BYTES:
            raise InvalidNameError(
                f"invalid object name {shown(name)}: with the backend prefix "
                f"{self.prefix!r} the S3 key is {size} UTF-8 bytes; the limit is {MAX_NAME_BYTES}"
            )
        return key

    def _at(self, key: str) -> dict[str, str]:
        return {"Bucket": self.bucket, "Key": key}

    def _call(
        self,
        operation: str,
        name: str,
        method: Callable[..., Any],
        request: Mapping[str, Any],
        destination: str | None = None,
    ) -> Any:
        """``method(**request)``, with its errors translated for ``operation`` on ``name``."""
        try:
            return method(**request)
        except Exception as error:
            translated = self._translated(error, operation, name, destination)
            if translated is error:
                raise
            raise translated from error

    def _translated(
        self, error: Exception, operation: str, name: str, destination: str | None = None
    ) -> Exception:
        """The sealstore error for ``error``; ``error`` itself when it is not from S3."""
        subject = shown(name) if destination is None else f"{shown(name)} to {shown(destination)}"
        failed = f"{operation} of {subject} in {self._where} failed"
        code, status = error_code(error), error_status(error)
        if code is None:
            return _transport_error(error, failed)
        if code in _NOT_FOUND:
            return ObjectNotFoundError(f"no object named {shown(name)} in {self._where}")
        if code == "NoSuchBucket":
            return self._no_bucket(operation, name)
        if code == "PreconditionFailed":
            return ObjectChangedError(
                f"{failed}: the object changed since its etag was read; read it again"
            )
        if code == "KeyTooLongError":
            return InvalidNameError(
                f"invalid object name {shown(name)}: the server refuses the key as too long "
                "(some servers limit each '/'-separated segment to 255 bytes)"
            )
        return BackendError(f"{failed}: S3 answered {code}; {_advice(code, status)}")

    def _no_bucket(self, operation: str, name: str) -> BackendError:
        return BackendError(
            f"{operation} of {shown(name)} failed: the bucket {self.bucket!r} does not exist; "
            "create it, or fix the bucket name given to S3Backend"
        )


def _read_error(error: Exception, failed: str) -> Exception | None:
    """A storage error met while reading a body as :class:`BackendError`; others unchanged."""
    if not (is_botocore_error(error) or isinstance(error, OSError)):
        return None
    return BackendError(f"{failed}: {type(error).__name__}")


def _transport_error(error: Exception, failed: str) -> Exception:
    """A botocore error of its own (no S3 answer) as :class:`BackendError`; others unchanged."""
    if not is_botocore_error(error):
        return error
    # The class name, not str(error): botocore's parameter errors quote values.
    return BackendError(
        f"{failed}: {type(error).__name__}; check the client's endpoint and the network, "
        "and that the service is running"
    )


def _advice(code: str, status: int | None) -> str:
    """What to do about an S3 error code that has no sealstore error of its own."""
    if code in _ACCESS_DENIED:
        return "check the client's credentials and the bucket's policy"
    if code == "PreconditionFailed":
        return "the object changed since its etag was read; try again"
    if code in _UNAVAILABLE or (status is not None and status >= 500):
        return (
            "the service is overloaded or failing; try again later (the client's retry "
            "settings decide how often boto3 retries by itself)"
        )
    return "see the S3 documentation for this error code"


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    kept = check_metadata(metadata)
    for key, value in kept.items():
        if not value or value != value.strip(" "):
            raise ValueError(
                f"the value of metadata key {key!r} is empty or starts or ends with a space; "
                "S3 cannot store such values unchanged"
            )
    return kept


def _fill(buffer: bytearray, data: Iterator[Buffer]) -> Iterator[int]:
    """Copy ``data`` into ``buffer``; yield its length each time it is full, and at the end.

    The buffer is overwritten after each yield: use its content before asking for more.
    A final length below ``len(buffer)`` (possibly 0) marks the end of the data.
    """
    size = len(buffer)
    filled = 0
    for piece in data:
        view = memoryview(piece).cast("B")
        while view:
            take = min(size - filled, len(view))
            buffer[filled : filled + take] = view[:take]
            filled += take
            view = view[take:]
            if filled == size:
                yield size
                filled = 0
    if filled:
        yield filled


def _default_checksum(client: object) -> dict[str, str]:
    """``ChecksumAlgorithm`` for a multipart upload, chosen as boto3's own uploads choose it.

    Clients that compute checksums whenever S3 supports them (botocore's default) send a
    CRC32 with every part; the upload must then declare it, and its completion list each
    part's. Clients set to ``when_required`` (for servers without checksums) send none.
    """
    config = getattr(getattr(client, "meta", None), "config", None)
    if getattr(config, "request_checksum_calculation", None) == "when_supported":
        return {"ChecksumAlgorithm": "CRC32"}
    return {}


def _chain_first(first: int, rest: Iterator[int]) -> Iterator[int]:
    yield first
    yield from rest


def _if_match(etag: str | None) -> dict[str, str]:
    return {} if etag is None else {"CopySourceIfMatch": f'"{etag}"'}


def _etag(value: object) -> str | None:
    # Servers quote etags in some answers and not in others; store them bare.
    return value.strip('"') if isinstance(value, str) and value.strip('"') else None


def _time(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _total_size(response: Mapping[str, Any]) -> int:
    """The whole object's size from a GET answer: ``Content-Range``'s total, else its length."""
    content_range = response.get("ContentRange")
    if isinstance(content_range, str) and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return int(response["ContentLength"])


@final
class MultipartTarget:
    """One object's upload, as the transfer engine drives it: a ``PutObject`` for a small
    body, else a multipart upload whose parts may be sent from several threads at once.

    Every request is translated as :class:`S3Backend` translates its own. boto3 clients are
    safe to share between threads, so the parts share the backend's client.
    """

    def __init__(
        self,
        backend: S3Backend,
        name: str,
        key: str,
        metadata: dict[str, str],
        if_match: str | None,
    ) -> None:
        self.backend = backend
        self.name = name
        self._key = key
        self.metadata = metadata
        self._condition = {} if if_match is None else {"IfMatch": f'"{if_match}"'}
        self._checksum = _default_checksum(backend.client)

    def put_whole(self, body: bytearray) -> ObjectInfo:
        """``PutObject`` of the whole body."""
        return self.backend._put_object(self.name, self._key, body, self.metadata, self._condition)

    def create(self) -> str:
        """``CreateMultipartUpload``; the upload id."""
        request = {**self.backend._at(self._key), "Metadata": self.metadata, **self._checksum}
        client = self.backend.client
        response = self.backend._call(
            "CreateMultipartUpload", self.name, client.create_multipart_upload, request
        )
        return str(response["UploadId"])

    def upload_part(self, upload_id: str, number: int, body: bytearray) -> dict[str, Any]:
        """``UploadPart``; the part's entry for :meth:`complete`."""
        request = {
            **self.backend._at(self._key),
            "UploadId": upload_id,
            "PartNumber": number,
            "Body": body,
            **self._checksum,
        }
        response = self.backend._call(
            "UploadPart", self.name, self.backend.client.upload_part, request
        )
        entry: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response and self._checksum:
            entry["ChecksumCRC32"] = response["ChecksumCRC32"]
        return entry

    def complete(self, upload_id: str, parts: Sequence[Mapping[str, Any]]) -> ObjectInfo:
        """``CompleteMultipartUpload`` (conditional when the upload is)."""
        response = self.backend._complete(self.name, self._key, upload_id, parts, self._condition)
        return ObjectInfo(
            name=self.name,
            size=0,  # the caller knows the size it sent
            metadata=self.metadata,
            etag=_etag(response.get("ETag")),
            version_id=response.get("VersionId"),
        )

    def abort(self, upload_id: str) -> None:
        """``AbortMultipartUpload``, errors ignored: another error is on its way up."""
        with contextlib.suppress(Exception):
            self.backend.client.abort_multipart_upload(
                **self.backend._at(self._key), UploadId=upload_id
            )

    def __repr__(self) -> str:
        return f"MultipartTarget({self.backend!r}, {self.name!r})"
