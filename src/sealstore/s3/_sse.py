"""boto3's server-side encryption arguments, read into a sealstore key provider.

``ServerSideEncryption="AES256"`` is :class:`~sealstore.ManagedKeys`; ``"aws:kms"`` (with
``SSEKMSKeyId``, ``SSEKMSEncryptionContext``, ``BucketKeyEnabled``) is
:class:`~sealstore.KmsKeys`; ``SSECustomerAlgorithm="AES256"`` with ``SSECustomerKey`` (and
``SSECustomerKeyMD5``) is :class:`~sealstore.CustomerKeys`. The arguments are taken out of the
request here, so none of them reaches the server, and checked as S3 checks them: the same
combinations are refused with the same codes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from typing import Any, Final, Literal

import attrs

from sealstore.header import Header, Mode
from sealstore.keys import CustomerKeys, KeyProvider, KmsKeys, ManagedKeys
from sealstore.keys.kms import BUCKET_KEY_KINDS, decode_key_ref
from sealstore.kms.base import KmsClient
from sealstore.s3._errors import raise_client_error
from sealstore.store import RESERVED_CONTEXT_PREFIX

__all__ = ["Encryption", "Keys", "customer_key", "echo", "take_write_arguments"]

Algorithm = Literal["AES256", "aws:kms", "SSE-C"]
_SSE_KEYS: Final = (
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "SSEKMSEncryptionContext",
    "BucketKeyEnabled",
)


@attrs.frozen
class CustomerKey:
    """A customer key as given on one request, and its MD5 as boto3 sends it."""

    key: bytes = attrs.field(repr=False)
    md5: str


@attrs.frozen
class Encryption:
    """What a write asks for: the mode and its details."""

    algorithm: Algorithm
    kms_key_id: str | None = None
    bucket_key: bool = False
    kms_context: Mapping[str, str] = attrs.field(factory=dict)
    customer: CustomerKey | None = None


def take_write_arguments(params: MutableMapping[str, Any], operation: str) -> Encryption | None:
    """Take the SSE arguments out of a write's ``params``; ``None`` when there are none."""
    customer = customer_key(params, operation)
    given = {name: params.pop(name) for name in _SSE_KEYS if name in params}
    algorithm = given.get("ServerSideEncryption")
    if customer is not None:
        if algorithm is not None or "SSEKMSKeyId" in given:
            raise_client_error(
                operation,
                "InvalidArgument",
                "Server Side Encryption with Customer provided key is incompatible with the "
                "encryption method specified",
            )
        return Encryption("SSE-C", customer=customer)
    if algorithm is None:
        if "SSEKMSKeyId" in given or "SSEKMSEncryptionContext" in given:
            raise_client_error(
                operation,
                "InvalidArgument",
                "SSEKMSKeyId and SSEKMSEncryptionContext need ServerSideEncryption='aws:kms'",
            )
        return None
    if algorithm == "AES256":
        if "SSEKMSKeyId" in given or "SSEKMSEncryptionContext" in given:
            raise_client_error(
                operation,
                "InvalidArgument",
                "a KMS key id or context was given with ServerSideEncryption='AES256'; use "
                "'aws:kms' for KMS keys",
            )
        return Encryption("AES256")
    if algorithm == "aws:kms":
        key_id = given.get("SSEKMSKeyId")
        if key_id is not None and (not isinstance(key_id, str) or not key_id):
            raise_client_error(operation, "InvalidArgument", "SSEKMSKeyId must be a key id")
        return Encryption(
            "aws:kms",
            kms_key_id=key_id,
            bucket_key=bool(given.get("BucketKeyEnabled", False)),
            kms_context=_kms_context(given.get("SSEKMSEncryptionContext"), operation),
        )
    raise_client_error(
        operation,
        "InvalidArgument",
        f"ServerSideEncryption {algorithm!r} is not supported: use 'AES256' or 'aws:kms'",
    )


