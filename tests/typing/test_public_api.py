"""The public API as a user types it: ``mypy --strict`` checks these calls, pytest runs them.

Lines marked ``type: ignore[...]`` are calls the type checker must reject; with
``warn_unused_ignores`` (part of ``--strict``), mypy fails if it ever accepts one of them.
"""

from __future__ import annotations

import inspect
import io
import os
import subprocess
import sys
import typing
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path

import pytest
from typing_extensions import assert_type

import sealstore
from sealstore.backends import MemoryBackend
from sealstore.keys import PROVIDER_FOR_MODE
from sealstore.keys.base import Provider

PUBLIC_NAMES = {
    "BulkFailure",
    "BulkReport",
    "InvalidDataError",
    "KeyNotTrustedError",
    "ObjectChangedError",
    "InvalidKmsRequestError",
    "AwsKms",
    "VaultTransitKms",
    "KeyPolicy",
    "LocalKms",
    "NotEncryptedError",
    "EncryptedStore",
    "ObjectHead",
    "FileKeyringStore",
    "KeyringStore",
    "KeyVersion",
    "MemoryKeyringStore",
    "RotationPolicy",
    "S3KeyringStore",
    "VersionState",
    "RootKey",
    "EncryptingReader",
    "EncryptedWriter",
    "encrypt_detached",
    "AuditEvent",
    "AuditSink",
    "JsonlAuditLog",
    "LoggingAuditSink",
    "MemoryAuditSink",
    "AuditLogError",
    "BackendError",
    "InvalidNameError",
    "ObjectNotFoundError",
    "AccessDeniedError",
    "KeyDisabledError",
    "KeyNotFoundError",
    "KeyPendingDeletionError",
    "KeyRetiredError",
    "KeyStateError",
    "KeystoreError",
    "KmsError",
    "RootKeyError",
    "KmsKeys",
    "ManagedKeys",
    "ContextMismatchError",
    "CustomerKeys",
    "DecryptedReader",
    "DecryptionError",
    "FormatError",
    "InvalidContextError",
    "InvalidKeyError",
    "KeyProvider",
    "Mode",
    "ProviderMismatchError",
    "SealstoreError",
    "WrongKeyError",
    "__version__",
    "decrypt",
    "decrypt_many",
    "decrypt_stream",
    "encrypt",
    "encrypt_stream",
    "open_decrypted",
}


def test_in_memory_api_types() -> None:
    """encrypt and decrypt take bytes-like input and a provider, and return bytes."""
    keys: sealstore.KeyProvider = sealstore.CustomerKeys(os.urandom(32))
    context: Mapping[str, str] = {"tenant": "acme"}
    blob: bytes = sealstore.encrypt(b"payload", keys, context=context)
    assert_type(sealstore.encrypt(bytearray(b"x"), keys), bytes)
    assert_type(sealstore.encrypt(memoryview(b"x"), keys, context=None), bytes)
    plaintext: bytes = sealstore.decrypt(blob, keys, context=context)
    assert_type(sealstore.decrypt(memoryview(blob), keys), bytes)
    assert_type(sealstore.decrypt_many([blob, memoryview(blob)], keys), list[bytes])
    assert plaintext == b"payload"


def test_stream_api_types(tmp_path: Path) -> None:
    """The stream functions take real files and in-memory files, and return byte counts."""
    keys = sealstore.CustomerKeys(os.urandom(32))
    sealed = tmp_path / "object.seal"
    with open(sealed, "wb") as sink:
        written: int = sealstore.encrypt_stream(io.BytesIO(b"streamed"), sink, keys)
    with open(sealed, "rb") as source:
        out = io.BytesIO()
        count = sealstore.decrypt_stream(source, out, keys, context={})
        assert_type(count, int)
    assert written == sealed.stat().st_size
    assert (count, out.getvalue()) == (8, b"streamed")


