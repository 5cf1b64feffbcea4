"""``KmsKeys``: data keys from a key management service (like SSE-KMS).

Each object's data key is wrapped under a key the KMS generates: per object by default
(one KMS call per write and per read, every use audited by the KMS), or, with bucket keys,
one KMS-generated key reused for many objects within bounds on age, count and bytes, and
cached for decryption (far fewer KMS calls, like S3 Bucket Keys).

Key reference layout in the header (``docs/format.md``)::

    kind | u16 len | key id (UTF-8) | u16 len | KMS blob

Kinds 1 (per-object key) and 2 (bucket key) bind the whole key reference, blob included, into
the associated data of the data key's wrap. Kinds 3 and 4, which every write now uses, bind
only the kind byte: the KMS itself binds the blob to its key (and, per object, to the
object's context), so a rewrap can replace the blob with one the KMS re-encrypted, without
the key-encryption key ever leaving the KMS. Objects of kinds 1 and 2 are still read.

The KMS encryption context of a per-object key is the object's encryption context; that of
a bucket key is :data:`BUCKET_KEY_CONTEXT`.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import ClassVar, Final, TypeVar, final

import attrs

from sealstore import _aead
from sealstore.clock import utc_now
from sealstore.errors import (
    DecryptionError,
    FormatError,
    InvalidKeyError,
    KeyNotTrustedError,
    SealstoreError,
)
from sealstore.header import Header, Mode, key_binding
from sealstore.kms.base import (
    BatchDecryptingKmsClient,
    BatchReencryptingKmsClient,
    DataKey,
    KmsClient,
    ReencryptingKmsClient,
    RotationAwareKmsClient,
)
from sealstore.kms.policy import check_principal

__all__ = ["BUCKET_KEY_CONTEXT", "BucketKeyPolicy", "KmsKeys"]

PER_OBJECT: Final = 1
BUCKET_KEY: Final = 2
PER_OBJECT_REWRAPPABLE: Final = 3
"""A per-object key whose wrap binds the kind only, so the KMS can replace its blob."""
BUCKET_KEY_REWRAPPABLE: Final = 4
"""A bucket key whose wrap binds the kind only, so the KMS can replace its blob."""
_PER_OBJECT_KINDS = frozenset({PER_OBJECT, PER_OBJECT_REWRAPPABLE})
BUCKET_KEY_KINDS: Final = frozenset({BUCKET_KEY, BUCKET_KEY_REWRAPPABLE})
"""The key-reference kinds of objects under a bucket key."""
_REWRAPPABLE_KINDS = frozenset({PER_OBJECT_REWRAPPABLE, BUCKET_KEY_REWRAPPABLE})
_KINDS = frozenset({PER_OBJECT, BUCKET_KEY, PER_OBJECT_REWRAPPABLE, BUCKET_KEY_REWRAPPABLE})
BUCKET_KEY_CONTEXT: Final[Mapping[str, str]] = MappingProxyType({"sealstore:purpose": "bucket-key"})
"""The KMS encryption context under which bucket keys are generated."""
MAX_KEY_ID_SIZE: Final = 2048
MAX_BLOB_SIZE: Final = 1024
_U16 = struct.Struct(">H")
_T = TypeVar("_T")
_A = TypeVar("_A")


@attrs.frozen
class BucketKeyPolicy:
    """Bounds on one bucket key's use, for writing and for the decryption cache.

    A bucket key is replaced by a fresh one from the KMS once it is ``max_age`` old, has
    wrapped ``max_objects`` data keys, or covers ``max_bytes`` of plaintext. Readers keep at
    most ``cache_size`` unwrapped bucket keys, each for at most ``cache_ttl``.
    """

    max_age: timedelta = timedelta(minutes=15)
    max_objects: int = attrs.field(default=4096, validator=attrs.validators.gt(0))
    max_bytes: int = attrs.field(default=1 << 40, validator=attrs.validators.gt(0))
    cache_size: int = attrs.field(default=1024, validator=attrs.validators.gt(0))
    cache_ttl: timedelta = timedelta(minutes=5)


@attrs.define
class _BucketKey:
    data_key: DataKey = attrs.field(repr=False)
    key_ref: bytes = attrs.field(repr=False)
    wrapper: _aead.KeyWrapper = attrs.field(repr=False)
    created: datetime
    objects: int = 0
    bytes: int = 0


@attrs.define
class _BucketState:
    """Mutable state behind a frozen provider: the current bucket key and the read cache."""

    lock: threading.Lock = attrs.field(factory=threading.Lock)
    current: _BucketKey | None = None
    cache: OrderedDict[bytes, tuple[_aead.KeyWrapper, datetime]] = attrs.field(factory=OrderedDict)
    default_key_id: str | None = None
    resolved: dict[str, str] = attrs.field(factory=dict)
    """The key id the KMS reports for each key id or alias this provider used."""
    prefetched: dict[bytes, bytes] = attrs.field(factory=dict)
    """Per-object KEKs opened ahead by :meth:`KmsKeys.prefetch`, each used once."""
    rewrapped_ahead: dict[bytes, bytes] = attrs.field(factory=dict)
    """Per-object key references the KMS re-encrypted ahead (by :meth:`KmsKeys.prefetch`),
    by the key reference they replace, each used once."""
    reencrypted: OrderedDict[bytes, bytes] = attrs.field(factory=OrderedDict)
    """The key reference a bucket key's KMS re-encryption gave, by the one it replaced: the
    objects sharing a bucket key keep sharing it after a rewrap (one KMS call for them all)."""


def encode_key_ref(kind: int, key_id: str, blob: bytes) -> bytes:
    """The header key reference for a KMS key id and blob."""
    key_id_bytes = key_id.encode()
    if not 0 < len(key_id_bytes) <= MAX_KEY_ID_SIZE or not 0 < len(blob) <= MAX_BLOB_SIZE:
        raise InvalidKeyError("the KMS returned a key id or blob outside sealstore's limits")
    return (
        bytes((kind,)) + _U16.pack(len(key_id_bytes)) + key_id_bytes + _U16.pack(len(blob)) + blob
    )


def decode_key_ref(key_ref: bytes) -> tuple[int, str, bytes]:
    """``(kind, key id, blob)`` of a KMS key reference; :class:`FormatError` if malformed."""
    try:
        kind = key_ref[0]
        (id_size,) = _U16.unpack_from(key_ref, 1)
        blob_at = 3 + id_size
        (blob_size,) = _U16.unpack_from(key_ref, blob_at)
    except (IndexError, struct.error):
        raise FormatError("malformed header: the KMS key reference is truncated") from None
    if (
        kind not in _KINDS
        or not 0 < id_size <= MAX_KEY_ID_SIZE
        or not 0 < blob_size <= MAX_BLOB_SIZE
        or blob_at + 2 + blob_size != len(key_ref)
    ):
        raise FormatError("malformed header: the KMS key reference breaks its layout")
    try:
        key_id = key_ref[3:blob_at].decode()
    except UnicodeDecodeError:
        raise FormatError("malformed header: the KMS key id is not UTF-8") from None
    return kind, key_id, key_ref[blob_at + 2 :]


def wrap_binding(key_ref: bytes) -> bytes:
    """What of a KMS key reference the data key's wrap authenticates: all of it for kinds 1
    and 2, the kind byte alone for kinds 3 and 4 (``docs/format.md``)."""
    return key_ref[:1] if key_ref[:1] and key_ref[0] in _REWRAPPABLE_KINDS else key_ref


def _answered(
    items: Sequence[tuple[bytes, bytes, Mapping[str, str]]],
    results: Sequence[_A | SealstoreError],
    keep: Callable[[_A], bytes],
) -> dict[bytes, bytes]:
    """``keep(result)`` by key reference, for the items a batch answered without an error."""
    return {
        key_ref: keep(result)
        for (key_ref, _, _), result in zip(items, results, strict=True)
        if not isinstance(result, SealstoreError)
    }


def _key_id_set(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise InvalidKeyError("trusted_key_ids is a collection of key ids, not one string")
    return frozenset(value)


def _bucket_policy(value: BucketKeyPolicy | bool | None) -> BucketKeyPolicy | None:
    if value is True:
        return BucketKeyPolicy()
    if value is False or value is None:
        return None
    return value


@final
@attrs.frozen(eq=False)
class KmsKeys:
    """Data keys generated and unwrapped by a KMS, on behalf of ``principal``.

    >>> import os, tempfile, sealstore
    >>> root = sealstore.RootKey.from_bytes(os.urandom(32))
    >>> kms = sealstore.LocalKms(tempfile.mkdtemp(), root_key=root, create=True)
    >>> keys = sealstore.KmsKeys(kms, principal="billing-service")
    >>> sealstore.decrypt(sealstore.encrypt(b"invoice", keys), keys)
    b'invoice'

    With no ``key_id`` the KMS's default key is used (created on first use). Pass
    ``bucket_key=True`` (or a :class:`BucketKeyPolicy`) to reuse one KMS-generated key for
    many objects and cache unwrapped keys: far fewer KMS calls, coarser audit.

    Reads trust only this provider's key: an object whose header names another KMS key is
    decrypted by asking the KMS to open its blob *under this provider's key*, which the KMS
    refuses (:class:`~sealstore.KeyNotTrustedError`), so someone who can write to the storage
    cannot pass off an object made under a key they control. ``trusted_key_ids`` names more
    keys to read (as the KMS reports them in headers: key ids, ARNs for AWS), for example the
    old key during a migration to a new one.
    """

    mode: ClassVar[Mode] = Mode.KMS
    per_request: ClassVar[bool] = False

    client: KmsClient
    key_id: str | None = None
    principal: str = attrs.field(default="default", validator=lambda _i, _a, v: check_principal(v))
    bucket_key: BucketKeyPolicy | None = attrs.field(default=None, converter=_bucket_policy)
    clock: Callable[[], datetime] = attrs.field(default=utc_now, repr=False)
    trusted_key_ids: frozenset[str] = attrs.field(
        default=frozenset(), converter=_key_id_set, kw_only=True
    )
    _state: _BucketState = attrs.field(factory=_BucketState, init=False, repr=False)

    def wrap_data_key(
        self, data_key: bytes, immutable: bytes, context: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        """Wrap ``data_key`` under a KMS-generated key; return ``(key ref, wrapped key)``."""
        if self.bucket_key is None:
            asked = self._key_id()
            kms_key = self.client.generate_data_key(asked, context, principal=self.principal)
            self._state.resolved[asked] = kms_key.key_id
            key_ref = encode_key_ref(PER_OBJECT_REWRAPPABLE, kms_key.key_id, kms_key.blob)
            wrapper = _aead.KeyWrapper(kms_key.plaintext)
        else:
            key_ref, wrapper = self._bucket_key_for_write(self.bucket_key)
        return key_ref, wrapper.wrap(data_key, key_binding(immutable, wrap_binding(key_ref)))

    def unwrap_data_key(self, header: Header) -> bytes:
        """Recover the data key of a KMS-mode header, asking the KMS unless cached.

        The KMS is asked to open the blob under this provider's key (or the key the header
        names, if it is one of ``trusted_key_ids``); :class:`~sealstore.KeyNotTrustedError`
        when the blob was made under another key.
        """
        kind, key_id, blob = decode_key_ref(header.key_ref)
        if kind in _PER_OBJECT_KINDS:
            with self._state.lock:
                plaintext = self._state.prefetched.pop(header.key_ref, None)
            if plaintext is None:
                plaintext = self._decrypt(key_id, blob, header.context)
            wrapper = _aead.KeyWrapper(plaintext)
        else:
            wrapper = self._bucket_key_for_read(header.key_ref, key_id, blob)
        binding = key_binding(header.immutable, wrap_binding(header.key_ref))
        return wrapper.unwrap(header.wrapped_key, binding)

    def rewrap_data_key(self, header: Header, source: object) -> tuple[bytes, bytes] | None:
        """A new ``(key ref, wrapped key)`` for a KMS-mode header, made by the KMS
        re-encrypting the blob under this provider's key (its newest material), without the
        key-encryption key leaving the KMS; ``None`` when that cannot be done and the data
        key must be unwrapped and wrapped again.

        It is done for objects of kinds 3 and 4, read by ``source`` (a ``KmsKeys`` over the
        same client) under the very key this provider writes with, when the client can
        re-encrypt (:class:`~sealstore.kms.base.ReencryptingKmsClient`). The wrapped data key
        is kept as it is. Objects sharing a bucket key still share one after the rewrap.
        """
        kind, key_id, blob = decode_key_ref(header.key_ref)
        client = self.client
        if not isinstance(source, KmsKeys) or not self._reencrypts(kind, key_id, source):
            return None
        assert isinstance(client, ReencryptingKmsClient)  # checked by _reencrypts
        with source._state.lock:
            ahead = source._state.rewrapped_ahead.pop(header.key_ref, None)
        if ahead is not None:
            return ahead, header.wrapped_key
        asked = source._asked(key_id)
        state = self._state
        if kind == BUCKET_KEY_REWRAPPABLE:
            with state.lock:
                done = state.reencrypted.get(header.key_ref)
            if done is not None:
                return done, header.wrapped_key
        context = header.context if kind == PER_OBJECT_REWRAPPABLE else BUCKET_KEY_CONTEXT
        new_id, new_blob = source._trusting(
            key_id,
            asked,
            lambda: client.reencrypt(asked, blob, context, asked, principal=self.principal),
        )
        key_ref = encode_key_ref(kind, new_id, new_blob)
        if kind == BUCKET_KEY_REWRAPPABLE:
            with state.lock:
                state.reencrypted[header.key_ref] = key_ref
                while len(state.reencrypted) > (self.bucket_key or BucketKeyPolicy()).cache_size:
                    state.reencrypted.popitem(last=False)
        return key_ref, header.wrapped_key

    def prefetch(self, headers: Sequence[Header], *, rewrapped_by: object = None) -> None:
        """Prepare, in one KMS request per key and batch, what unwrapping or rewrapping the
        per-object keys of ``headers`` will need, for a bulk operation about to handle
        them one by one.

        Blobs that ``rewrapped_by`` (the provider a rewrap wraps with) will have the KMS
        re-encrypt (:meth:`rewrap_data_key`) are re-encrypted ahead, with a client that
        does so in batches (:class:`~sealstore.kms.base.BatchReencryptingKmsClient`); the
        other blobs are opened ahead, with a client that decrypts in batches
        (:class:`~sealstore.kms.base.BatchDecryptingKmsClient`). Each result is kept until
        its object is handled, and the previous prefetch's leftovers are dropped (so
        ``prefetch(())`` drops everything). A blob a batch could not handle is left out:
        handling that object asks the KMS again and raises its error there. Bucket keys
        are not fetched (their cache and re-encryption memo serve them).
        """
        client = self.client
        with self._state.lock:
            self._state.prefetched = {}
            self._state.rewrapped_ahead = {}
        to_open: dict[str, list[tuple[bytes, bytes, Mapping[str, str]]]] = {}
        to_rewrap: dict[str, list[tuple[bytes, bytes, Mapping[str, str]]]] = {}
        for header in headers:
            try:
                kind, key_id, blob = decode_key_ref(header.key_ref)
            except FormatError:
                continue  # reported when that object is handled
            if kind not in _PER_OBJECT_KINDS:
                continue
            if isinstance(rewrapped_by, KmsKeys) and rewrapped_by._reencrypts(kind, key_id, self):
                groups = to_rewrap
            else:
                groups = to_open
            groups.setdefault(self._asked(key_id), []).append(
                (header.key_ref, blob, header.context)
            )
        opened: dict[bytes, bytes] = {}
        if isinstance(client, BatchDecryptingKmsClient):
            for asked, items in to_open.items():
                results = client.decrypt_many(
                    asked, [(blob, context) for _, blob, context in items], principal=self.principal
                )
                opened.update(_answered(items, results, lambda plaintext: plaintext))
        rewrapped: dict[bytes, bytes] = {}
        if isinstance(client, BatchReencryptingKmsClient):
            for asked, items in to_rewrap.items():
                answers = client.reencrypt_many(
                    asked,
                    [(blob, context) for _, blob, context in items],
                    asked,
                    principal=self.principal,
                )
                rewrapped.update(
                    _answered(
                        items,
                        answers,
                        lambda answer: encode_key_ref(PER_OBJECT_REWRAPPABLE, *answer),
                    )
                )
        with self._state.lock:
            self._state.prefetched = opened
            self._state.rewrapped_ahead = rewrapped

    def _reencrypts(self, kind: int, key_id: str, source: KmsKeys) -> bool:
        """Whether :meth:`rewrap_data_key` has the KMS re-encrypt a blob of ``kind`` naming
        ``key_id`` that ``source`` reads: a rewrappable kind, the same client able to
        re-encrypt, and the key ``source`` opens it under is the one this provider writes
        with (not every KMS re-encrypts across keys; Transit does not)."""
        if (
            kind not in _REWRAPPABLE_KINDS
            or source.client is not self.client
            or not isinstance(self.client, ReencryptingKmsClient)
        ):
            return False
        target = self._key_id()
        return source._asked(key_id) in (target, self._state.resolved.get(target))

    def _asked(self, key_id: str) -> str:
        """The key this provider asks the KMS to open a blob naming ``key_id`` under."""
        return key_id if key_id in self.trusted_key_ids else self._key_id()

    def _decrypt(self, key_id: str, blob: bytes, context: Mapping[str, str]) -> bytes:
        """The KMS's plaintext of ``blob``, opened only under a key this provider trusts."""
        asked = self._asked(key_id)
        return self._trusting(
            key_id,
            asked,
            lambda: self.client.decrypt(asked, blob, context, principal=self.principal),
        )

    def _trusting(self, key_id: str, asked: str, call: Callable[[], _T]) -> _T:
        """``call()``, a KMS request opening a blob naming ``key_id`` under ``asked``; a
        refusal because the blob is not under ``asked`` is :class:`KeyNotTrustedError`."""
        try:
            result = call()
        except DecryptionError:
            if asked == key_id:
                raise
            raise KeyNotTrustedError(
                f"the object names KMS key {key_id!r}, and the KMS would not open its blob "
                f"under {asked!r}, the key this provider reads: it was written under another "
                "key (add that key to trusted_key_ids= to read it, e.g. during a migration), "
                "or its key reference was altered"
            ) from None
        # The KMS opened the blob under the key asked for, so that is the key the header names.
        self._state.resolved[asked] = key_id
        return result

    def record_plaintext_bytes(self, key_ref: bytes, size: int) -> None:
        """Count ``size`` bytes encrypted under the data key wrapped with ``key_ref``.

        The envelope calls this once an object's size is known, so the bucket key in use is
        replaced once it covers ``max_bytes``.
        """
        if self.bucket_key is None:
            return
        with self._state.lock:
            current = self._state.current
            if current is not None and current.key_ref == key_ref:
                current.bytes += size

    def is_current(self, key_ref: bytes) -> bool:
        """Whether ``key_ref`` names this provider's key, as far as it knows the id the KMS
        reports for it (learnt from its own writes and reads; an alias is not resolved until
        then), and its blob was made under that key's newest material.

        A KMS's own rotation keeps the key id, so the material is asked of a client that can
        tell (:class:`~sealstore.kms.base.RotationAwareKmsClient`: Transit's key versions,
        LocalKms's material versions): after a rotation, a rewrap without ``force`` moves
        the objects still under older material. With other clients (AWS KMS, whose rotation
        is transparent) a blob naming the key is current.
        """
        _kind, key_id, blob = decode_key_ref(key_ref)
        own = self._key_id()
        if key_id != own and key_id != self._state.resolved.get(own):
            return False
        client = self.client
        if isinstance(client, RotationAwareKmsClient):
            return client.blob_is_current(key_id, blob, principal=self.principal)
        return True

    @staticmethod
    def describe_key_ref(key_ref: bytes) -> tuple[str | None, str | None]:
        """``(KMS key id, None)``; :class:`~sealstore.FormatError` if malformed."""
        return decode_key_ref(key_ref)[1], None

    def _key_id(self) -> str:
        if self.key_id is not None:
            return self.key_id
        state = self._state
        if state.default_key_id is None:
            # Resolved once per provider: the KMS creates the default key on first use.
            state.default_key_id = self.client.default_key_id(principal=self.principal)
        return state.default_key_id

    def _bucket_key_for_write(self, policy: BucketKeyPolicy) -> tuple[bytes, _aead.KeyWrapper]:
        state = self._state
        with state.lock:
            now = self.clock()
            current = state.current
            if (
                current is None
                or now - current.created >= policy.max_age
                or current.objects >= policy.max_objects
                or current.bytes >= policy.max_bytes
            ):
                asked = self._key_id()
                kms_key = self.client.generate_data_key(
                    asked, BUCKET_KEY_CONTEXT, principal=self.principal
                )
                state.resolved[asked] = kms_key.key_id
                key_ref = encode_key_ref(BUCKET_KEY_REWRAPPABLE, kms_key.key_id, kms_key.blob)
                current = _BucketKey(kms_key, key_ref, _aead.KeyWrapper(kms_key.plaintext), now)
                state.current = current
                # Not put in the read cache: reading back must be allowed (and audited) by the
                # KMS's decrypt, even for the principal that wrote.
            current.objects += 1
            return current.key_ref, current.wrapper

    def _bucket_key_for_read(self, key_ref: bytes, key_id: str, blob: bytes) -> _aead.KeyWrapper:
        policy = self.bucket_key or BucketKeyPolicy()
        state = self._state
        now = self.clock()
        with state.lock:
            cached = state.cache.get(key_ref)
            if cached is not None and cached[1] > now:
                state.cache.move_to_end(key_ref)
                return cached[0]
        # Ask the KMS outside the lock: other threads keep using the cache meanwhile.
        plaintext = self._decrypt(key_id, blob, BUCKET_KEY_CONTEXT)
        wrapper = _aead.KeyWrapper(plaintext)
        with state.lock:
            self._cache_put(policy, key_ref, wrapper, now)
        return wrapper

    def _cache_put(
        self, policy: BucketKeyPolicy, key_ref: bytes, wrapper: _aead.KeyWrapper, now: datetime
    ) -> None:
        cache = self._state.cache
        cache[key_ref] = (wrapper, now + policy.cache_ttl)
        cache.move_to_end(key_ref)
        while len(cache) > policy.cache_size:
            cache.popitem(last=False)
