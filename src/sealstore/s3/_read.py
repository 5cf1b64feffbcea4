"""``get_object`` and ``head_object``: plaintext answers from as few requests as possible.

A stored body is its 56-byte prefix, then chunks of 16400 bytes (the last shorter), so the
bytes that hold a plaintext range are known before the object is seen, assuming the header is
detached (in metadata), as the client and the store write it whenever it fits. The first
``GetObject`` asks for exactly those bytes, from the start of the object when they are near
it (one request in all), and its metadata brings the header; the body's prefix, when the
range is far from the start, costs one more small request. A suffix range asks the server for
enough of the end. Only inline objects (a header too big for metadata) can need a third.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

import attrs

from sealstore import _aead
from sealstore._io import read_up_to
from sealstore.envelope import open_header
from sealstore.errors import ContextMismatchError, SealstoreError
from sealstore.header import MAX_HEADER_SIZE, PREFIX_SIZE, Header, header_size, parse_header
from sealstore.placement import METADATA_KEY, parse_detached_header, read_marker
from sealstore.s3._body import DecryptingBody, discard, sealed_size
from sealstore.s3._errors import raise_client_error, translated
from sealstore.s3._sse import CustomerKey, Keys, customer_key, echo
from sealstore.store import OBJECT_CONTEXT_KEY

__all__ = ["NEAR_START", "get_object", "head_object", "plain_fields"]

NEAR_START: Final = 256 << 10
"""A range whose first chunk starts this close to the body's start is read from the start,
prefix included, in one request: cheaper than a second request for the prefix."""

_PREFIX: Final = _aead.BODY_PREFIX_SIZE
_CHUNK: Final = _aead.CHUNK_SIZE
_SEALED: Final = _aead.SEALED_CHUNK_SIZE
_TAG: Final = _aead.TAG_SIZE
_CONDITIONS: Final = ("IfMatch", "IfNoneMatch", "IfModifiedSince", "IfUnmodifiedSince")
_SERVER_FIELDS: Final = (
    "Body",
    "ContentLength",
    "ContentRange",
    "ContentMD5",
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
    "ChecksumType",
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "BucketKeyEnabled",
    "SSECustomerAlgorithm",
    "SSECustomerKeyMD5",
)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(value: object) -> tuple[int | None, int | None] | None:
    """``(start, end)`` (inclusive; ``end`` ``None`` when open), ``(None, n)`` for the last
    ``n`` bytes, or ``None`` for a value S3 ignores (it then answers the whole object)."""
    found = _RANGE.fullmatch(str(value).strip())
    if found is None or not (found[1] or found[2]):
        return None
    if not found[1]:
        return None, int(found[2])
    start, end = int(found[1]), int(found[2]) if found[2] else None
    return None if end is not None and end < start else (start, end)


def plain_fields(response: Mapping[str, Any]) -> dict[str, Any]:
    """A server answer without its ciphertext figures and its own SSE fields."""
    fields = {k: v for k, v in response.items() if k not in _SERVER_FIELDS}
    if "Metadata" in fields:
        fields["Metadata"] = {k: v for k, v in fields["Metadata"].items() if k != METADATA_KEY}
    return fields


class _Located:
    """What the first answer told: the header, where the body starts, the stored size."""

    def __init__(self, header: Header, body_start: int, total: int) -> None:
        self.header = header
        self.body_start = body_start
        self.total = total
        body = total - body_start
        self.size = _aead.plaintext_size(body)
        self.final_index = self.size // _CHUNK
        self.final_sealed = body - _PREFIX - self.final_index * _SEALED

    def chunk_start(self, index: int) -> int:
        return self.body_start + _PREFIX + index * _SEALED

    def chunk_end(self, index: int) -> int:
        """The stored offset of the last byte of chunk ``index``."""
        return self.chunk_start(index) + sealed_size(index, self.final_index, self.final_sealed) - 1

    def chunk_at(self, stored: int) -> int:
        return max(0, stored - self.body_start - _PREFIX) // _SEALED


class _Fetcher:
    """Follow-up requests for the same object version as the first answer."""

    def __init__(self, client: Any, base: Mapping[str, Any], etag: object) -> None:
        self._client = client
        self._base = dict(base)
        if isinstance(etag, str):
            self._base["IfMatch"] = etag

    def stream(self, start: int, end: int) -> Any:
        return self._client.get_object(**self._base, Range=f"bytes={start}-{end}")["Body"]

    def bytes(self, start: int, end: int) -> bytes:
        body = self.stream(start, end)
        try:
            return read_up_to(body.read, end - start + 1)
        finally:
            body.close()


def _first_range(wanted: tuple[int | None, int | None] | None) -> str | None:
    """The stored range to ask for first, assuming a detached header."""
    if wanted is None:
        return None
    start, end = wanted
    if start is None:
        assert end is not None
        return f"bytes=-{_PREFIX + (end // _CHUNK + 2) * _SEALED}"
    first = _PREFIX + (start // _CHUNK) * _SEALED
    stored_start = 0 if first - _PREFIX <= NEAR_START else first
    if end is None:
        return f"bytes={stored_start}-"
    # 16 bytes past the range's last chunk: an empty final chunk comes in the same answer.
    return f"bytes={stored_start}-{_PREFIX + (end // _CHUNK + 1) * _SEALED + _TAG - 1}"


def _span(response: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(first, last, total)`` stored bytes of an answer."""
    found = _CONTENT_RANGE.fullmatch(str(response.get("ContentRange", "")))
    if found is not None:
        return int(found[1]), int(found[2]), int(found[3])
    total = int(response.get("ContentLength", 0))
    return 0, total - 1, total


