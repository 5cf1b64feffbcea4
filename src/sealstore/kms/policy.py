"""Key policies for :class:`~sealstore.kms.local.LocalKms`: who may do what with a key.

A :class:`KeyPolicy` names, for each :class:`KeyOperation`, the principals allowed to perform
it on one key. The principal ``"*"`` stands for every principal. Anything not granted is
denied.

>>> policy = KeyPolicy.build(administrators=["alice"], users=["billing-service"])
>>> policy.allows("billing-service", KeyOperation.GENERATE)
True
>>> policy.allows("billing-service", KeyOperation.ROTATE)
False
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final, final

import attrs

from sealstore.audit import Operation
from sealstore.errors import InvalidKmsRequestError

__all__ = [
    "ADMIN_OPERATIONS",
    "ANY_PRINCIPAL",
    "AUDITED_AS",
    "MAX_PRINCIPALS_PER_OPERATION",
    "MAX_PRINCIPAL_LENGTH",
    "USE_OPERATIONS",
    "InvalidKmsRequestError",
    "KeyOperation",
    "KeyPolicy",
]

ANY_PRINCIPAL: Final = "*"
"""The wildcard principal: granting an operation to it grants it to everyone."""
MAX_PRINCIPAL_LENGTH: Final = 256
MAX_PRINCIPALS_PER_OPERATION: Final = 100


class KeyOperation(str, enum.Enum):
    """An operation a key policy grants or withholds."""

    GENERATE = "generate"
    """Generate a data key under the key."""
    DECRYPT = "decrypt"
    """Decrypt a blob made under the key."""
    REENCRYPT_FROM = "reencrypt-from"
    """Re-encrypt a blob made under the key (to this key or another). ``reencrypt`` also needs
    ``decrypt`` on the key: a blob re-encrypted to a key the caller decrypts with is read."""
    REENCRYPT_TO = "reencrypt-to"
    """Re-encrypt a blob (from this key or another) under the key."""
    DESCRIBE = "describe"
    """Read the key's metadata and policy (never its material)."""
    ENABLE = "enable"
    DISABLE = "disable"
    SCHEDULE_DELETION = "schedule-deletion"
    CANCEL_DELETION = "cancel-deletion"
    ROTATE = "rotate"
    """Add new key material on demand."""
    PUT_POLICY = "put-policy"
    """Replace the key's policy."""
    CREATE_ALIAS = "create-alias"
    """Point a new alias at the key, or move an alias to it (``update_alias``)."""
    DELETE_ALIAS = "delete-alias"
    """Delete an alias that points at the key, or move it to another key (``update_alias``);
    the caller must also own the alias."""


USE_OPERATIONS: Final = frozenset(
    {
        KeyOperation.GENERATE,
        KeyOperation.DECRYPT,
        KeyOperation.REENCRYPT_FROM,
        KeyOperation.REENCRYPT_TO,
    }
)
"""The operations that use the key's material."""
ADMIN_OPERATIONS: Final = frozenset(
    {
        KeyOperation.ENABLE,
        KeyOperation.DISABLE,
        KeyOperation.SCHEDULE_DELETION,
        KeyOperation.CANCEL_DELETION,
        KeyOperation.ROTATE,
        KeyOperation.PUT_POLICY,
        KeyOperation.CREATE_ALIAS,
        KeyOperation.DELETE_ALIAS,
    }
)
"""The operations that administer the key."""
AUDITED_AS: Final[Mapping[KeyOperation, Operation]] = MappingProxyType(
    {
        KeyOperation.GENERATE: Operation.GENERATE,
        KeyOperation.DECRYPT: Operation.UNWRAP,
        KeyOperation.REENCRYPT_FROM: Operation.REWRAP,
        KeyOperation.REENCRYPT_TO: Operation.REWRAP,
        KeyOperation.DESCRIBE: Operation.DESCRIBE_KEY,
        KeyOperation.ENABLE: Operation.ENABLE_KEY,
        KeyOperation.DISABLE: Operation.DISABLE_KEY,
        KeyOperation.SCHEDULE_DELETION: Operation.SCHEDULE_DELETION,
        KeyOperation.CANCEL_DELETION: Operation.CANCEL_DELETION,
        KeyOperation.ROTATE: Operation.ROTATE,
        KeyOperation.PUT_POLICY: Operation.PUT_POLICY,
        KeyOperation.CREATE_ALIAS: Operation.CREATE_ALIAS,
        KeyOperation.DELETE_ALIAS: Operation.DELETE_ALIAS,
    }
)
"""The audit operation a call is recorded as, by the key operation the policy grants it.

A re-encryption needs ``reencrypt-from`` and ``decrypt`` on one key and ``reencrypt-to`` on the
other, and is recorded as one ``rewrap``. Moving an alias needs ``delete-alias`` on the key it
leaves and ``create-alias`` on the key it goes to, and is recorded as ``update-alias``. Events no
policy grants (creating a key, destroying it after its waiting period, rotating it
automatically) are recorded under their own audit operation.
"""

_OPERATIONS: Final = {operation.value: operation for operation in KeyOperation}
_ORDER: Final = tuple(KeyOperation)
_NOBODY: Final[frozenset[str]] = frozenset()
_Grants = tuple[tuple[KeyOperation, frozenset[str]], ...]
_GrantsInput = Mapping[KeyOperation, Iterable[str]] | Mapping[str, Iterable[str]]


