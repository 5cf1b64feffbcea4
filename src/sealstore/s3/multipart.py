"""Multipart uploads of encrypted objects: each part is a run of the body's chunks.

The stored object is one ordinary body (``docs/format.md``, "Multipart uploads"): its 56-byte
prefix, then chunks. Part 1 starts with the prefix; part ``N`` of plaintext size ``P`` (a
multiple of 16 KiB) holds chunks ``(N-1)*P/16384`` to ``N*P/16384 - 1`` when every part
before it has size ``P``. Since a chunk is sealed by its index alone, such parts can be
encrypted and uploaded in any order, by any client or process that can read the upload's
state: the sealed header, the body prefix and the declared part size, stored under
:data:`UPLOADS_PREFIX` + upload id, never a plaintext key.

The body must end with the short final chunk. A part that cannot be followed by another
(smaller than ``P``, or than S3's 5 MiB minimum, or not a multiple of 16 KiB) ends with it.
If the last part is full-size, completing the upload adds one more part: the empty final
chunk, 16 bytes. Parts of other sizes (S3 allows 5 MiB + 1) work when they come in order
through one client: it seals the whole chunks of each part and carries the rest into the next
part; completing the upload then adds a last part with what was carried, as the final chunk.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

import attrs

from sealstore import _aead
from sealstore._aws import error_code
from sealstore.envelope import open_header, seal_header
from sealstore.errors import SealstoreError
from sealstore.header import Header, Mode, parse_header
from sealstore.placement import place
from sealstore.s3._bucket import RESERVED_PREFIX
from sealstore.s3._errors import raise_client_error, translated
from sealstore.s3._listing import part_plaintext_size
from sealstore.s3._read import plain_fields
from sealstore.s3._sse import CustomerKey, customer_key, echo

if TYPE_CHECKING:
    from sealstore.s3.client import EncryptingS3Client

__all__ = ["MIN_PART_SIZE", "UPLOADS_PREFIX", "Uploads"]

UPLOADS_PREFIX: Final = RESERVED_PREFIX + "uploads/"
"""Where each upload's state lives while it is in progress (removed on complete and abort)."""
MIN_PART_SIZE: Final = 5 << 20
"""S3's smallest part but the last: a smaller part ends the object."""
_CHUNK: Final = _aead.CHUNK_SIZE
_SEALED: Final = _aead.SEALED_CHUNK_SIZE
_PREFIX: Final = _aead.BODY_PREFIX_SIZE
_MAX_PARTS: Final = 10_000
_KEEP: Final = 4096
"""Uploads whose sealer a client keeps in memory (least recently used dropped first)."""


@attrs.define(eq=False)
class _Upload:
    """What one client knows of an upload in progress."""

    header: Header
    sealer: _aead.ChunkSealer = attrs.field(repr=False)
    part_size: int | None
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    sequential: bool = True
    """Every part so far came through this client, in order from 1."""
    next_number: int = 1
    next_index: int = 0
    carry: bytes = attrs.field(default=b"", repr=False)
    unaligned: bool = False
    uploaded: dict[int, str] = attrs.field(factory=dict)
    """The etag of each part this client uploaded the in-order way."""

    def sequential_owner(self, listed: dict[int, tuple[str, int]]) -> bool:
        """Whether every listed part is one this client uploaded the in-order way."""
        return bool(self.uploaded) and all(
            self.uploaded.get(number) == etag for number, (etag, _) in listed.items()
        )


def _state_key(upload_id: str) -> str:
    return UPLOADS_PREFIX + upload_id


def _ends_body(number: int, stored: int) -> bool:
    """Whether stored part ``number`` ends with the final chunk (its size says so)."""
    return (stored - (_PREFIX if number == 1 else 0)) % _SEALED != 0