def get_object(
    client: Any, keys: Keys, params: MutableMapping[str, Any], *, allow_plaintext: bool
) -> dict[str, Any]:
    """``GetObject`` through the client: see the module's docstring."""
    operation = "GetObject"
    customer = customer_key(params, operation)
    given_range = params.pop("Range", None)
    wanted = None if given_range is None else parse_range(given_range)
    if wanted == (None, 0):
        raise_client_error(operation, "InvalidRange", "The requested range is not satisfiable", 416)
    part = params.get("PartNumber")
    first_range = None if part is not None else _first_range(wanted)
    request = dict(params) if first_range is None else {**params, "Range": first_range}
    response = client.get_object(**request)
    stream = response["Body"]
    try:
        placement, header_bytes = read_marker(response.get("Metadata") or {}, params["Key"])
        if placement is None:
            _refuse_plaintext(params["Key"], customer, allow_plaintext)
            if first_range is None:
                return dict(response)  # what the caller asked for, as it is
            stream.close()
            request = dict(params) if given_range is None else {**params, "Range": given_range}
            plain: dict[str, Any] = client.get_object(**request)
            return plain
        base = {k: v for k, v in params.items() if k not in _CONDITIONS and k != "PartNumber"}
        fetcher = _Fetcher(client, base, response.get("ETag"))
        asked = _Asked(params["Key"], customer, wanted, part)
        return _decrypting(response, fetcher, keys, header_bytes, asked)
    except SealstoreError as error:
        stream.close()
        raise translated(error, operation) from error
    except BaseException:
        stream.close()
        raise


@attrs.frozen
class _Asked:
    """What the caller asked ``GetObject`` for, in plaintext terms."""

    key: str
    customer: CustomerKey | None = attrs.field(repr=False)
    wanted: tuple[int | None, int | None] | None
    part: object


class _Stream:
    """The first answer's stream and where it stands in the stored object."""

    def __init__(self, stream: Any, fetcher: _Fetcher, position: int, last: int) -> None:
        self.stream = stream
        self.fetcher = fetcher
        self.position = position
        self.last = last

    def prefix_and_chunks(self, body_start: int, start: int, end: int) -> tuple[bytes, Any]:
        """The body's prefix, and a stream positioned at stored byte ``start`` that runs to
        ``end``: the first answer's when it covers them, else as few requests as possible."""
        prefix = None
        stream = self.stream
        if stream is not None and self.position <= body_start < body_start + _PREFIX <= self.last:
            discard(stream, body_start - self.position)
            prefix = read_up_to(stream.read, _PREFIX)
            self.position = body_start + _PREFIX
        if stream is None or self.position > start or self.last < end:
            if stream is not None:
                stream.close()
            near = start - body_start - _PREFIX <= NEAR_START
            stream = self.fetcher.stream(body_start if prefix is None and near else start, end)
            self.position = start
            if prefix is None and near:
                prefix = read_up_to(stream.read, _PREFIX)
                self.position = body_start + _PREFIX
        if prefix is None:
            prefix = self.fetcher.bytes(body_start, body_start + _PREFIX - 1)
        discard(stream, start - self.position)
        return prefix, stream


def _wanted_span(located: _Located, asked: _Asked, first: int, last: int) -> tuple[int, int]:
    """The plaintext bytes ``[start, end]`` to answer with; 416 for a range past the end."""
    size = located.size
    if asked.part is not None:
        start = located.chunk_at(first) * _CHUNK
        return start, min(size, (located.chunk_at(last) + 1) * _CHUNK) - 1
    if asked.wanted is None:
        return 0, size - 1
    given_start, given_end = asked.wanted
    if given_start is None:
        assert given_end is not None
        return max(0, size - given_end), size - 1
    if given_start >= size:
        raise_client_error(
            "GetObject", "InvalidRange", "The requested range is not satisfiable", 416
        )
    return given_start, size - 1 if given_end is None else min(given_end, size - 1)


