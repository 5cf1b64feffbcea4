"""The checks every LocalKms call makes, in the documented order: its arguments, then the
key policy, then the key's state."""

from __future__ import annotations

import re
from typing import Final

from sealstore.errors import (
    AccessDeniedError,
    KeyDisabledError,
    KeyPendingDeletionError,
    KeyStateError,
)
from sealstore.kms.local.document import Key, KeyState, Store, format_time
from sealstore.kms.policy import InvalidKmsRequestError, KeyOperation, KeyPolicy

__all__ = ["MAX_DESCRIPTION_LENGTH", "MAX_NAME_LENGTH"]

MAX_DESCRIPTION_LENGTH: Final = 8192
MAX_NAME_LENGTH: Final = 256
"""Cap on a key id or alias given by a caller."""

_RESERVED_ALIAS_PREFIX: Final = "alias/sealstore/"
_ALIAS_PATTERN: Final = re.compile(r"alias/[A-Za-z0-9/_-]{1,250}")
USE_STATES: Final = frozenset({KeyState.ENABLED})
CHANGE_STATES: Final = frozenset({KeyState.ENABLED, KeyState.DISABLED})


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidKmsRequestError(
            f"a key id or alias must be a non-empty str of at most {MAX_NAME_LENGTH} characters"
        )
    return name


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS_PATTERN.fullmatch(alias):
        raise InvalidKmsRequestError(
            "an alias is 'alias/' followed by 1 to 250 letters, digits, '/', '_' or '-'"
        )
    if alias.startswith(_RESERVED_ALIAS_PREFIX):
        raise InvalidKmsRequestError(
            f"aliases under {_RESERVED_ALIAS_PREFIX!r} are reserved for sealstore; choose "
            "another name"
        )
    return alias


def check_description(description: object) -> str:
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidKmsRequestError(
            f"a key description must be a str of at most {MAX_DESCRIPTION_LENGTH} characters"
        )
    return description


def check_policy(policy: object) -> KeyPolicy:
    if not isinstance(policy, KeyPolicy):
        raise InvalidKmsRequestError("a key policy must be a sealstore.kms.policy.KeyPolicy")
    if not policy.principals(KeyOperation.PUT_POLICY):
        raise InvalidKmsRequestError(
            "the key policy grants 'put-policy' to no one, so the key could never be "
            "administered again; grant it to an administrator"
        )
    return policy


def authorize(key: Key, principal: str, *operations: KeyOperation) -> None:
    """Whether the key's policy grants ``principal`` every one of ``operations``."""
    for operation in operations:
        if not key.policy.allows(principal, operation):
            raise AccessDeniedError(
                f"principal {principal!r} is not allowed {operation.value!r} on key "
                f"{key.key_id}; ask an administrator of the key to grant it in the key policy"
            )


def authorize_alias_owner(store: Store, alias: str, principal: str) -> None:
    """Whether ``principal`` may delete or move ``alias``: it must have created it. An alias
    without an owner is left to whoever holds ``delete-alias`` on its key, checked apart."""
    owner = store.alias_owners.get(alias)
    if owner is not None and owner != principal:
        raise AccessDeniedError(
            f"principal {principal!r} does not own the alias {alias!r}; only the principal "
            "that created it may delete or move it"
        )


def require_state(key: Key, states: frozenset[KeyState]) -> None:
    if key.state in states:
        return
    if KeyState.PENDING_DELETION in states:  # only cancelling a deletion asks for this state
        raise KeyStateError(
            f"key {key.key_id} is {key.state.value}, not scheduled for deletion; there is no "
            "deletion to cancel"
        )
    if key.state is KeyState.DISABLED:
        raise KeyDisabledError(f"key {key.key_id} is disabled; enable it (enable_key) to use it")
    raise KeyPendingDeletionError(
        f"key {key.key_id} is scheduled for deletion on {format_time(key.deletion_date)}; "
        "cancel the deletion (cancel_key_deletion) to use it"
    )