def test_store_open_types() -> None:
    """EncryptedStore.open returns a reader for "rb" and a writer for "wb"; no other mode."""
    store = sealstore.EncryptedStore(
        MemoryBackend(), sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    )
    with store.open("typed", "wb") as writer:
        assert_type(writer, sealstore.EncryptedWriter[sealstore.ObjectHead])
        assert_type(writer.write(b"abc"), int)
    assert_type(writer.result, "sealstore.ObjectHead | None")
    assert_type(store.open("typed"), sealstore.DecryptedReader)
    assert_type(store.open("typed", "rb"), sealstore.DecryptedReader)
    with pytest.raises(ValueError, match="mode"):
        store.open("typed", "ab")  # type: ignore[call-overload]


def test_reader_api_types(tmp_path: Path) -> None:
    """open_decrypted returns a DecryptedReader whose file methods have file types."""
    keys = sealstore.CustomerKeys(os.urandom(32))
    sealed = tmp_path / "object.seal"
    sealed.write_bytes(sealstore.encrypt(bytes(range(256)) * 200, keys))
    with open(sealed, "rb") as source, sealstore.open_decrypted(source, keys) as reader:
        assert_type(reader, sealstore.DecryptedReader)
        assert isinstance(reader, io.RawIOBase)
        assert_type(reader.seek(256, io.SEEK_SET), int)
        assert_type(reader.seek(-1, io.SEEK_END), int)
        assert_type(reader.tell(), int)
        assert_type(reader.size, int)
        assert_type(reader.chunks_decrypted, int)
        assert reader.readable()
        assert reader.seekable()
        assert not reader.writable()
        last: bytes = reader.read(1)
        buffer = bytearray(3)
        filled = reader.readinto(buffer)
        assert_type(filled, int)
        reader.seek(0)
        everything: bytes = reader.readall()
    assert last == b"\xff"
    assert filled == 0
    assert len(everything) == 51_200
    reader2: sealstore.DecryptedReader = sealstore.open_decrypted(
        io.BytesIO(sealed.read_bytes()), keys, context=None
    )
    with reader2:
        assert reader2.read(2) == b"\x00\x01"


def test_provider_types() -> None:
    """CustomerKeys is the customer-mode provider and takes the key as bytes only."""
    keys = sealstore.CustomerKeys(os.urandom(32))
    assert_type(keys.mode, sealstore.Mode)
    assert keys.mode is sealstore.Mode.CUSTOMER
    assert typing.get_args(sealstore.KeyProvider) == (
        sealstore.CustomerKeys,
        sealstore.ManagedKeys,
        sealstore.KmsKeys,
    )
    assert [(mode.name, int(mode)) for mode in sealstore.Mode] == [
        ("MANAGED", 1),
        ("KMS", 2),
        ("CUSTOMER", 3),
    ]
    with pytest.raises(sealstore.InvalidKeyError):
        sealstore.CustomerKeys("k" * 32)  # type: ignore[arg-type]


def test_signatures_reject_misuse() -> None:
    """Options are keyword-only and contexts map str to str, for mypy and at run time."""
    keys = sealstore.CustomerKeys(os.urandom(32))
    blob = sealstore.encrypt(b"x", keys)
    with pytest.raises(TypeError):
        sealstore.encrypt(b"x", keys, {"a": "b"})  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        sealstore.decrypt(blob, keys, {"a": "b"})  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        sealstore.encrypt("text", keys)  # type: ignore[arg-type]
    with pytest.raises(sealstore.InvalidContextError):
        sealstore.encrypt(b"x", keys, context={"a": 1})  # type: ignore[dict-item]


