"""``upload_file`` / ``upload_fileobj`` / ``download_file`` / ``download_fileobj``: boto3's
managed transfers, encrypting, over the store's transfer engine (:mod:`sealstore._transfer`).

Uploads read the plaintext part by part, seal the parts in worker threads and send them
concurrently (one ``PutObject`` for a body of one part or less), in the part layout every
writer shares (``docs/format.md``, multipart uploads). Downloads read the header with the
first part's ``GetObject`` and fetch the other parts concurrently, each conditional on that
answer's etag, releasing authenticated plaintext in order. boto3's ``TransferConfig`` is
honoured for the part size (``multipart_chunksize``, rounded down to whole 16 KiB chunks, at
least 5 MiB), the concurrency (``max_concurrency``; one thread without ``use_threads``) and
``Callback`` (plaintext bytes).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sealstore import _aead, _transfer
from sealstore._io import Writable, read_up_to, write_all
from sealstore.envelope import seal_header
from sealstore.errors import SealstoreError
from sealstore.header import PREFIX_SIZE, header_size, parse_header
from sealstore.placement import parse_detached_header, place, read_marker
from sealstore.s3._errors import translated
from sealstore.s3._read import _refuse_plaintext, _span, _unwrap
from sealstore.s3._sse import customer_key

if TYPE_CHECKING:
    from sealstore.s3.client import EncryptingS3Client

__all__ = ["download_file", "download_fileobj", "upload_file", "upload_fileobj"]

DEFAULT_PART_SIZE: Final = 8 << 20
"""boto3's ``TransferConfig`` defaults: 8 MiB parts, 10 threads."""
DEFAULT_CONCURRENCY: Final = 10
_PART_ARGUMENTS: Final = ("RequestPayer", "ExpectedBucketOwner")
"""Arguments of an upload that every part request repeats."""
_CHECKSUMS: Final = (
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
)
_PLAINTEXT_FIGURES: Final = (*_CHECKSUMS, "ContentLength", "ContentMD5")
"""Figures a caller computed over the plaintext: the server stores ciphertext."""

Callback = Callable[[int], Any] | None


def settings(config: object, size: int | None = None) -> tuple[int, int]:
    """``(part size, concurrency)`` from a boto3 ``TransferConfig`` (or its defaults)."""
    chunk = getattr(config, "multipart_chunksize", DEFAULT_PART_SIZE)
    threads = getattr(config, "max_concurrency", DEFAULT_CONCURRENCY)
    if not getattr(config, "use_threads", True):
        threads = 1
    concurrency = max(1, min(int(threads), _transfer.MAX_CONCURRENCY))
    return _transfer.plaintext_part_size(int(chunk), size), concurrency


def upload_fileobj(
    s3: EncryptingS3Client,
    fileobj: Any,
    bucket: str,
    key: str,
    *,
    extra_args: Mapping[str, Any] | None,
    callback: Callback,
    config: object,
    size: int | None = None,
) -> None:
    """Encrypt what ``fileobj`` yields into ``bucket``/``key`` in concurrent parts."""
    from sealstore.s3.client import user_metadata  # noqa: PLC0415 - client imports this module

    operation = "PutObject"
    params: dict[str, Any] = {**(extra_args or {}), "Bucket": bucket, "Key": key}
    metadata = user_metadata(params, operation)
    encryption = s3.encryption_for(params, operation)
    for name in _PLAINTEXT_FIGURES:
        params.pop(name, None)
    provider, context = s3.provider_and_context(params, encryption, operation)
    part_size, concurrency = settings(config, size)
    try:
        header, immutable, data_key, key_ref = seal_header(provider, context, None)
        sealer = _aead.ChunkSealer.new(data_key, immutable)
        placement, marker = place(header, keeps_metadata=True)
        lead = sealer.prefix if placement == "detached" else header + sealer.prefix
        target = _ClientTarget(s3.client, params, {**metadata, **(marker or {})})
        _, written = _transfer.upload_sealed(
            fileobj,
            sealer,
            target,
            lead=lead,
            part_size=part_size,
            concurrency=concurrency,
            callback=callback,
        )
        provider.record_plaintext_bytes(key_ref, written)
    except SealstoreError as error:
        raise translated(error, operation) from error