def check_principal(principal: object) -> str:
    """``principal`` if it is a usable caller identity, else :class:`InvalidKmsRequestError`.

    A caller is named by a non-empty string of at most 256 printable characters; ``"*"`` is
    reserved for policies.
    """
    if (
        not isinstance(principal, str)
        or not principal
        or len(principal) > MAX_PRINCIPAL_LENGTH
        or principal == ANY_PRINCIPAL
        or not principal.isprintable()
    ):
        raise InvalidKmsRequestError(
            f"a principal must be a non-empty str of at most {MAX_PRINCIPAL_LENGTH} printable "
            f"characters, other than {ANY_PRINCIPAL!r}"
        )
    return principal


def _operation(value: object) -> KeyOperation:
    operation = _OPERATIONS.get(value) if isinstance(value, str) else None
    if operation is None:
        names = ", ".join(_OPERATIONS)
        raise InvalidKmsRequestError(f"{value!r} is not a key operation; use one of: {names}")
    return operation


def _principals(operation: KeyOperation, values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        raise InvalidKmsRequestError(
            f"the principals for {operation.value!r} must be a collection of str, not one str"
        )
    principals = frozenset(values)
    for principal in principals:
        if principal != ANY_PRINCIPAL:
            check_principal(principal)
    if len(principals) > MAX_PRINCIPALS_PER_OPERATION:
        raise InvalidKmsRequestError(
            f"{len(principals)} principals are granted {operation.value!r}; at most "
            f"{MAX_PRINCIPALS_PER_OPERATION} are allowed (use {ANY_PRINCIPAL!r} for everyone)"
        )
    return principals


def _normalize(grants: _GrantsInput) -> _Grants:
    if not isinstance(grants, Mapping):
        raise InvalidKmsRequestError("a key policy is a mapping of operations to principals")
    merged: dict[KeyOperation, frozenset[str]] = {}
    for name, principals in grants.items():
        operation = _operation(name)
        merged[operation] = merged.get(operation, frozenset()) | _principals(operation, principals)
    return tuple((operation, merged[operation]) for operation in _ORDER if merged.get(operation))


@final
@attrs.frozen(repr=False)
class KeyPolicy:
    """Which principals may perform which operations on one key.

    Build one from a mapping of operations (or their string values) to principals, or with
    :meth:`owner` or :meth:`build`:

    >>> policy = KeyPolicy({KeyOperation.DECRYPT: ["auditor"], "describe": ["*"]})
    >>> policy.allows("auditor", KeyOperation.DECRYPT), policy.allows("x", "describe")
    (True, True)
    """

    _grants: _Grants = attrs.field(converter=_normalize, alias="grants")
    _lookup: dict[KeyOperation, frozenset[str]] = attrs.field(init=False, eq=False)

    @_lookup.default
    def _index(self) -> dict[KeyOperation, frozenset[str]]:
        return dict(self._grants)

    @classmethod
    def owner(cls, principal: str) -> KeyPolicy:
        """Every operation for ``principal`` alone: the policy of a key created without one."""
        return cls(dict.fromkeys(KeyOperation, (check_principal(principal),)))

    @classmethod
    def build(
        cls,
        *,
        administrators: Iterable[str] = (),
        users: Iterable[str] = (),
    ) -> KeyPolicy:
        """Administrators manage the key, users encrypt and decrypt with it; both describe it.

        Separation of duties: an administrator who is not also a user cannot decrypt.
        """
        admins = tuple(administrators)
        uses = tuple(users)
        grants: dict[KeyOperation, tuple[str, ...]] = dict.fromkeys(ADMIN_OPERATIONS, admins)
        grants.update(dict.fromkeys(USE_OPERATIONS, uses))
        grants[KeyOperation.DESCRIBE] = admins + uses
        return cls(grants)

    def allows(self, principal: str, operation: KeyOperation | str) -> bool:
        """Whether ``principal`` may perform ``operation``."""
        principals = self.principals(operation)
        return principal in principals or ANY_PRINCIPAL in principals

    def principals(self, operation: KeyOperation | str) -> frozenset[str]:
        """The principals granted ``operation`` (possibly ``"*"``)."""
        return self._lookup.get(_operation(operation), _NOBODY)

    def grant(self, operation: KeyOperation | str, *principals: str) -> KeyPolicy:
        """A copy of this policy that also grants ``operation`` to ``principals``."""
        operation = _operation(operation)
        grants = self.as_dict()
        grants[operation.value] = sorted(self.principals(operation) | set(principals))
        return KeyPolicy(grants)

    def revoke(self, operation: KeyOperation | str, *principals: str) -> KeyPolicy:
        """A copy of this policy that no longer grants ``operation`` to ``principals``."""
        operation = _operation(operation)
        grants = self.as_dict()
        grants[operation.value] = sorted(self.principals(operation) - set(principals))
        return KeyPolicy(grants)

    def __repr__(self) -> str:
        return f"KeyPolicy({self.as_dict()!r})"

    def as_dict(self) -> dict[str, list[str]]:
        """The policy as plain JSON-ready data: operation value to sorted principals."""
        return {operation.value: sorted(principals) for operation, principals in self._grants}
