"""``RootKey``: the key that seals keyrings and key stores at rest.

A root key comes from an environment variable, a key file, or a passphrase stretched by
scrypt. It never encrypts objects: it seals the documents that hold master keys
(:mod:`sealstore.sealed`), each under a key derived for one purpose and one document salt.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final, final

import attrs
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from sealstore.errors import InvalidKeyError, RootKeyError

__all__ = ["DEFAULT_WORK_FACTOR", "ENV_VARIABLE", "RootKey"]

ENV_VARIABLE: Final = "SEALSTORE_ROOT_KEY"
DEFAULT_WORK_FACTOR: Final = 17
"""log2 of scrypt's N for passphrases (128 MiB of memory with r = 8)."""
_KEY_SIZE: Final = 32
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_MIN_WORK_FACTOR: Final = 10
_MAX_WORK_FACTOR: Final = 22


@final
@attrs.frozen(eq=False)
class RootKey:
    """The secret that seals key material at rest; build it with a ``from_*`` constructor.

    >>> import base64, os
    >>> raw = base64.b64encode(os.urandom(32)).decode()
    >>> root = RootKey.from_env(environ={"SEALSTORE_ROOT_KEY": raw})
    >>> root
    RootKey(<key>)
    """

    _secret: bytes = attrs.field(repr=False)
    _passphrase: bool = attrs.field(default=False, repr=False)
    _work_factor: int = attrs.field(default=DEFAULT_WORK_FACTOR, repr=False)
    _stretched: dict[bytes, bytes] = attrs.field(factory=dict, init=False, repr=False)

    @classmethod
    def from_bytes(cls, key: bytes) -> RootKey:
        """A root key from 32 random bytes."""
        if not isinstance(key, bytes) or len(key) != _KEY_SIZE:
            raise InvalidKeyError("a root key must be 32 bytes")
        return cls(key)

    @classmethod
    def from_base64(cls, text: str) -> RootKey:
        """A root key from the base64 encoding of 32 bytes."""
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidKeyError("a root key must be the base64 encoding of 32 bytes") from None
        if len(key) != _KEY_SIZE:
            raise InvalidKeyError(
                f"a root key must be the base64 encoding of 32 bytes, not {len(key)}"
            )
        return cls(key)

    @classmethod
    def from_env(
        cls, name: str = ENV_VARIABLE, *, environ: Mapping[str, str] | None = None
    ) -> RootKey:
        """A root key from an environment variable holding base64 of 32 bytes."""
        value = (os.environ if environ is None else environ).get(name)
        if not value:
            raise RootKeyError(
                f"the environment variable {name} is not set: set it to the base64 of 32 "
                "random bytes (for example: python -c 'import base64, os; "
                "print(base64.b64encode(os.urandom(32)).decode())')"
            )
        return cls.from_base64(value)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RootKey:
        """A root key from a file holding either 32 raw bytes or their base64 encoding."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise RootKeyError(f"cannot read the root key file {path}: {error.strerror}") from None
        if len(data) == _KEY_SIZE:
            return cls(data)
        try:
            return cls.from_base64(data.decode("ascii"))
        except UnicodeDecodeError:
            raise InvalidKeyError(
                f"the root key file {path} must hold 32 bytes or their base64 encoding"
            ) from None

    @classmethod
    def from_passphrase(cls, passphrase: str, *, work_factor: int = DEFAULT_WORK_FACTOR) -> RootKey:
        """A root key stretched from a passphrase with scrypt (N = 2**work_factor, r = 8).

        The salt is drawn when a sealed file is first written and stored in it, so the same
        passphrase opens the file later.
        """
        if not isinstance(passphrase, str) or not passphrase:
            raise InvalidKeyError("a root key passphrase must be a non-empty str")
        if not _MIN_WORK_FACTOR <= work_factor <= _MAX_WORK_FACTOR:
            raise InvalidKeyError(
                f"the scrypt work factor must be between {_MIN_WORK_FACTOR} and {_MAX_WORK_FACTOR}"
            )
        return cls(passphrase.encode(), passphrase=True, work_factor=work_factor)

    @staticmethod
    def generate() -> str:
        """A new random root key, base64-encoded, for ``SEALSTORE_ROOT_KEY`` or a key file."""
        return base64.b64encode(os.urandom(_KEY_SIZE)).decode()

    @property
    def kdf_parameters(self) -> tuple[int, int, int]:
        """``(log2 N, r, p)`` of scrypt for a passphrase, ``(0, 0, 0)`` for a raw key."""
        if self._passphrase:
            return self._work_factor, _SCRYPT_R, _SCRYPT_P
        return 0, 0, 0

    def derive(self, purpose: bytes, salt: bytes, kdf: tuple[int, int, int]) -> bytes:
        """The 32-byte sealing key for ``purpose`` and a file's ``salt``.

        ``kdf`` are the scrypt parameters stored in the file: a file sealed under a
        passphrase asks for a passphrase root key, and the other way round.
        """
        if kdf != self.kdf_parameters:
            kind = "a passphrase" if kdf[0] else "a 32-byte key"
            raise RootKeyError(
                f"this file was sealed under {kind} with other parameters; supply the root "
                "key it was sealed with"
            )
        secret = self._secret
        if self._passphrase:
            secret = self._stretched.get(salt) or self._stretch(salt)
        return HKDF(SHA256(), _KEY_SIZE, salt, b"sealstore/v1 root " + purpose).derive(secret)

    def _stretch(self, salt: bytes) -> bytes:
        stretched = Scrypt(salt, _KEY_SIZE, 1 << self._work_factor, _SCRYPT_R, _SCRYPT_P).derive(
            self._secret
        )
        if len(self._stretched) >= 16:  # one entry per sealed file opened: keep it bounded
            self._stretched.clear()
        self._stretched[salt] = stretched
        return stretched

    def __repr__(self) -> str:
        return "RootKey(<passphrase>)" if self._passphrase else "RootKey(<key>)"
