"""``CustomerKeys``: a key the caller holds and supplies on every request (like SSE-C)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import ClassVar, final

import attrs

from sealstore import _aead, fingerprint
from sealstore.audit import AuditEvent, AuditSink, Operation, Outcome
from sealstore.clock import utc_now
from sealstore.errors import DecryptionError, FormatError, InvalidKeyError, WrongKeyError
from sealstore.header import Header, Mode, key_binding

__all__ = ["CustomerKeys"]

_KEY_REF_SIZE = fingerprint.SALT_SIZE + fingerprint.FINGERPRINT_SIZE
_KEY_ID_LABEL = b"sealstore/v1 customer key id\x00"


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

    Given an ``audit`` sink, every wrap, unwrap and wrong key offered is recorded under
    :attr:`key_id`, a stable identifier derived from the key that reveals nothing about it.
    """

    mode: ClassVar[Mode] = Mode.CUSTOMER
    per_request: ClassVar[bool] = True

    key: bytes = attrs.field(repr=False)
    audit: AuditSink | None = attrs.field(default=None, kw_only=True)
    principal: str = attrs.field(default="default", kw_only=True)
    clock: Callable[[], datetime] = attrs.field(default=utc_now, kw_only=True, repr=False)
    key_id: str = attrs.field(init=False)
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
        key_id = "customer:" + fingerprint.hmac_sha256(self.key, _KEY_ID_LABEL)[:8].hex()
        object.__setattr__(self, "key_id", key_id)

    def wrap_data_key(
        self, data_key: bytes, immutable: bytes, context: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        """Wrap ``data_key`` for a header whose immutable fields are ``immutable``.

        Returns ``(key reference, wrapped key)``.
        """
        wrapped = self._wrapper.wrap(data_key, immutable + self._own_binding)
        if self.audit is not None:
            self._record(Operation.GENERATE, context, Outcome.SUCCESS)
        return self._key_ref, wrapped

    def unwrap_data_key(self, header: Header) -> bytes:
        """Recover the data key of ``header``; :class:`WrongKeyError` if the key differs."""
        key_ref = header.key_ref
        if self.audit is not None:
            return self._audited_unwrap(header)
        # The common case: written by this instance, so the reference is ours byte for byte
        # (both sides are public, so comparing them in variable time reveals nothing).
        if key_ref == self._key_ref:
            binding = header.immutable + self._own_binding
        else:
            self._check_fingerprint(key_ref)
            binding = key_binding(header.immutable, key_ref)
        return self._wrapper.unwrap(header.wrapped_key, binding)

    def rewrap_data_key(self, header: Header, source: object) -> None:
        """Never: a customer key is only ever used in hand."""
        return None

    def record_plaintext_bytes(self, key_ref: bytes, size: int) -> None:
        """Nothing to account for: a customer key has no limit on what it covers."""

    def is_current(self, key_ref: bytes) -> bool:
        """Whether ``key_ref`` is the fingerprint of this customer key."""
        if key_ref == self._key_ref:
            return True
        try:
            self._check_fingerprint(key_ref)
        except (WrongKeyError, FormatError):
            return False
        return True

    @staticmethod
    def describe_key_ref(key_ref: bytes) -> tuple[str | None, str | None]:
        """A customer key reference names no key: ``(None, None)``."""
        return None, None

    def _audited_unwrap(self, header: Header) -> bytes:
        try:
            if header.key_ref != self._key_ref:
                self._check_fingerprint(header.key_ref)
            data_key = self._wrapper.unwrap(
                header.wrapped_key, key_binding(header.immutable, header.key_ref)
            )
        except WrongKeyError:
            self._record(Operation.WRONG_CUSTOMER_KEY, header.context, Outcome.FAILURE, "wrong key")
            raise
        except (DecryptionError, FormatError):
            self._record(Operation.UNWRAP, header.context, Outcome.FAILURE, "header tampered")
            raise
        self._record(Operation.UNWRAP, header.context, Outcome.SUCCESS)
        return data_key

    def _record(
        self, operation: Operation, context: Mapping[str, str], outcome: Outcome, reason: str = ""
    ) -> None:
        if self.audit is None:  # pragma: no cover - callers check first
            return
        self.audit.record(
            AuditEvent(
                time=self.clock(),
                principal=self.principal,
                operation=operation,
                key_id=self.key_id,
                context_keys=tuple(sorted(context)),
                outcome=outcome,
                reason=reason,
            )
        )

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
