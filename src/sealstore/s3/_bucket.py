"""A bucket's default encryption, kept in the bucket itself so every client sees it.

``put_bucket_encryption`` does not reach the server's own setting (the server would then
encrypt the ciphertext again, or refuse a KMS key it does not know): the configuration is an
object under the reserved key :data:`BUCKET_ENCRYPTION_KEY`, a JSON copy of what boto3 sends.
Each client reads it when it first writes without SSE arguments and keeps it for
``ttl`` seconds, so a change made through one client reaches the others within that time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from sealstore._aws import error_code
from sealstore.s3._errors import client_error, raise_client_error
from sealstore.s3._sse import Encryption

__all__ = ["BUCKET_ENCRYPTION_KEY", "RESERVED_PREFIX", "BucketDefaults"]

RESERVED_PREFIX: Final = ".sealstore-s3/"
"""Keys under this prefix hold the client's own state (bucket default, upload state); the
store and the backends skip names with a ``.sealstore-`` segment, so they never list them."""
BUCKET_ENCRYPTION_KEY: Final = RESERVED_PREFIX + "bucket-encryption.json"
"""The object that holds a bucket's default encryption: the JSON of boto3's
``ServerSideEncryptionConfiguration``."""
_ALGORITHMS: Final = ("AES256", "aws:kms")
_MISSING: Final = frozenset({"NoSuchKey", "404", "NotFound"})


def _rule(configuration: object) -> tuple[str, str | None, bool]:
    """``(algorithm, KMS key id, bucket key)`` of a ``ServerSideEncryptionConfiguration``."""
    rules = configuration.get("Rules") if isinstance(configuration, Mapping) else None
    if not isinstance(rules, list) or len(rules) != 1 or not isinstance(rules[0], Mapping):
        raise ValueError("exactly one rule is needed")
    default = rules[0].get("ApplyServerSideEncryptionByDefault")
    if not isinstance(default, Mapping) or default.get("SSEAlgorithm") not in _ALGORITHMS:
        raise ValueError("SSEAlgorithm must be 'AES256' or 'aws:kms'")
    key_id = default.get("KMSMasterKeyID")
    if key_id is not None and (default["SSEAlgorithm"] != "aws:kms" or not isinstance(key_id, str)):
        raise ValueError("KMSMasterKeyID is a key id, only with 'aws:kms'")
    return default["SSEAlgorithm"], key_id, bool(rules[0].get("BucketKeyEnabled", False))


class BucketDefaults:
    """Reads and writes the default of each bucket, with a per-bucket cache of ``ttl`` seconds."""

    def __init__(self, client: Any, ttl: float, check: Callable[[Encryption, str], object]) -> None:
        self._client = client
        self._ttl = ttl
        self._check = check
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Encryption | None]] = {}

    def default(self, bucket: str) -> Encryption | None:
        """The bucket's default encryption, ``None`` when it has none."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(bucket)
        if cached is not None and cached[0] > now:
            return cached[1]
        configuration = self._read(bucket, "PutObject")
        found = None if configuration is None else self._encryption(configuration, "PutObject")
        with self._lock:
            self._cache[bucket] = (now + self._ttl, found)
        return found

    def put(self, bucket: str, configuration: object, extra: Mapping[str, Any]) -> dict[str, Any]:
        """``PutBucketEncryption``: check the configuration, then store it in the bucket."""
        encryption = self._encryption(configuration, "PutBucketEncryption")
        response: dict[str, Any] = self._client.put_object(
            Bucket=bucket,
            Key=BUCKET_ENCRYPTION_KEY,
            Body=json.dumps(configuration, sort_keys=True).encode(),
            ContentType="application/json",
            **extra,
        )
        with self._lock:
            self._cache[bucket] = (time.monotonic() + self._ttl, encryption)
        return {"ResponseMetadata": response.get("ResponseMetadata", {})}

    def get(self, bucket: str) -> dict[str, Any]:
        """``GetBucketEncryption``: the stored configuration, or S3's 404 when there is none."""
        configuration = self._read(bucket, "GetBucketEncryption")
        if configuration is None:
            raise client_error(
                "GetBucketEncryption",
                "ServerSideEncryptionConfigurationNotFoundError",
                "The server side encryption configuration was not found",
                404,
            )
        return {"ServerSideEncryptionConfiguration": configuration}

    def delete(self, bucket: str, extra: Mapping[str, Any]) -> dict[str, Any]:
        """``DeleteBucketEncryption``: remove the stored configuration."""
        response = self._client.delete_object(Bucket=bucket, Key=BUCKET_ENCRYPTION_KEY, **extra)
        with self._lock:
            self._cache[bucket] = (time.monotonic() + self._ttl, None)
        return {"ResponseMetadata": response.get("ResponseMetadata", {})}

    def _read(self, bucket: str, operation: str) -> Any:
        try:
            body = self._client.get_object(Bucket=bucket, Key=BUCKET_ENCRYPTION_KEY)["Body"]
        except Exception as error:
            if error_code(error) in _MISSING:
                return None
            raise
        with body:
            data = body.read()
        try:
            configuration = json.loads(data)
            _rule(configuration)
        except ValueError:
            raise_client_error(
                operation,
                "InvalidRequest",
                f"the bucket's default encryption ({BUCKET_ENCRYPTION_KEY}) is damaged: set it "
                "again with put_bucket_encryption",
                500,
            )
        return configuration

    def _encryption(self, configuration: object, operation: str) -> Encryption:
        try:
            algorithm, key_id, bucket_key = _rule(configuration)
        except ValueError as error:
            raise_client_error(
                operation, "MalformedXML", f"invalid ServerSideEncryptionConfiguration: {error}"
            )
        encryption = Encryption(
            "AES256" if algorithm == "AES256" else "aws:kms",
            kms_key_id=key_id,
            bucket_key=bucket_key,
        )
        self._check(encryption, operation)
        return encryption
