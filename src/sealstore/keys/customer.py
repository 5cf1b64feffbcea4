"""``CustomerKeys``: a key the caller holds and supplies on every request (like SSE-C)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import ClassVar, final

import attrs

from sealstore import _aead, fingerprint
from sealstore.errors import FormatError, InvalidKeyError, WrongKeyError
from sealstore.header import Header, Mode, key_binding

__all__ = ["CustomerKeys"]

_KEY_REF_SIZE = fingerprint.SALT_SIZE + fingerprint.FINGERPRINT_SIZE


def _check_key(key: object) -> None:
    if not isinstance(key, bytes):
        raise InvalidKeyError(
            f"a customer key must be 32 bytes, not {type(key).__name__}; "
            "decode a base64 or hex key to bytes first"
        )
    if len(key) != _aead.KEY_SIZE:
        raise InvalidKeyError(f"a customer key must be 32 bytes, got {len(key)}")


@final
@attrs.frozen(eq=False)
class CustomerKeys:
    """A 256-bit key held by the caller and never stored (the SSE-C mode).

    Each object's data key is wrapped under it. The header keeps only a salt and an HMAC
    fingerprint of the key, so reading with a different key raises
    :class:`~sealstore.WrongKeyError` before anything is decrypted::

        >>> import os, sealstore
        >>> keys = sealstore.CustomerKeys(os.urandom(32))
        >>> blob = sealstore.encrypt(b"hello", keys)
        >>> sealstore.decrypt(blob, keys)
        b'hello'

    One instance draws one random salt, so the objects it writes carry the same salt and
    fingerprint: they can be seen to share a key (which is true of them), and computing the
    fingerprint is paid once rather than per object. Use one instance per object to make
    objects under the same key unlinkable. Each wrap uses a random 96-bit nonce: stay well
    under 2^32 objects per customer key.
    """

    mode: ClassVar[Mode] = Mode.CUSTOMER

    key: bytes = attrs.field(repr=False)
    _key_ref: bytes = attrs.field(init=False, repr=False)
    _own_binding: bytes = attrs.field(init=False, repr=False)
    _wrapper: _aead.KeyWrapper = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check_key(self.key)
        salt = os.urandom(fingerprint.SALT_SIZE)
        key_ref = salt + fingerprint.customer_fingerprint(self.key, salt)
        object.__setattr__(self, "_key_ref", key_ref)
        # key_binding(immutable, key_ref) == immutable + this, for this instance's references.
        object.__setattr__(self, "_own_binding", key_binding(b"", key_ref))
        object.__setattr__(self, "_wrapper", _aead.KeyWrapper(self.key))

    def wrap_data_key(
        self, data_key: bytes, immutable: bytes, context: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        """Wrap ``data_key`` for a header whose immutable fields are ``immutable``.

        Returns ``(key reference, wrapped key)``.
        """
        return self._key_ref, self._wrapper.wrap(data_key, immutable + self._own_binding)

    def unwrap_data_key(self, header: Header) -> bytes:
        """Recover the data key of ``header``; :class:`WrongKeyError` if the key differs."""
        key_ref = header.key_ref
        # The common case: written by this instance, so the reference is ours byte for byte
        # (both sides are public, so comparing them in variable time reveals nothing).
        if key_ref == self._key_ref:
            binding = header.immutable + self._own_binding
        else:
            self._check_fingerprint(key_ref)
            binding = key_binding(header.immutable, key_ref)
        return self._wrapper.unwrap(header.wrapped_key, binding)

    def _check_fingerprint(self, key_ref: bytes) -> None:
        if len(key_ref) != _KEY_REF_SIZE:
            raise FormatError("malformed header: a customer key reference is 48 bytes")
        salt = key_ref[: fingerprint.SALT_SIZE]
        expected = fingerprint.customer_fingerprint(self.key, salt)
        if not fingerprint.matches(key_ref[fingerprint.SALT_SIZE :], expected):
            raise WrongKeyError(
                "this object was encrypted under a different customer key; "
                "supply the key it was written with"
            )