def customer_key(
    params: MutableMapping[str, Any], operation: str, prefix: str = "SSECustomer"
) -> CustomerKey | None:
    """Take ``SSECustomerAlgorithm``, ``SSECustomerKey`` and ``SSECustomerKeyMD5`` (or the
    ``CopySourceSSECustomer...`` ones, with ``prefix``) out of ``params`` and check them."""
    algorithm = params.pop(prefix + "Algorithm", None)
    given = params.pop(prefix + "Key", None)
    md5 = params.pop(prefix + "KeyMD5", None)
    if algorithm is None and given is None and md5 is None:
        return None
    if algorithm is None:
        raise_client_error(
            operation,
            "InvalidArgument",
            f"Requests specifying Server Side Encryption with Customer provided keys must "
            f"provide a valid encryption algorithm ({prefix}Algorithm='AES256')",
        )
    if algorithm != "AES256":
        raise_client_error(
            operation,
            "InvalidArgument",
            f"{prefix}Algorithm {algorithm!r} is not supported: the only one is 'AES256'",
        )
    if given is None:
        raise_client_error(
            operation,
            "InvalidArgument",
            f"Requests specifying Server Side Encryption with Customer provided keys must "
            f"provide an appropriate secret key ({prefix}Key)",
        )
    key = _raw_key(given, operation)
    digest = base64.b64encode(hashlib.md5(key, usedforsecurity=False).digest()).decode()
    if md5 is not None and md5 != digest:
        raise_client_error(
            operation,
            "InvalidArgument",
            f"The calculated MD5 hash of the key did not match the hash that was provided "
            f"({prefix}KeyMD5)",
        )
    return CustomerKey(key, digest)


def _raw_key(given: object, operation: str) -> bytes:
    """The 32 key bytes: raw (as boto3 takes them) or the base64 text of S3's HTTP API."""
    if isinstance(given, str):
        try:
            decoded = base64.b64decode(given, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) == 32:
            return decoded
        given = given.encode("utf-8")  # boto3 sends a str key's own bytes
    if isinstance(given, (bytes, bytearray, memoryview)) and len(given) == 32:
        return bytes(given)
    raise_client_error(
        operation,
        "InvalidArgument",
        "The secret key was invalid for the specified algorithm: give 32 bytes, or their "
        "base64 encoding",
    )


def _kms_context(given: object, operation: str) -> dict[str, str]:
    """The pairs of ``SSEKMSEncryptionContext``: base64 of a JSON object, as boto3 sends it."""
    if given is None:
        return {}
    try:
        decoded = json.loads(base64.b64decode(str(given), validate=True))
    except (binascii.Error, ValueError):
        decoded = None
    if not isinstance(decoded, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in decoded.items()
    ):
        raise_client_error(
            operation,
            "InvalidArgument",
            "SSEKMSEncryptionContext must be the base64 encoding of a JSON object of strings",
        )
    reserved = sorted(k for k in decoded if k.startswith(RESERVED_CONTEXT_PREFIX))
    if reserved:
        raise_client_error(
            operation,
            "InvalidArgument",
            f"encryption context keys starting with {RESERVED_CONTEXT_PREFIX!r} are reserved: "
            + ", ".join(map(repr, reserved)),
        )
    return decoded


def echo(
    header: Header, customer: CustomerKey | None, kms_key_id: str | None = None
) -> dict[str, Any]:
    """The SSE fields of a response about an object with ``header``.

    ``kms_key_id`` is the key id the request gave, echoed as given (S3 echoes an alias it was
    given as the key's ARN; the wrapper cannot resolve aliases without asking the KMS).
    """
    match header.mode:
        case Mode.MANAGED:
            return {"ServerSideEncryption": "AES256"}
        case Mode.KMS:
            kind, key_id, _ = decode_key_ref(header.key_ref)
            return {
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": kms_key_id or key_id,
                "BucketKeyEnabled": kind in BUCKET_KEY_KINDS,
            }
        case Mode.CUSTOMER:
            return {
                "SSECustomerAlgorithm": "AES256",
                "SSECustomerKeyMD5": customer.md5 if customer is not None else "",
            }