def _decrypting(
    response: Mapping[str, Any],
    fetcher: _Fetcher,
    keys: Keys,
    header_bytes: bytes | None,
    asked: _Asked,
) -> dict[str, Any]:
    stream = response["Body"]
    first, last, total = _span(response)
    source = _Stream(stream, fetcher, first, last)
    if header_bytes is not None:
        header, body_start = parse_detached_header(header_bytes), 0
    else:
        header, source.stream = _inline_header(stream, fetcher, first, last, total)
        body_start = source.position = header.size
        if source.stream is None:
            source.position, source.last = 0, -1
    located = _Located(header, body_start, total)
    data_key = _unwrap(keys, header, asked.customer, asked.key)
    start, end = _wanted_span(located, asked, first, last)
    first_chunk = start // _CHUNK
    last_chunk = located.final_index if end >= located.size - 1 else end // _CHUNK
    prefix, stream = source.prefix_and_chunks(
        body_start, located.chunk_start(first_chunk), located.chunk_end(last_chunk)
    )
    body = DecryptingBody(
        stream,
        _aead.ChunkOpener(data_key, header.immutable, prefix),
        first=first_chunk,
        last=last_chunk,
        skip=start - first_chunk * _CHUNK,
        length=max(0, end - start + 1),
        final_index=located.final_index,
        final_sealed=located.final_sealed,
    )
    answer = plain_fields(response)
    answer.update(Body=body, ContentLength=max(0, end - start + 1))
    if asked.wanted is not None or asked.part is not None:
        answer["ContentRange"] = f"bytes {start}-{end}/{located.size}"
    answer.update(echo(header, asked.customer))
    return answer


def _inline_header(
    stream: Any, fetcher: _Fetcher, first: int, last: int, total: int
) -> tuple[Header, Any]:
    """The header in front of the body, from the answer's stream when it starts with it.

    Returns the stream positioned after the header, or ``None`` when it had to be fetched.
    """
    if first == 0 and last + 1 >= PREFIX_SIZE:
        prefix = read_up_to(stream.read, PREFIX_SIZE)
        size = header_size(prefix)
        if last + 1 >= size:
            return parse_header(prefix + read_up_to(stream.read, size - PREFIX_SIZE)), stream
    stream.close()
    data = fetcher.bytes(0, min(total, MAX_HEADER_SIZE) - 1)
    return parse_header(data[: header_size(data[:PREFIX_SIZE])]), None


def _unwrap(keys: Keys, header: Header, customer: CustomerKey | None, key: str) -> bytes:
    """The data key, once the object is known to be bound to ``key``."""
    provider = keys.for_read(header, customer, "GetObject")
    data_key = open_header(header, provider, None)
    if header.context.get(OBJECT_CONTEXT_KEY) != key:
        # The header authenticated, so it was written for another key and moved here.
        raise ContextMismatchError(
            differing=(OBJECT_CONTEXT_KEY,),
            advice=f"{key!r} holds ciphertext written for another key: it was copied or moved "
            "by a tool that does not re-encrypt (use the client's copy_object)",
        )
    return data_key


def _refuse_plaintext(key: str, customer: CustomerKey | None, allow_plaintext: bool) -> None:
    """Refuse an object the client did not encrypt, unless plaintext reads are allowed."""
    if customer is not None:
        raise_client_error(
            "GetObject",
            "InvalidArgument",
            "The encryption parameters are not applicable to this object: it is not encrypted",
        )
    if not allow_plaintext:
        raise_client_error(
            "GetObject",
            "InvalidRequest",
            f"object {key!r} is not encrypted; create the client with "
            "allow_plaintext_reads=True to read objects written without it",
        )


def head_object(
    client: Any, keys: Keys, params: MutableMapping[str, Any], *, allow_plaintext: bool
) -> dict[str, Any]:
    """``HeadObject``: the plaintext size, and the customer key checked for SSE-C objects."""
    operation = "HeadObject"
    customer = customer_key(params, operation)
    params.pop("Range", None)
    response = client.head_object(**params)
    try:
        placement, header_bytes = read_marker(response.get("Metadata") or {}, params["Key"])
        if placement is None:
            if not allow_plaintext or customer is not None:
                raise_client_error(
                    operation,
                    "InvalidRequest" if customer is None else "InvalidArgument",
                    f"object {params['Key']!r} is not encrypted",
                )
            return dict(response)
        first, last, total = _span(response)
        if header_bytes is None:
            same = {k: params[k] for k in ("Bucket", "Key", "VersionId") if k in params}
            fetcher = _Fetcher(client, same, response.get("ETag"))
            data = fetcher.bytes(0, min(total, MAX_HEADER_SIZE) - 1)
            header = parse_header(data[: header_size(data[:PREFIX_SIZE])])
            body_start = header.size
        else:
            header, body_start = parse_detached_header(header_bytes), 0
        provider = keys.for_read(header, customer, operation)
        if customer is not None:
            provider.unwrap_data_key(header)  # proves the key, as S3 does on HEAD
        located = _Located(header, body_start, total)
        size = located.size
        if params.get("PartNumber") is not None:
            start = located.chunk_at(first) * _CHUNK
            size = max(0, min(size, (located.chunk_at(last) + 1) * _CHUNK) - start)
    except SealstoreError as error:
        raise translated(error, operation) from error
    answer = plain_fields(response)
    answer["ContentLength"] = size
    answer.update(echo(header, customer))
    return answer
