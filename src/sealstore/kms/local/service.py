"""The service a LocalKms gives applications: data keys, decryption, re-encryption and the
default key, under key policies and automatic yearly rotation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Final, final

from sealstore import _aead
from sealstore.audit import AuditEvent, Operation
from sealstore.header import encode_context
from sealstore.kms.base import DEFAULT_ALIAS, DataKey
from sealstore.kms.local.admin import Administration
from sealstore.kms.local.auditing import Call
from sealstore.kms.local.blob import check_blob, material_version, seal_blob, unseal_blob
from sealstore.kms.local.checks import USE_STATES, authorize, check_name, require_state
from sealstore.kms.local.document import Key, KeyState, Store, new_key
from sealstore.kms.policy import (
    ANY_PRINCIPAL,
    AUDITED_AS,
    KeyOperation,
    KeyPolicy,
    check_principal,
)

__all__ = ["DEFAULT_ALIAS", "LocalKms"]

_DEFAULT_KEY_POLICY: Final = KeyPolicy(
    dict.fromkeys(
        (
            KeyOperation.GENERATE,
            KeyOperation.DECRYPT,
            KeyOperation.REENCRYPT_FROM,
            KeyOperation.REENCRYPT_TO,
            KeyOperation.DESCRIBE,
        ),
        (ANY_PRINCIPAL,),
    )
)


@final
class LocalKms(Administration):
    """An embedded key management service: master keys, aliases, policies and rotation,
    persisted (sealed under ``root_key``) in the directory ``path``.

    It implements :class:`~sealstore.kms.KmsClient`. Every call names the ``principal``
    making it; key policies decide what each principal may do. Every use, change, denial
    and failure is recorded in ``audit`` (by default the hash-chained log
    ``path / "audit.jsonl"``). ``clock`` returns the current time as an aware datetime.

    ``path`` must hold a key store unless ``create=True``, which makes one (and the directory,
    whose parent must exist) if there is none. ``min_sequence`` refuses a key store older
    than a :attr:`sequence` read earlier and kept elsewhere.

    >>> import pathlib, tempfile
    >>> from sealstore.sealed import RootKey
    >>> root_key = RootKey.from_bytes(bytes(32))
    >>> kms = LocalKms(pathlib.Path(tempfile.mkdtemp()), root_key=root_key, create=True)
    >>> key_id = kms.create_key(principal="alice").key_id
    >>> kms.create_alias("alias/orders", key_id, principal="alice")
    >>> data_key = kms.generate_data_key("alias/orders", {"bucket": "b"}, principal="alice")
    >>> data_key.key_id == key_id
    True
    >>> kms.decrypt(key_id, data_key.blob, {"bucket": "b"}, principal="alice") == data_key.plaintext
    True
    """

    def __repr__(self) -> str:
        return f"LocalKms({str(self._path)!r})"

    # The KmsClient protocol.

    def generate_data_key(
        self, key_id: str, context: Mapping[str, str], *, principal: str
    ) -> DataKey:
        """A fresh 32-byte data key and its blob under the newest material of ``key_id``.

        ``key_id`` may be an alias; the result names the key's real id.
        """
        with self._audited(KeyOperation.GENERATE, principal, key_id, context) as call:
            principal = check_principal(principal)
            name = check_name(key_id)
            encoded = encode_context(context)
            now = self._now()
            store = self._current(now, principal)
            key = self._usable(store, name, principal, call, KeyOperation.GENERATE)
            store, key = self._rotated_if_due(store, key, now, principal, KeyOperation.GENERATE)
            material = key.newest
            call.version = material.version
            data_key = os.urandom(_aead.KEY_SIZE)
            return DataKey(key.key_id, data_key, seal_blob(store, key, material, data_key, encoded))

    def decrypt(
        self, key_id: str, blob: bytes, context: Mapping[str, str], *, principal: str
    ) -> bytes:
        """The data key in ``blob``, which must name ``key_id`` (or the key it is an alias of)
        and have been made with exactly ``context``; otherwise :class:`DecryptionError`."""
        with self._audited(KeyOperation.DECRYPT, principal, key_id, context) as call:
            principal = check_principal(principal)
            name = check_name(key_id)
            encoded = encode_context(context)
            check_blob(blob)
            store = self._current(self._now(), principal)
            key = self._usable(store, name, principal, call, KeyOperation.DECRYPT)
            return unseal_blob(store, key, blob, encoded, call)[1]

    def reencrypt(
        self,
        key_id: str,
        blob: bytes,
        context: Mapping[str, str],
        new_key_id: str,
        *,
        principal: str,
    ) -> tuple[str, bytes]:
        """The data key in ``blob`` as a new blob under the newest material of
        ``new_key_id``, with the same context: ``(real key id, new blob)``.

        Re-encrypting to the same key moves a blob onto the key's newest material.
        """
        with self._audited(KeyOperation.REENCRYPT_FROM, principal, key_id, context) as call:
            principal = check_principal(principal)
            name = check_name(key_id)
            new_name = check_name(new_key_id)
            encoded = encode_context(context)
            check_blob(blob)
            now = self._now()
            store = self._current(now, principal)
            # Whoever re-encrypts a blob can re-encrypt it to a key they decrypt with: it is
            # decrypting, so it needs ``decrypt`` as well as ``reencrypt-from``.
            source = self._usable(
                store, name, principal, call, KeyOperation.REENCRYPT_FROM, KeyOperation.DECRYPT
            )
            call.key_id = new_name
            target = self._usable(store, new_name, principal, call, KeyOperation.REENCRYPT_TO)
            call.key_id = source.key_id
            material, data_key = unseal_blob(store, source, blob, encoded, call)
            store, target = self._rotated_if_due(
                store, target, now, principal, KeyOperation.REENCRYPT_TO
            )
            new_material = target.newest
            new_blob = seal_blob(store, target, new_material, data_key, encoded)
            call.reason = f"re-encrypted to key {target.key_id} version {new_material.version}"
            call.then.append(
                AuditEvent(
                    time=now,
                    principal=principal,
                    operation=AUDITED_AS[KeyOperation.REENCRYPT_TO],
                    key_id=target.key_id,
                    key_version=str(new_material.version),
                    context_keys=call.context_keys,
                    reason=f"re-encrypted from key {source.key_id} version {material.version}",
                )
            )
            return target.key_id, new_blob

    def blob_is_current(self, key_id: str, blob: bytes, *, principal: str) -> bool:
        """Whether ``blob`` was made under the newest material of ``key_id``: the material
        version the blob names against the key's current version. A blob that is not one of
        that key's is not current.

        ``principal`` needs ``decrypt`` on the key, which moving the blob needs anyway. The
        answer uses no key material, so only a denial or a failure is audited (as
        ``describe-key``): a bulk rewrap asks it of every object.
        """
        with self._auditor.call(Operation.DESCRIBE_KEY, principal, key_id) as call:
            call.audit_success = False
            principal = check_principal(principal)
            name = check_name(key_id)
            key = self._current(self._now(), principal).resolve(name)
            call.key_id, call.version = key.key_id, key.newest.version
            authorize(key, principal, KeyOperation.DECRYPT)
            return material_version(key, blob) == key.newest.version

    def default_key_id(self, *, principal: str) -> str:
        """The id of the key behind ``alias/sealstore/default``, created at first use.

        Every principal may generate, decrypt, re-encrypt with and describe the default key;
        no one administers it, and it rotates yearly on its own.
        """
        with self._auditor.call(Operation.CREATE_KEY, principal, DEFAULT_ALIAS) as call:
            call.audit_success = False  # only a call that creates the key is audited
            principal = check_principal(principal)
            now = self._now()
            store = self._current(now, principal)
            key_id = store.aliases.get(DEFAULT_ALIAS)
            if key_id is not None:
                return key_id

            def create(current: Store) -> Store | None:
                if DEFAULT_ALIAS in current.aliases:
                    return None  # another process made it first
                current.check_room_for_key()
                key = new_key(
                    principal,
                    "the default key, used when no key is named",
                    _DEFAULT_KEY_POLICY,
                    now,
                )
                call.key_id, call.version = key.key_id, 1
                call.reason = f"the default key, alias {DEFAULT_ALIAS}"
                # No owner: the alias is its key's administrators', and the key has none.
                return current.with_key(key).with_alias(DEFAULT_ALIAS, key.key_id, owner=None)

            return self._mutate(create, now, principal, call).aliases[DEFAULT_ALIAS]

    def _usable(
        self, store: Store, name: str, principal: str, call: Call, *operations: KeyOperation
    ) -> Key:
        key = store.resolve(name)
        call.key_id = key.key_id
        authorize(key, principal, *operations)
        require_state(key, USE_STATES)
        return key

    def _rotated_if_due(
        self, store: Store, key: Key, now: datetime, principal: str, operation: KeyOperation
    ) -> tuple[Store, Key]:
        if not key.rotation_due(now):
            return store, key
        with self._auditor.call(Operation.ROTATE, principal, key.key_id) as rotation:
            rotation.audit_success = False  # recorded only if it happens, before it is saved
            rotation.reason = "automatic yearly rotation"

            def rotate(current: Store) -> Store | None:
                fresh = current.keys.get(key.key_id)
                if (
                    fresh is None
                    or fresh.state is not KeyState.ENABLED
                    or not fresh.rotation_due(now)
                ):
                    return None  # gone, disabled, or rotated by someone else meanwhile
                rotated = fresh.with_new_material(now)
                rotation.version = rotated.newest.version
                return current.with_key(rotated)

            store = self._mutate(rotate, now, principal, rotation)
        # The key may have changed while the lock was free: check it again.
        fresh = store.resolve(key.key_id)
        authorize(fresh, principal, operation)
        require_state(fresh, USE_STATES)
        return store, fresh
