"""The contract suites of sealstore.testing, run against every adapter sealstore ships.

The backend contract runs in ``test_backends.py`` and ``test_s3_backend.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sealstore import FileKeyringStore, LocalKms, MemoryAuditSink, MemoryKeyringStore, RootKey
from sealstore.kms import KmsClient
from sealstore.kms.aws import AwsKms
from sealstore.kms.vault import VaultTransitKms
from sealstore.testing import FakeClock, MemoryKms
from sealstore.testing.contracts import KeyringStoreContract, KmsClientContract
from tests.test_kms_aws import boto_kms, new_key, unique_alias
from tests.test_kms_vault import enable_transit, root_client, unique

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient


class TestMemoryKms(KmsClientContract):
    """The in-memory KMS users test with."""

    @pytest.fixture
    def kms(self) -> KmsClient:
        """A MemoryKms with two keys."""
        return MemoryKms(keys=["k1", "k2"])

    @pytest.fixture
    def key_ids(self, kms: KmsClient) -> tuple[str, str]:
        """The two keys of the fixture."""
        return "k1", "k2"


class TestLocalKms(KmsClientContract):
    """LocalKms, the embedded KMS."""

    @pytest.fixture
    def kms(self, tmp_path: Path) -> LocalKms:
        """A LocalKms in a fresh directory."""
        root = RootKey.from_bytes(os.urandom(32))
        return LocalKms(
            tmp_path / "kms", root_key=root, audit=MemoryAuditSink(), clock=FakeClock(), create=True
        )

    @pytest.fixture
    def key_ids(self, kms: LocalKms) -> tuple[str, str]:
        """Two keys the contract's principal owns."""
        first = kms.create_key(principal=self.principal).key_id
        return first, kms.create_key(principal=self.principal).key_id


class TestAwsKms(KmsClientContract):
    """AwsKms, against the session's moto_server."""

    @pytest.fixture
    def client(self, moto_server: str) -> KMSClient:
        """A boto3 KMS client for moto."""
        return boto_kms(moto_server)

    @pytest.fixture
    def kms(self, client: KMSClient) -> AwsKms:
        """An AwsKms whose default alias no other test uses."""
        return AwsKms(client, audit=MemoryAuditSink(), default_alias=unique_alias())

    @pytest.fixture
    def key_ids(self, client: KMSClient) -> tuple[str, str]:
        """Two new keys in moto."""
        return new_key(client), new_key(client)


class TestVaultTransitKms(KmsClientContract):
    """VaultTransitKms, against the session's OpenBao."""

    @pytest.fixture
    def kms(self, openbao_server: tuple[str, str]) -> VaultTransitKms:
        """A VaultTransitKms on a Transit engine of its own."""
        mount = enable_transit(root_client(openbao_server))
        return VaultTransitKms.with_token(*openbao_server, mount=mount, audit=MemoryAuditSink())

    @pytest.fixture
    def key_ids(self, kms: VaultTransitKms) -> tuple[str, str]:
        """Two new derived Transit keys."""
        return (
            kms.create_key(unique("first"), principal=self.principal),
            kms.create_key(unique("second"), principal=self.principal),
        )


class TestMemoryKeyringStore(KeyringStoreContract):
    """The in-memory keyring store."""

    @pytest.fixture
    def store(self) -> MemoryKeyringStore:
        """An empty store."""
        return MemoryKeyringStore()


class TestFileKeyringStore(KeyringStoreContract):
    """The sealed-file keyring store, with a second handle as another process would open it."""

    @pytest.fixture
    def root_key(self) -> RootKey:
        """A random root key."""
        return RootKey.from_bytes(os.urandom(32))

    @pytest.fixture
    def store(self, tmp_path: Path, root_key: RootKey) -> FileKeyringStore:
        """A store whose file does not exist yet."""
        return FileKeyringStore(tmp_path / "keyring", root_key, create=True)

    @pytest.fixture
    def second_handle(self, tmp_path: Path, root_key: RootKey) -> FileKeyringStore:
        """Another FileKeyringStore on the same file."""
        return FileKeyringStore(tmp_path / "keyring", root_key, create=True)