def _chunks_in(number: int, stored: int) -> int:
    sealed = stored - (_PREFIX if number == 1 else 0)
    return -(-sealed // _SEALED)


class Uploads:
    """The multipart operations of one :class:`~sealstore.s3.EncryptingS3Client`."""

    def __init__(self, client: EncryptingS3Client) -> None:
        self._owner = client
        self._lock = threading.Lock()
        self._known: OrderedDict[str, _Upload] = OrderedDict()

    @property
    def _client(self) -> Any:
        return self._owner.client

    def create(self, params: dict[str, Any], part_size: int | None) -> dict[str, Any]:
        """``CreateMultipartUpload``, then the upload's state stored in the bucket."""
        operation = "CreateMultipartUpload"
        if part_size is not None and (part_size < MIN_PART_SIZE or part_size % _CHUNK):
            raise_client_error(
                operation,
                "InvalidArgument",
                "part_size must be a multiple of 16384 bytes, at least 5 MiB",
            )
        encryption = self._owner.encryption_for(params, operation)
        provider, context = self._owner.provider_and_context(params, encryption, operation)
        from sealstore.s3.client import user_metadata  # noqa: PLC0415 - a cycle otherwise

        metadata = user_metadata(params, operation)
        try:
            header, immutable, data_key, _ = seal_header(provider, context, None)
        except SealstoreError as error:
            raise translated(error, operation) from error
        self._owner.keys.check_kms_key(parse_header(header), operation)
        placement, marker = place(header, keeps_metadata=True)
        if placement != "detached":
            raise_client_error(
                operation,
                "InvalidArgument",
                "the encryption context is too large for a multipart upload: its header must "
                "fit in the object's metadata",
            )
        sealer = _aead.ChunkSealer.new(data_key, immutable)
        response = self._client.create_multipart_upload(
            **params, Metadata={**metadata, **(marker or {})}
        )
        upload_id = response["UploadId"]
        upload = _Upload(parse_header(header), sealer, part_size)
        try:
            self._save(params["Bucket"], upload_id, params["Key"], upload, header)
        except BaseException:
            self._client.abort_multipart_upload(
                Bucket=params["Bucket"], Key=params["Key"], UploadId=upload_id
            )
            raise
        self._remember(upload_id, upload)
        answer = plain_fields(response)
        answer.update(echo(upload.header, encryption.customer, encryption.kms_key_id))
        return answer

    def upload_part(self, params: dict[str, Any]) -> dict[str, Any]:
        """``UploadPart``: the part's chunks sealed by their index, checked before sending."""
        operation = "UploadPart"
        from sealstore.s3.client import CHECKSUM_VALUES, body_bytes, check_md5  # noqa: PLC0415

        customer = customer_key(params, operation)
        data = body_bytes(params.pop("Body", b""))
        check_md5(params.pop("ContentMD5", None), data, operation)
        for name in (*CHECKSUM_VALUES, "ContentLength"):
            params.pop(name, None)
        number = int(params["PartNumber"])
        upload = self._upload(params, customer, operation)
        with upload.lock:
            sealed, sequential = self._seal(upload, params, number, data, operation)
        response = self._client.upload_part(**params, Body=sealed)
        if sequential:
            with upload.lock:
                upload.uploaded[number] = response.get("ETag", "")
        answer = plain_fields(response)
        # The server's checksums of the stored part: completing the upload names them.
        answer.update({k: v for k, v in response.items() if k.startswith("Checksum")})
        answer.update(echo(upload.header, customer))
        return answer

    def _seal(
        self, upload: _Upload, params: dict[str, Any], number: int, data: bytes, operation: str
    ) -> tuple[bytes, bool]:
        """The stored bytes of part ``number``, and whether it went the in-order way."""
        if upload.sequential and number == upload.next_number:
            text = upload.carry + data
            ends = len(text) < MIN_PART_SIZE
            whole = len(text) if ends else len(text) - len(text) % _CHUNK
            if not ends and whole != len(text) and not upload.unaligned:
                # Other clients must now refuse to add parts: they cannot know the carry.
                upload.unaligned = True
                self._save(params["Bucket"], params["UploadId"], params["Key"], upload, None)
            out = self._run(upload, upload.next_index, memoryview(text)[:whole], number, ends)
            upload.next_index += whole // _CHUNK
            upload.carry = b"" if ends else text[whole:]
            upload.next_number += 1
            if ends:
                upload.sequential = False  # nothing may follow the final chunk
            return out, True
        if upload.carry or upload.unaligned:
            raise_client_error(
                operation,
                "InvalidArgument",
                "this upload has parts whose size is not a multiple of 16384 bytes: its parts "
                f"must come in order through one client (part {upload.next_number} expected)",
            )
        upload.sequential = False
        size = len(data)
        aligned_full = size % _CHUNK == 0 and size >= MIN_PART_SIZE
        if aligned_full and (upload.part_size is None or size == upload.part_size):
            upload.part_size = size
            return self._run(upload, (number - 1) * size // _CHUNK, data, number, False), False
        part_size = upload.part_size if number > 1 else size
        if part_size is None:
            part_size = self._learn_part_size(params, number, operation)
            upload.part_size = part_size
        if size > part_size:
            raise_client_error(
                operation,
                "InvalidArgument",
                f"part {number} holds {size} bytes, more than the upload's part size "
                f"({part_size}); parts of other sizes must come in order through one client",
            )
        first = (number - 1) * part_size // _CHUNK
        return self._run(upload, first, data, number, True), False

    def _run(
        self, upload: _Upload, first: int, text: bytes | memoryview, number: int, final: bool
    ) -> bytes:
        head = upload.sealer.prefix if number == 1 else b""
        out = bytearray(len(head) + _aead.sealed_run_size(len(text), final=final))
        out[: len(head)] = head
        with memoryview(out) as view:
            upload.sealer.seal_run_into(first, text, view[len(head) :], final=final)
        return bytes(out)

    def _learn_part_size(self, params: dict[str, Any], number: int, operation: str) -> int:
        """The part size of an upload whose last part comes first to this client: from a
        full part already uploaded (``ListParts``)."""
        listed = self._client.list_parts(
            Bucket=params["Bucket"], Key=params["Key"], UploadId=params["UploadId"]
        )
        for part in listed.get("Parts") or ():
            stored, found = int(part["Size"]), int(part["PartNumber"])
            if found < number and not _ends_body(found, stored):
                return _chunks_in(found, stored) * _CHUNK
        raise_client_error(
            operation,
            "InvalidArgument",
            f"part {number} ends the object, but its first chunk depends on the part size, "
            "which no full-size part uploaded yet tells: upload a full-size part first, or "
            "declare the size with create_multipart_upload(part_size=...)",
        )

    def complete(self, params: dict[str, Any]) -> dict[str, Any]:
        """``CompleteMultipartUpload``: the layout checked, the final chunk added if needed."""
        operation = "CompleteMultipartUpload"
        customer = customer_key(params, operation)
        given = [int(p["PartNumber"]) for p in params["MultipartUpload"]["Parts"]]
        listed = self._listed(params)
        numbers = sorted(listed)
        if given != list(range(1, len(given) + 1)) or given != numbers:
            raise_client_error(
                operation,
                "InvalidPart",
                "an encrypted object's parts must be numbered 1, 2, 3... with no gap, all "
                "uploaded, and listed in order",
            )
        upload = self._known_upload(params["UploadId"])
        last = numbers[-1]
        needs_tail = not _ends_body(last, listed[last][1])
        if upload is not None and upload.sequential_owner(listed):
            tail_index, tail = upload.next_index, upload.carry
        else:
            # Read again: another client may have carried bytes this one never saw.
            state = self._state(params)
            if state.get("unaligned") or (upload is not None and upload.unaligned):
                raise_client_error(
                    operation,
                    "InvalidPart",
                    "this upload has parts whose size is not a multiple of 16384 bytes: it "
                    "must be completed by the client that uploaded them, in order",
                )
            if upload is None:
                upload = self._load(state, params, customer, operation)
            tail_index, tail = self._check_uniform(listed, numbers, operation), b""
        parts = list(params["MultipartUpload"]["Parts"])
        if needs_tail:
            if last >= _MAX_PARTS:
                raise_client_error(
                    operation, "InvalidPart", "no part number is left for the final chunk"
                )
            sealed = bytearray(_aead.sealed_run_size(len(tail), final=True))
            upload.sealer.seal_run_into(tail_index, tail, sealed, final=True)
            response = self._client.upload_part(
                Bucket=params["Bucket"],
                Key=params["Key"],
                UploadId=params["UploadId"],
                PartNumber=last + 1,
                Body=bytes(sealed),
            )
            entry = {"PartNumber": last + 1, "ETag": response["ETag"]}
            for name in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256"):
                if name in response and any(name in p for p in parts):
                    entry[name] = response[name]
            parts.append(entry)
        request = {**params, "MultipartUpload": {**params["MultipartUpload"], "Parts": parts}}
        response = self._client.complete_multipart_upload(**request)
        self._forget(params)
        answer = plain_fields(response)
        answer.update(echo(upload.header, customer))
        return answer

    def _check_uniform(
        self, listed: dict[int, tuple[str, int]], numbers: list[int], operation: str
    ) -> int:
        """The index after the last chunk, once every part but the last is known full-size
        and of one size; raises otherwise (the body would have holes or overlaps)."""
        counts = [_chunks_in(n, listed[n][1]) for n in numbers]
        for number in numbers[:-1]:
            if _ends_body(number, listed[number][1]) or counts[number - 1] != counts[0]:
                raise_client_error(
                    operation,
                    "InvalidPart",
                    f"part {number} does not have the size of part 1 (every part but the last "
                    "must be of one size, a multiple of 16384 bytes)",
                )
        if len(numbers) > 1 and counts[-1] > counts[0]:
            raise_client_error(operation, "InvalidPart", "the last part is larger than the others")
        last = numbers[-1]
        chunks = counts[0] * (len(numbers) - 1) + counts[-1]
        return chunks - (1 if _ends_body(last, listed[last][1]) else 0)

    def abort(self, params: dict[str, Any]) -> Any:
        """``AbortMultipartUpload``, then the upload's state removed."""
        response = self._client.abort_multipart_upload(**params)
        self._forget(params)
        return response

    def list_parts(self, params: dict[str, Any]) -> dict[str, Any]:
        """``ListParts`` with plaintext sizes."""
        customer_key(params, "ListParts")  # checked, and kept from the server
        response = self._client.list_parts(**params)
        answer = plain_fields(response)
        if "Parts" in response:
            answer["Parts"] = [
                {**part, "Size": part_plaintext_size(int(part["PartNumber"]), int(part["Size"]))}
                for part in response["Parts"]
            ]
        return answer

    # -- state ------------------------------------------------------------------------------

    def _listed(self, params: dict[str, Any]) -> dict[int, tuple[str, int]]:
        """Every uploaded part: number → (etag, stored size)."""
        found: dict[int, tuple[str, int]] = {}
        request = {"Bucket": params["Bucket"], "Key": params["Key"], "UploadId": params["UploadId"]}
        while True:
            response = self._client.list_parts(**request)
            for part in response.get("Parts") or ():
                found[int(part["PartNumber"])] = (part.get("ETag", ""), int(part["Size"]))
            if not response.get("IsTruncated"):
                return found
            request["PartNumberMarker"] = response["NextPartNumberMarker"]

    def _save(
        self, bucket: str, upload_id: str, key: str, upload: _Upload, header: bytes | None
    ) -> None:
        document = {
            "key": key,
            "header": base64.b64encode(header or upload.header.encode()).decode(),
            "prefix": base64.b64encode(upload.sealer.prefix).decode(),
            "part_size": upload.part_size,
            "unaligned": upload.unaligned,
        }
        self._client.put_object(
            Bucket=bucket,
            Key=_state_key(upload_id),
            Body=json.dumps(document).encode(),
            ContentType="application/json",
        )

    def _state(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            body = self._client.get_object(
                Bucket=params["Bucket"], Key=_state_key(params["UploadId"])
            )["Body"]
        except Exception as error:
            if error_code(error) in {"NoSuchKey", "404"}:
                raise_client_error(
                    "UploadPart",
                    "NoSuchUpload",
                    "The specified multipart upload does not exist (or was not created "
                    "through an encrypting client)",
                    404,
                )
            raise
        with body:
            state: dict[str, Any] = json.loads(body.read())
        if state.get("key") != params["Key"]:
            raise_client_error("UploadPart", "NoSuchUpload", "the upload is for another key", 404)
        return state

    def _load(
        self,
        state: dict[str, Any],
        params: dict[str, Any],
        customer: CustomerKey | None,
        operation: str,
    ) -> _Upload:
        header = parse_header(base64.b64decode(state["header"]))
        try:
            provider = self._owner.keys.for_read(header, customer, operation)
            data_key = open_header(header, provider, None)
            sealer = _aead.ChunkSealer.resume(
                data_key, header.immutable, base64.b64decode(state["prefix"])
            )
        except SealstoreError as error:
            raise translated(error, operation) from error
        upload = _Upload(header, sealer, state.get("part_size"), sequential=False)
        upload.unaligned = bool(state.get("unaligned"))
        return upload

    def _upload(
        self, params: dict[str, Any], customer: CustomerKey | None, operation: str
    ) -> _Upload:
        upload = self._known_upload(params["UploadId"])
        if upload is None:
            upload = self._load(self._state(params), params, customer, operation)
            # Parts from 1 on, in order, may still take the in-order way here.
            upload.sequential = not upload.unaligned
            self._remember(params["UploadId"], upload)
        elif customer is not None or upload.header.mode is Mode.CUSTOMER:
            # The key of every SSE-C part is checked, as S3 checks it.
            try:
                self._owner.keys.for_read(upload.header, customer, operation).unwrap_data_key(
                    upload.header
                )
            except SealstoreError as error:
                raise translated(error, operation) from error
        return upload

    def _known_upload(self, upload_id: str) -> _Upload | None:
        with self._lock:
            upload = self._known.get(upload_id)
            if upload is not None:
                self._known.move_to_end(upload_id)
            return upload

    def _remember(self, upload_id: str, upload: _Upload) -> None:
        with self._lock:
            self._known[upload_id] = upload
            while len(self._known) > _KEEP:
                self._known.popitem(last=False)

    def _forget(self, params: dict[str, Any]) -> None:
        with self._lock:
            self._known.pop(params["UploadId"], None)
        # The upload is over either way: a state left behind is never read again.
        with contextlib.suppress(Exception):
            self._client.delete_object(Bucket=params["Bucket"], Key=_state_key(params["UploadId"]))