def upload_file(
    s3: EncryptingS3Client,
    filename: str | os.PathLike[str],
    bucket: str,
    key: str,
    *,
    extra_args: Mapping[str, Any] | None,
    callback: Callback,
    config: object,
) -> None:
    """:func:`upload_fileobj` of the file ``filename``, its size known in advance."""
    with open(filename, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        upload_fileobj(
            s3,
            source,
            bucket,
            key,
            extra_args=extra_args,
            callback=callback,
            config=config,
            size=size,
        )


def download_fileobj(
    s3: EncryptingS3Client,
    bucket: str,
    key: str,
    fileobj: Writable,
    *,
    extra_args: Mapping[str, Any] | None,
    callback: Callback,
    config: object,
) -> None:
    """Decrypt ``bucket``/``key`` into ``fileobj`` from concurrent ranged reads."""
    operation = "GetObject"
    params: dict[str, Any] = {**(extra_args or {}), "Bucket": bucket, "Key": key}
    customer = customer_key(params, operation)
    part_size, concurrency = settings(config)
    window = _aead.BODY_PREFIX_SIZE + _aead.sealed_run_size(part_size, final=True)
    client = s3.client
    response = _first_get(client, params, window)
    total = _span(response)[2]
    fetch = _Fetch(client, params, response.get("ETag"))
    with contextlib.closing(response["Body"]) as stream:
        try:
            placement, header_bytes = read_marker(response.get("Metadata") or {}, key)
            if placement is None:
                _refuse_plaintext(key, customer, s3.allow_plaintext_reads)
                _copy_plaintext(stream, total, fetch, fileobj, callback)
                return
            if header_bytes is not None:
                header, body_start = parse_detached_header(header_bytes), 0
            else:
                lead = read_up_to(stream.read, PREFIX_SIZE)
                lead += read_up_to(stream.read, header_size(lead) - PREFIX_SIZE)
                header, body_start = parse_header(lead), len(lead)
            data_key = _unwrap(s3.keys, header, customer, key)
            prefix = read_up_to(stream.read, _aead.BODY_PREFIX_SIZE)
            opener = _aead.ChunkOpener(data_key, header.immutable, prefix)
            # The other parts are fetched while the first one's bytes are still arriving.
            _transfer.download_sealed(
                fetch,
                opener,
                fileobj,
                body_start=body_start,
                body_size=total - body_start,
                first=prefix,
                first_stream=(stream, window - body_start),
                part_size=part_size,
                concurrency=concurrency,
                callback=callback,
            )
        except SealstoreError as error:
            raise translated(error, operation) from error


def download_file(
    s3: EncryptingS3Client,
    bucket: str,
    key: str,
    filename: str | os.PathLike[str],
    *,
    extra_args: Mapping[str, Any] | None,
    callback: Callback,
    config: object,
) -> None:
    """:func:`download_fileobj` into a temporary file beside ``filename``, renamed over it
    once every byte is authenticated (as boto3 does): a failed download leaves no file."""
    path = Path(filename)
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        with temporary.open("wb") as sink:
            download_fileobj(
                s3, bucket, key, sink, extra_args=extra_args, callback=callback, config=config
            )
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _first_get(client: Any, params: Mapping[str, Any], window: int) -> Any:
    """The first part with the object's metadata; an empty object answers without a range."""
    try:
        return client.get_object(**params, Range=f"bytes=0-{window - 1}")
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        if code != "InvalidRange":
            raise
    return client.get_object(**params)


class _Fetch:
    """Ranged reads of the version the first answer came from (``IfMatch`` its etag)."""

    def __init__(self, client: Any, params: Mapping[str, Any], etag: object) -> None:
        self._client = client
        conditions = ("IfMatch", "IfNoneMatch", "IfModifiedSince", "IfUnmodifiedSince")
        self._params = {k: v for k, v in params.items() if k not in conditions}
        if isinstance(etag, str):
            self._params["IfMatch"] = etag

    def __call__(self, start: int, end: int) -> bytes:
        response = self._client.get_object(**self._params, Range=f"bytes={start}-{end - 1}")
        with contextlib.closing(response["Body"]) as stream:
            return read_up_to(stream.read, end - start)


def _copy_plaintext(
    stream: Any, total: int, fetch: _Fetch, fileobj: Writable, callback: Callback
) -> None:
    """An object the client did not encrypt (plaintext reads allowed): the first answer's
    bytes, then the rest in one more ranged read if the object is larger."""
    copied = 0
    for source in (stream, None):
        while copied < total:
            piece = (
                stream.read(1 << 20)
                if source is not None
                else fetch(copied, min(total, copied + (8 << 20)))
            )
            if not piece:
                break
            write_all(fileobj, memoryview(piece))
            copied += len(piece)
            if callback is not None:
                callback(len(piece))


class _ClientTarget:
    """One object's upload through the wrapped client, as the transfer engine drives it."""

    def __init__(self, client: Any, params: Mapping[str, Any], metadata: dict[str, str]) -> None:
        self._client = client
        self._params = dict(params)
        self._metadata = metadata
        self._per_part = {k: params[k] for k in _PART_ARGUMENTS if k in params}
        self._per_part.update(Bucket=params["Bucket"], Key=params["Key"])
        algorithm = params.get("ChecksumAlgorithm")
        config = getattr(getattr(client, "meta", None), "config", None)
        if algorithm is None and getattr(config, "request_checksum_calculation", None) == (
            "when_supported"
        ):
            algorithm = "CRC32"  # as boto3's own uploads declare it
        self._checksum = {} if algorithm is None else {"ChecksumAlgorithm": algorithm}

    def put_whole(self, body: bytearray) -> Any:
        return self._client.put_object(**self._params, Body=body, Metadata=self._metadata)

    def create(self) -> str:
        params = {**self._params, **self._checksum}
        response = self._client.create_multipart_upload(**params, Metadata=self._metadata)
        return str(response["UploadId"])

    def upload_part(self, upload_id: str, number: int, body: bytearray) -> dict[str, Any]:
        response = self._client.upload_part(
            **self._per_part, **self._checksum, UploadId=upload_id, PartNumber=number, Body=body
        )
        entry: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
        if self._checksum:
            entry.update({k: response[k] for k in _CHECKSUMS if k in response})
        return entry

    def complete(self, upload_id: str, parts: Sequence[Mapping[str, Any]]) -> Any:
        return self._client.complete_multipart_upload(
            **self._per_part, UploadId=upload_id, MultipartUpload={"Parts": list(parts)}
        )

    def abort(self, upload_id: str) -> None:
        with contextlib.suppress(Exception):
            self._client.abort_multipart_upload(**self._per_part, UploadId=upload_id)