@attrs.define(eq=False)
class Keys:
    """The providers of one client: managed keys, and KMS providers cached per key id.

    The cache is bounded (least recently used dropped first). Reusing a provider keeps its
    bucket key and its cache of unwrapped bucket keys, which is what saves KMS calls.
    """

    managed: ManagedKeys | None
    kms: KmsClient | None
    principal: str
    cache_size: int
    allowed: frozenset[str] | None = None
    """The KMS key ids objects may be under (as the KMS reports them); ``None``: any."""
    _cache: OrderedDict[tuple[str | None, bool], KmsKeys] = attrs.field(factory=OrderedDict)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def for_write(self, encryption: Encryption, operation: str) -> KeyProvider:
        """The provider that encrypts a write asking for ``encryption``."""
        match encryption.algorithm:
            case "SSE-C":
                assert encryption.customer is not None
                return CustomerKeys(encryption.customer.key, principal=self.principal)
            case "AES256":
                if self.managed is None:
                    raise_client_error(
                        operation,
                        "InvalidArgument",
                        "ServerSideEncryption='AES256' needs managed keys: create the client "
                        "with EncryptingS3Client(client, managed=ManagedKeys(...))",
                    )
                return self.managed
            case "aws:kms":
                return self.kms_keys(encryption.kms_key_id, encryption.bucket_key, operation)

    def for_read(self, header: Header, customer: CustomerKey | None, operation: str) -> KeyProvider:
        """The provider that reads an object with ``header``, given the request's SSE-C key."""
        if header.mode is Mode.CUSTOMER:
            if customer is None:
                raise_client_error(
                    operation,
                    "InvalidRequest",
                    "The object was stored using a form of Server Side Encryption. The correct "
                    "parameters must be provided to retrieve the object (SSECustomerAlgorithm, "
                    "SSECustomerKey)",
                )
            return CustomerKeys(customer.key, principal=self.principal)
        if customer is not None:
            raise_client_error(
                operation,
                "InvalidArgument",
                "The encryption parameters are not applicable to this object: it is not "
                "encrypted with a customer key",
            )
        if header.mode is Mode.MANAGED:
            if self.managed is None:
                raise_client_error(
                    operation,
                    "InvalidRequest",
                    "the object is encrypted with managed keys (AES256): create the client "
                    "with managed=ManagedKeys(...) to read it",
                )
            return self.managed
        if self.kms is None:
            raise_client_error(
                operation,
                "InvalidRequest",
                "the object is encrypted with a KMS key (aws:kms): create the client with "
                "kms=... to read it",
            )
        key_id = decode_key_ref(header.key_ref)[1]
        self.check_kms_key(header, operation)
        return self.kms_keys(key_id, True, operation)

    def check_kms_key(self, header: Header, operation: str) -> None:
        """Refuse an object under a KMS key outside ``allowed`` (someone who can write to the
        bucket could otherwise pass off objects, or a bucket default, under a key they own)."""
        if self.allowed is None or header.mode is not Mode.KMS:
            return
        key_id = decode_key_ref(header.key_ref)[1]
        if key_id not in self.allowed:
            raise_client_error(
                operation,
                "AccessDenied",
                f"the object is under KMS key {key_id!r}, which is not among the client's "
                "kms_key_ids",
                403,
            )

    def kms_keys(self, key_id: str | None, bucket_key: bool, operation: str) -> KmsKeys:
        """The cached :class:`~sealstore.KmsKeys` for ``key_id`` (``None``: the KMS default)."""
        if self.kms is None:
            raise_client_error(
                operation,
                "InvalidArgument",
                "ServerSideEncryption='aws:kms' needs a KMS: create the client with "
                "EncryptingS3Client(client, kms=...)",
            )
        slot = (key_id, bucket_key)
        with self._lock:
            provider = self._cache.get(slot)
            if provider is None:
                # Reading trusts the key the object names, as S3 does: the KMS decides, by its
                # key policy for this principal, whether the blob opens.
                provider = KmsKeys(
                    self.kms,
                    key_id=key_id,
                    principal=self.principal,
                    bucket_key=bucket_key,
                    trusted_key_ids=() if key_id is None else (key_id,),
                )
                self._cache[slot] = provider
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            self._cache.move_to_end(slot)
            return provider