def test_error_hierarchy() -> None:
    """Every error is a SealstoreError; authentication failures share DecryptionError."""
    for name in (
        "FormatError",
        "DecryptionError",
        "WrongKeyError",
        "ContextMismatchError",
        "ProviderMismatchError",
        "InvalidKeyError",
        "InvalidContextError",
    ):
        assert issubclass(getattr(sealstore, name), sealstore.SealstoreError), name
    assert issubclass(sealstore.SealstoreError, Exception)
    assert issubclass(sealstore.WrongKeyError, sealstore.DecryptionError)
    assert issubclass(sealstore.ContextMismatchError, sealstore.DecryptionError)
    assert issubclass(sealstore.InvalidKeyError, ValueError)
    assert issubclass(sealstore.InvalidContextError, ValueError)
    distinct = (
        sealstore.FormatError,
        sealstore.WrongKeyError,
        sealstore.ContextMismatchError,
        sealstore.ProviderMismatchError,
    )
    for first in distinct:
        for second in distinct:
            assert issubclass(first, second) == (first is second), (first, second)
    assert not issubclass(sealstore.FormatError, sealstore.DecryptionError)
    assert not issubclass(sealstore.DecryptionError, ValueError)


def test_context_mismatch_error_fields() -> None:
    """ContextMismatchError exposes the key names as typed tuples."""
    error = sealstore.ContextMismatchError(missing=("a",), differing=("b",))
    assert_type(error.missing, tuple[str, ...])
    assert_type(error.unexpected, tuple[str, ...])
    assert_type(error.differing, tuple[str, ...])
    caught: sealstore.DecryptionError = error
    assert isinstance(caught, sealstore.ContextMismatchError)
    assert (error.missing, error.unexpected, error.differing) == (("a",), (), ("b",))


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ is the documented public API, and every name in it exists."""
    assert len(sealstore.__all__) == len(set(sealstore.__all__))
    assert set(sealstore.__all__) == PUBLIC_NAMES
    for name in sealstore.__all__:
        assert hasattr(sealstore, name), name


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES - {"__version__"}))
def test_public_name_has_its_own_docstring(name: str) -> None:
    """Every public class and function carries a docstring of its own, not an inherited one."""
    obj = getattr(sealstore, name)
    own = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert isinstance(own, str)
    assert own.strip()


def test_version_is_the_installed_version() -> None:
    """__version__ is a str read from the installed distribution's metadata."""
    assert_type(sealstore.__version__, str)
    assert sealstore.__version__ == version("sealstore")


def test_import_pulls_in_no_optional_dependency() -> None:
    """`import sealstore` loads only the standard library and the three runtime dependencies."""
    probe = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import sealstore\n"
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    # A fresh interpreter, since this one has long imported everything the tests use.
    done = subprocess.run(  # noqa: S603 - our own interpreter running a fixed script
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert "sealstore" in loaded
    optional = {"boto3", "botocore", "s3transfer", "fsspec", "s3fs", "rich", "click"}
    assert not loaded & optional
    third_party = loaded - set(sys.stdlib_module_names)
    # _cffi_backend and _openssl are compiled parts of cryptography (and its cffi dependency).
    allowed = {
        "sealstore",
        "cryptography",
        "attr",
        "attrs",
        "typing_extensions",
        "cffi",
        "_cffi_backend",
        "_openssl",
    }
    assert third_party <= allowed, third_party - allowed


def test_every_provider_satisfies_the_core_protocol() -> None:
    """The three providers are all the core's Provider protocol asks (mypy checks the
    assignment), and each mode maps to exactly one of them."""
    providers: tuple[type[Provider], ...] = (
        sealstore.ManagedKeys,
        sealstore.KmsKeys,
        sealstore.CustomerKeys,
    )
    assert {provider.mode for provider in providers} == set(sealstore.Mode)
    assert [provider.per_request for provider in providers] == [False, False, True]
    assert {PROVIDER_FOR_MODE[p.mode] for p in providers} == set(providers)
    assert sealstore.KmsKeys.describe_key_ref(b"\x01\x00\x02k1\x00\x01b") == ("k1", None)
    assert sealstore.ManagedKeys.describe_key_ref(b"v7") == (None, "v7")
    assert sealstore.CustomerKeys.describe_key_ref(bytes(48)) == (None, None)
