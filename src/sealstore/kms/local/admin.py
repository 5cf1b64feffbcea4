"""The administration of a LocalKms: creating and describing keys, their states, deletion,
rotation on demand, policies and aliases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

import attrs

from sealstore.audit import Operation
from sealstore.errors import KmsError
from sealstore.kms.local.checks import (
    CHANGE_STATES,
    USE_STATES,
    authorize,
    authorize_alias_owner,
    check_alias,
    check_description,
    check_name,
    check_policy,
    require_state,
)
from sealstore.kms.local.document import (
    Key,
    KeyEntry,
    KeyMetadata,
    KeyState,
    Store,
    format_time,
    is_expired,
    key_metadata,
    new_key,
)
from sealstore.kms.local.keystore import KeyStore
from sealstore.kms.policy import (
    InvalidKmsRequestError,
    KeyOperation,
    KeyPolicy,
    check_principal,
)

__all__ = ["DEFAULT_WAITING_DAYS"]

MIN_WAITING_DAYS: Final = 7
MAX_WAITING_DAYS: Final = 30
DEFAULT_WAITING_DAYS: Final = 30


class Administration(KeyStore):
    """The administrative calls of :class:`~sealstore.kms.local.LocalKms`."""

    def create_key(
        self, *, principal: str, description: str = "", policy: KeyPolicy | None = None
    ) -> KeyMetadata:
        """A new enabled key with fresh material (version 1).

        Without ``policy``, ``principal`` alone may do everything with it
        (:meth:`KeyPolicy.owner`). A policy must grant ``put-policy`` to someone, or the key
        could never be administered.
        """
        with self._auditor.call(Operation.CREATE_KEY, principal, "") as call:
            principal = check_principal(principal)
            description = check_description(description)
            policy = KeyPolicy.owner(principal) if policy is None else check_policy(policy)
            now = self._now()
            self._current(now, principal)
            key = new_key(principal, description, policy, now)
            call.key_id, call.version = key.key_id, 1

            def create(current: Store) -> Store:
                current.check_room_for_key()
                return current.with_key(key)

            return key_metadata(self._mutate(create, now, principal, call), key)

    def describe_key(self, key_id: str, *, principal: str) -> KeyMetadata:
        """The metadata of ``key_id`` (an id or alias), in any state."""
        with self._audited(KeyOperation.DESCRIBE, principal, key_id) as call:
            principal = check_principal(principal)
            name = check_name(key_id)
            store = self._current(self._now(), principal)
            key = store.resolve(name)
            call.key_id, call.version = key.key_id, key.newest.version
            authorize(key, principal, KeyOperation.DESCRIBE)
            return key_metadata(store, key)

    def list_keys(self) -> tuple[KeyEntry, ...]:
        """Every key in the store with its aliases, oldest first.

        Ids and aliases only: reading a key's metadata needs ``describe`` on it.
        """
        now = self._now()
        store = self._document.snapshot()
        aliases = store.aliases_by_key()
        keys = sorted(store.keys.values(), key=lambda key: (key.created, key.key_id))
        return tuple(
            KeyEntry(key.key_id, aliases.get(key.key_id, ()))
            for key in keys
            if not is_expired(key, now)
        )

    def enable_key(self, key_id: str, *, principal: str) -> None:
        """Make a disabled key usable again (an enabled key stays enabled)."""
        self._administer(
            KeyOperation.ENABLE,
            key_id,
            principal,
            states=CHANGE_STATES,
            edit=lambda key, _now: attrs.evolve(key, state=KeyState.ENABLED),
        )

    def disable_key(self, key_id: str, *, principal: str) -> None:
        """Refuse every use of the key until it is enabled again; its material is kept."""
        self._administer(
            KeyOperation.DISABLE,
            key_id,
            principal,
            states=CHANGE_STATES,
            edit=lambda key, _now: attrs.evolve(key, state=KeyState.DISABLED),
        )

    def schedule_key_deletion(
        self, key_id: str, *, principal: str, waiting_days: int = DEFAULT_WAITING_DAYS
    ) -> datetime:
        """Destroy the key ``waiting_days`` (7 to 30) from now; returns that date.

        Until then the key refuses every use and the deletion can be cancelled. Afterwards its
        material is gone, and every blob made under it is lost for good.
        """
        if (
            isinstance(waiting_days, bool)
            or not isinstance(waiting_days, int)
            or not MIN_WAITING_DAYS <= waiting_days <= MAX_WAITING_DAYS
        ):
            with self._audited(KeyOperation.SCHEDULE_DELETION, principal, key_id):
                raise InvalidKmsRequestError(
                    f"waiting_days must be an int from {MIN_WAITING_DAYS} to {MAX_WAITING_DAYS}"
                )
        key = self._administer(
            KeyOperation.SCHEDULE_DELETION,
            key_id,
            principal,
            states=CHANGE_STATES,
            edit=lambda key, now: attrs.evolve(
                key,
                state=KeyState.PENDING_DELETION,
                deletion_date=now + timedelta(days=waiting_days),
            ),
            reason=lambda key: f"deletion on {format_time(key.deletion_date)}",
        )
        assert key.deletion_date is not None
        return key.deletion_date

    def cancel_key_deletion(self, key_id: str, *, principal: str) -> None:
        """Cancel a scheduled deletion; the key is then disabled (enable it to use it)."""
        self._administer(
            KeyOperation.CANCEL_DELETION,
            key_id,
            principal,
            states=frozenset({KeyState.PENDING_DELETION}),
            edit=lambda key, _now: attrs.evolve(key, state=KeyState.DISABLED, deletion_date=None),
        )

    def rotate_key(self, key_id: str, *, principal: str) -> int:
        """Add new material to an enabled key now; returns its version.

        New blobs use it; blobs made under older material still decrypt.
        """
        key = self._administer(
            KeyOperation.ROTATE,
            key_id,
            principal,
            states=USE_STATES,
            edit=lambda key, now: key.with_new_material(now),
        )
        return key.newest.version

    def put_key_policy(self, key_id: str, policy: KeyPolicy, *, principal: str) -> None:
        """Replace the key's policy. ``policy`` must grant ``put-policy`` to someone."""
        if not isinstance(policy, KeyPolicy) or not policy.principals(KeyOperation.PUT_POLICY):
            with self._audited(KeyOperation.PUT_POLICY, principal, key_id):
                check_policy(policy)
        self._administer(
            KeyOperation.PUT_POLICY,
            key_id,
            principal,
            states=CHANGE_STATES,
            edit=lambda key, _now: attrs.evolve(key, policy=policy),
        )

    def create_alias(self, alias: str, key_id: str, *, principal: str) -> None:
        """Point the new alias ``alias`` (``alias/`` then letters, digits, ``/_-``) at a key.

        ``principal`` needs ``create-alias`` on the key, and owns the alias: only it may
        delete it or move it to another key (:meth:`update_alias`). Aliases are unique, first
        come, first served; ``alias/sealstore/`` is reserved.
        """
        with self._audited(KeyOperation.CREATE_ALIAS, principal, key_id) as call:
            principal = check_principal(principal)
            alias = check_alias(alias)
            name = check_name(key_id)
            call.reason = f"alias {alias}"
            now = self._now()
            self._current(now, principal)

            def add(store: Store) -> Store:
                key = store.resolve(name)
                call.key_id = key.key_id
                authorize(key, principal, KeyOperation.CREATE_ALIAS)
                require_state(key, CHANGE_STATES)
                if alias in store.aliases:
                    raise KmsError(
                        f"the alias {alias!r} already exists; its owner may move it to another "
                        "key (update_alias), or choose another name"
                    )
                store.check_room_for_alias()
                return store.with_alias(alias, key.key_id, owner=principal)

            self._mutate(add, now, principal, call)

    def update_alias(self, alias: str, new_key_id: str, *, principal: str) -> None:
        """Point the existing ``alias`` at ``new_key_id`` instead, in one step: the alias never
        stops existing, so no one else can take the name meanwhile.

        ``principal`` must own the alias (an alias made before aliases had owners belongs to
        its key's administrators), hold ``delete-alias`` on the key it points at now and
        ``create-alias`` on ``new_key_id``, which must not be pending deletion.
        """
        with self._auditor.call(Operation.UPDATE_ALIAS, principal, alias) as call:
            principal = check_principal(principal)
            alias = check_alias(alias)
            name = check_name(new_key_id)
            now = self._now()
            self._current(now, principal)

            def move(store: Store) -> Store:
                old = store.resolve(alias)
                call.key_id = old.key_id
                authorize(old, principal, KeyOperation.DELETE_ALIAS)
                authorize_alias_owner(store, alias, principal)
                new = store.resolve(name)
                call.key_id = new.key_id
                authorize(new, principal, KeyOperation.CREATE_ALIAS)
                require_state(new, CHANGE_STATES)
                call.reason = f"alias {alias} moved from key {old.key_id}"
                return store.with_alias(alias, new.key_id, store.alias_owners.get(alias))

            self._mutate(move, now, principal, call)

    def delete_alias(self, alias: str, *, principal: str) -> None:
        """Delete ``alias``; the key it points at is unchanged.

        ``principal`` must own the alias (an alias made before aliases had owners belongs to
        its key's administrators) and hold ``delete-alias`` on the key it points at.
        """
        with self._audited(KeyOperation.DELETE_ALIAS, principal, alias) as call:
            principal = check_principal(principal)
            alias = check_alias(alias)
            call.reason = f"deleted alias {alias}"
            now = self._now()
            self._current(now, principal)

            def remove(store: Store) -> Store:
                key = store.resolve(alias)
                call.key_id = key.key_id
                authorize(key, principal, KeyOperation.DELETE_ALIAS)
                authorize_alias_owner(store, alias, principal)
                return store.without_alias(alias)

            self._mutate(remove, now, principal, call)

    def _administer(
        self,
        operation: KeyOperation,
        key_id: object,
        principal: object,
        *,
        states: frozenset[KeyState],
        edit: Callable[[Key, datetime], Key],
        reason: Callable[[Key], str] | None = None,
    ) -> Key:
        with self._audited(operation, principal, key_id) as call:
            checked = check_principal(principal)
            name = check_name(key_id)
            now = self._now()
            self._current(now, checked)
            edited: list[Key] = []

            def change(store: Store) -> Store:
                key = store.resolve(name)
                call.key_id = key.key_id
                authorize(key, checked, operation)
                require_state(key, states)
                edited[:] = [edit(key, now)]
                call.version = edited[0].newest.version
                if reason is not None:
                    call.reason = reason(edited[0])
                return store.with_key(edited[0])

            self._mutate(change, now, checked, call)
            return edited[0]
