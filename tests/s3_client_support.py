"""Shared pieces of the EncryptingS3Client tests: the servers, providers and request counts."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

import sealstore
from sealstore.s3 import EncryptingS3Client
from tests.test_s3_backend import s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SERVERS = ("moto", "seaweedfs")


class Requests:
    """The S3 operations a client sent, one name per HTTP request (retries included)."""

    def __init__(self, client: S3Client) -> None:
        self.names: list[str] = []
        client.meta.events.register("request-created.s3", self._sent)

    def _sent(self, operation_name: str, **_: Any) -> None:
        self.names.append(operation_name)

    def __len__(self) -> int:
        return len(self.names)

    def clear(self) -> None:
        """Forget the requests counted so far."""
        self.names.clear()


class Setup:
    """A fresh raw client on one server, the encrypting client over it, and a key prefix."""

    def __init__(
        self, server: str, endpoint: str, bucket: str, tmp_path: Path, **options: Any
    ) -> None:
        self.server = server
        self.raw: Any = s3_client(endpoint)  # raw calls take the tests' untyped arguments
        self.bucket = bucket
        self.requests = Requests(self.raw)
        self.managed = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
        root = sealstore.RootKey.from_bytes(os.urandom(32))
        self.kms = sealstore.LocalKms(tmp_path / "kms", root_key=root, create=True)
        self.s3 = EncryptingS3Client(self.raw, managed=self.managed, kms=self.kms, **options)
        self.prefix = f"t-{uuid.uuid4().hex[:12]}/"

    def key(self, name: str) -> str:
        """A key under this test's own prefix."""
        return self.prefix + name

    def other(self, **options: Any) -> EncryptingS3Client:
        """A second client (another host, say) over the same bucket, keys and KMS."""
        return EncryptingS3Client(self.raw, managed=self.managed, kms=self.kms, **options)


def customer(key: bytes | None = None) -> dict[str, Any]:
    """SSE-C arguments as boto3 users pass them: raw key bytes and its base64 MD5."""
    key = key if key is not None else os.urandom(32)
    md5 = base64.b64encode(hashlib.md5(key, usedforsecurity=False).digest()).decode()
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key, "SSECustomerKeyMD5": md5}


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    """The S3 code and HTTP status of a ClientError."""
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


@contextlib.contextmanager
def made_setup(
    request: pytest.FixtureRequest, server: str, tmp_path: Path, **options: Any
) -> Iterator[Setup]:
    """A :class:`Setup` on the session bucket of ``server``, its client closed at the end."""
    endpoint = request.getfixturevalue(f"{server}_server")
    _, bucket = request.getfixturevalue(f"{server}_bucket")
    setup = Setup(server, endpoint, bucket, tmp_path, **options)
    try:
        yield setup
    finally:
        setup.raw.close()
