"""Listings and object attributes with plaintext sizes, at the bare client's request count.

A listing carries no metadata, so the size of each entry is computed from its stored size as
the size of a body with its header detached (what the client and the store write whenever the
header fits in metadata, which is every object with a small encryption context). A stored size
no encrypted body can have is reported unchanged. For objects the client did not write
(plaintext) and inline ones, only ``head_object`` gives the exact figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sealstore import _aead
from sealstore.errors import DecryptionError
from sealstore.s3._bucket import RESERVED_PREFIX
from sealstore.s3._read import plain_fields

if TYPE_CHECKING:
    from sealstore.s3.client import EncryptingS3Client

__all__ = ["listed_size", "object_attributes", "part_plaintext_size", "plaintext_listing"]


def listed_size(stored: int) -> int:
    """The plaintext size of a detached body of ``stored`` bytes; ``stored`` if none has it."""
    try:
        return _aead.plaintext_size(stored)
    except DecryptionError:
        return stored


def part_plaintext_size(number: int, stored: int) -> int:
    """Plaintext bytes in stored part ``number`` of ``stored`` bytes (part 1 holds the
    body's 56-byte prefix; a part ending the body ends with the short final chunk)."""
    sealed = stored - (_aead.BODY_PREFIX_SIZE if number == 1 else 0)
    full, rest = divmod(max(0, sealed), _aead.SEALED_CHUNK_SIZE)
    return full * _aead.CHUNK_SIZE + max(0, rest - _aead.TAG_SIZE)


def plaintext_listing(response: Mapping[str, Any]) -> dict[str, Any]:
    """A ``ListObjects(V2)`` answer with plaintext sizes and without the reserved keys."""
    answer = dict(response)
    contents = response.get("Contents")
    if contents is not None:
        kept = [
            {**entry, "Size": listed_size(int(entry["Size"]))}
            for entry in contents
            if not str(entry.get("Key", "")).startswith(RESERVED_PREFIX)
        ]
        answer["Contents"] = kept
        if "KeyCount" in answer:
            answer["KeyCount"] -= len(contents) - len(kept)
    prefixes = response.get("CommonPrefixes")
    if prefixes is not None:
        shown = [p for p in prefixes if not str(p.get("Prefix", "")).startswith(RESERVED_PREFIX)]
        answer["CommonPrefixes"] = shown
        if "KeyCount" in answer:
            answer["KeyCount"] -= len(prefixes) - len(shown)
    return answer


def object_attributes(client: EncryptingS3Client, params: dict[str, Any]) -> dict[str, Any]:
    """``GetObjectAttributes``: a ``HeadObject`` through the client (plaintext size, SSE-C key
    checked), then the server's attributes with the plaintext figures put in."""
    head_params = {
        k: v
        for k, v in params.items()
        if k in {"Bucket", "Key", "VersionId", "ExpectedBucketOwner", "RequestPayer"}
        or k.startswith("SSECustomer")
    }
    head = client.head_object(**head_params)
    for name in ("SSECustomerAlgorithm", "SSECustomerKey", "SSECustomerKeyMD5"):
        params.pop(name, None)
    response = client.client.get_object_attributes(**params)
    answer = plain_fields(response)
    answer.pop("Checksum", None)
    if "ObjectSize" in response:
        answer["ObjectSize"] = head["ContentLength"]
    parts = response.get("ObjectParts")
    if isinstance(parts, Mapping) and "Parts" in parts:
        answer["ObjectParts"] = {
            **parts,
            "Parts": [
                {
                    "PartNumber": part["PartNumber"],
                    "Size": part_plaintext_size(part["PartNumber"], int(part.get("Size", 0))),
                }
                for part in parts["Parts"]
            ],
        }
    return answer
