"""``VaultTransitKms``: the :class:`~sealstore.kms.KmsClient` protocol over the Transit
secrets engine of HashiCorp Vault or OpenBao.

It wraps an ``hvac.Client`` that the caller builds (address, TLS, namespace, timeouts), or
logs one in with :meth:`VaultTransitKms.with_token` or :meth:`VaultTransitKms.with_approle`::

    from sealstore.kms.vault import VaultTransitKms

    kms = VaultTransitKms.with_token("https://vault.internal:8200", token)
    data_key = kms.generate_data_key("orders", {"bucket": "orders"}, principal="app")
    assert kms.decrypt(
        "orders", data_key.blob, {"bucket": "orders"}, principal="app"
    ) == data_key.plaintext

**The encryption context is bound by key derivation.** Transit's ``rewrap`` takes no
associated data, so the context cannot travel as AEAD associated data if blobs are to be
rewrapped inside Vault. Instead every key sealstore uses is created with ``derived=true``
and every request carries ``context`` = base64 of :data:`CONTEXT_LABEL` followed by the
canonical encoding of the KMS encryption context (``docs/vault-kms.md``): Transit derives
a key per context, so a blob opens only with its own context, and ``rewrap`` (given the
same context) keeps it so. A key that is not derived would silently ignore the context:
such a key is refused (:class:`~sealstore.KeyStateError`) before any data key is made or
opened with it.

hvac is imported only when a client is built here or an error is translated, so importing
this module works without it. Errors are translated at this seam (see
:class:`VaultTransitKms`); neither hvac's nor requests' exceptions escape, and no message,
``repr`` or log record carries a token or a key.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar, final

import attrs

from sealstore.audit import AuditEvent, AuditSink, Operation, Outcome
from sealstore.clock import utc_now
from sealstore.errors import (
    AccessDeniedError,
    DecryptionError,
    InvalidKmsRequestError,
    KeyNotFoundError,
    KeyPendingDeletionError,
    KeyRetiredError,
    KeyStateError,
    KmsError,
    SealstoreError,
)
from sealstore.header import encode_context
from sealstore.kms.base import DataKey

__all__ = [
    "BATCH_SIZE",
    "CONTEXT_LABEL",
    "DEFAULT_KEY_NAME",
    "VaultTransitKms",
    "blob_version",
    "transit_context",
]

CONTEXT_LABEL: Final = b"sealstore/v1 transit context\x00"
"""The bytes in front of the encoded KMS encryption context in every Transit ``context``."""
DEFAULT_KEY_NAME: Final = "sealstore-default"
"""The Transit key :meth:`VaultTransitKms.default_key_id` creates and uses."""

_DATA_KEY_BYTES = 32
# A Transit ciphertext of a 32-byte key is about 90 characters; sealstore headers cap blobs
# at 1024 bytes, and anything longer cannot be one of ours.
_MAX_BLOB_BYTES = 1024
_BLOB = re.compile(rb"vault:v[1-9][0-9]{0,9}:[A-Za-z0-9+/]+={0,2}")
_BLOB_VERSION = re.compile(rb"vault:v([1-9][0-9]{0,9}):")
# Transit key names are path segments; sealstore keeps to a portable subset.
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_DEFAULT_TIMEOUT = 10.0
BATCH_SIZE: Final = 100
"""Blobs per ``batch_input`` request: OpenBao refuses a request body of more than about a
thousand JSON strings, and each item takes four."""

_MAX_VERSIONS_KNOWN = 1024
"""Keys whose latest version a client remembers at once (the oldest read is forgotten)."""

_T = TypeVar("_T")


def transit_context(context: Mapping[str, str]) -> str:
    """The Transit ``context`` parameter for a KMS encryption context (base64).

    >>> import base64
    >>> base64.b64decode(transit_context({"b": "2"}))
    b'sealstore/v1 transit context\\x00\\x00\\x06\\x00\\x01b\\x00\\x012'
    """
    return base64.b64encode(CONTEXT_LABEL + encode_context(context)).decode("ascii")


def blob_version(blob: bytes) -> int | None:
    """The Transit key version a blob was made under (``vault:v3:...`` is 3), if it says."""
    match = _BLOB_VERSION.match(blob)
    return int(match.group(1)) if match else None


def _check_key_name(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str) or not _KEY_NAME.fullmatch(value):
        raise ValueError(
            "default_key must be a Transit key name: 1 to 128 letters, digits, '.', '_' or '-'"
        )


def _check_version_ttl(_instance: object, _attribute: object, value: timedelta) -> None:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ValueError("version_ttl is a timedelta of zero or more")


def _check_mount(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str) or not _MOUNT.fullmatch(value):
        raise ValueError("mount is the Transit engine's path, such as 'transit' or 'kms/transit'")


@attrs.frozen
class _Call:
    """One Transit request as the audit trail and error messages describe it."""

    api: str
    operation: Operation
    key_id: str
    context: Mapping[str, str] = attrs.field(repr=False)
    principal: str


@final
@attrs.frozen(eq=False)
class VaultTransitKms:
    """Vault's or OpenBao's Transit engine as a :class:`~sealstore.kms.KmsClient`.

    ``client`` is an authenticated ``hvac.Client``; ``mount`` the path the Transit engine is
    mounted at. Key ids are Transit key names; the blob stored in headers is Transit's
    ciphertext (``vault:v<version>:...``) as ASCII bytes, so it names the key version it was
    made under. ``principal`` is recorded in the audit trail but not sent: Vault decides by
    the token's policies.

    Errors become sealstore errors, raised ``from`` the original:

    - 403 (``permission denied``, an expired token too), 401:
      :class:`~sealstore.AccessDeniedError`
    - ``encryption key not found``, an unknown key on read: :class:`~sealstore.KeyNotFoundError`
    - ``refusing to use soft-deleted key`` (OpenBao): :class:`~sealstore.KeyPendingDeletionError`
    - a blob below the key's ``min_decryption_version``: :class:`~sealstore.KeyRetiredError`
    - a key not created with ``derived=true``: :class:`~sealstore.KeyStateError`
    - any other 400 answer to decrypt or rewrap (altered blob, another key or context):
      :class:`~sealstore.DecryptionError`
    - no answer (connection refused, timeout), a sealed or standby server, and anything else:
      :class:`~sealstore.KmsError` naming the server's address

    Messages name the operation, the key and the address; never a token, blob, key or
    context value. ``repr`` shows the mount and the default key only.

    ``version_ttl`` is how long the latest version of a key, read to tell whether a blob is
    current (:meth:`blob_is_current`), is trusted before it is read again.
    """

    client: Any = attrs.field(repr=False)
    mount: str = attrs.field(default="transit", kw_only=True, validator=_check_mount)
    default_key: str = attrs.field(
        default=DEFAULT_KEY_NAME, kw_only=True, validator=_check_key_name
    )
    audit: AuditSink | None = attrs.field(default=None, kw_only=True, repr=False)
    clock: Callable[[], datetime] = attrs.field(default=utc_now, kw_only=True, repr=False)
    version_ttl: timedelta = attrs.field(
        default=timedelta(seconds=30), kw_only=True, repr=False, validator=_check_version_ttl
    )
    _derived: set[str] = attrs.field(factory=set, init=False, repr=False)
    """Keys already read and found derived (a key's derivation cannot be turned off)."""
    _versions: OrderedDict[str, tuple[int, datetime]] = attrs.field(
        factory=OrderedDict, init=False, repr=False
    )
    """Each key's latest version as last read, and until when it is trusted."""
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    @classmethod
    def with_token(
        cls,
        url: str,
        token: str,
        *,
        namespace: str | None = None,
        mount: str = "transit",
        default_key: str = DEFAULT_KEY_NAME,
        audit: AuditSink | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        verify: bool | str = True,
    ) -> VaultTransitKms:
        """A client for the Vault at ``url`` that sends ``token`` (in ``namespace``, if any).

        ``verify`` is requests' TLS setting: ``True``, ``False`` or a CA bundle's path.
        """
        import hvac  # noqa: PLC0415 - optional dependency, imported where it is used

        client = hvac.Client(
            url=url, token=token, namespace=namespace, timeout=timeout, verify=verify
        )
        return cls(client, mount=mount, default_key=default_key, audit=audit)

    @classmethod
    def with_approle(
        cls,
        url: str,
        role_id: str,
        secret_id: str,
        *,
        namespace: str | None = None,
        auth_mount: str = "approle",
        mount: str = "transit",
        default_key: str = DEFAULT_KEY_NAME,
        audit: AuditSink | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        verify: bool | str = True,
    ) -> VaultTransitKms:
        """A client logged in to the Vault at ``url`` with AppRole (``role_id``,
        ``secret_id``), its token kept by the client.

        A refused login raises :class:`~sealstore.AccessDeniedError`; an unreachable server
        :class:`~sealstore.KmsError`. The token is not renewed: when it expires, calls fail
        with :class:`~sealstore.AccessDeniedError`; log in again to go on.
        """
        import hvac  # noqa: PLC0415 - optional dependency, imported where it is used

        client = hvac.Client(url=url, namespace=namespace, timeout=timeout, verify=verify)
        kms = cls(client, mount=mount, default_key=default_key, audit=audit)
        try:
            client.auth.approle.login(role_id=role_id, secret_id=secret_id, mount_point=auth_mount)
        except Exception as error:
            call = _Call(_LOGIN, Operation.DESCRIBE_KEY, auth_mount, {}, "approle")
            translated, _ = _translate(error, call, kms.address)
            if translated is None:  # pragma: no cover - hvac raises its own or requests' errors
                raise
            raise translated from error
        return kms

    @property
    def address(self) -> str:
        """The Vault server's address, as error messages name it."""
        return str(getattr(self.client, "url", "<unknown address>"))

    # ------------------------------------------------------------------ KmsClient

    def generate_data_key(
        self, key_id: str, context: Mapping[str, str], *, principal: str
    ) -> DataKey:
        """A fresh 32-byte data key and its blob, from ``datakey/plaintext/<key_id>``."""
        call = _Call("datakey", Operation.GENERATE, key_id, context, principal)

        def send() -> Any:
            name = _key_name(key_id)
            encoded = transit_context(context)
            self._require_derived(name, principal)
            return self.client.secrets.transit.generate_data_key(
                name, "plaintext", context=encoded, mount_point=self.mount
            )

        def parse(response: Any) -> DataKey:
            data = _data(response, "datakey")
            return DataKey(
                key_id=key_id,
                plaintext=_plaintext(data, "datakey"),
                blob=_ciphertext(data, "datakey"),
            )

        return self._run(call, send, parse)

    def decrypt(
        self, key_id: str, blob: bytes, context: Mapping[str, str], *, principal: str
    ) -> bytes:
        """The 32-byte plaintext of ``blob``, from ``decrypt/<key_id>`` with its context."""
        call = _Call("decrypt", Operation.UNWRAP, key_id, context, principal)

        def send() -> Any:
            name = _key_name(key_id)
            encoded = transit_context(context)
            self._require_derived(name, principal)
            ciphertext = _check_blob(blob, key_id)
            return self.client.secrets.transit.decrypt_data(
                name, ciphertext, context=encoded, mount_point=self.mount
            )

        return self._run(call, send, lambda response: _opened(_data(response, "decrypt")))

    def decrypt_many(
        self,
        key_id: str,
        items: Sequence[tuple[bytes, Mapping[str, str]]],
        *,
        principal: str,
    ) -> list[bytes | SealstoreError]:
        """Decrypt many ``(blob, context)`` pairs of one key, :data:`BATCH_SIZE` to a request
        (Transit's ``batch_input``).

        Returns, in order, each plaintext or the error that item alone failed with (an
        altered blob, a version below ``min_decryption_version``); an error that concerns
        a whole request (denied, unknown key, no server) is raised. One audit event is
        recorded per request. Empty ``items`` make no request.
        """
        results: list[bytes | SealstoreError] = []
        for start in range(0, len(items), BATCH_SIZE):
            results += self._batch(
                _Call("decrypt (batch)", Operation.UNWRAP, key_id, {}, principal),
                items[start : start + BATCH_SIZE],
                lambda name, batch: self.client.secrets.transit.decrypt_data(
                    name, batch_input=batch, mount_point=self.mount
                ),
                _opened,
            )
        return results

    def _batch(
        self,
        call: _Call,
        items: Sequence[tuple[bytes, Mapping[str, str]]],
        request: Callable[[str, list[dict[str, str]]], Any],
        open_item: Callable[[Mapping[str, Any]], _T],
    ) -> list[_T | SealstoreError]:
        """One ``batch_input`` request for ``items``; each answer read by ``open_item``."""
        results: list[_T | SealstoreError] = []
        batch: list[dict[str, str]] = []
        positions: list[int] = []
        unanswered = _malformed(call.api, "batch_results")

        def send() -> Any:
            name = _key_name(call.key_id)
            self._require_derived(name, call.principal)
            for blob, context in items:
                try:
                    ciphertext = _check_blob(blob, call.key_id)
                except DecryptionError as error:
                    results.append(error)
                    continue
                positions.append(len(results))
                results.append(unanswered)
                batch.append({"ciphertext": ciphertext, "context": transit_context(context)})
            if not batch:
                return {"data": {"batch_results": []}}
            try:
                return request(name, batch)
            except Exception as error:
                # Vault answers 400 when any item fails, with every item's result: the
                # successes must not be lost with the failures.
                partial = _batch_results(getattr(error, "json", None), len(batch))
                if partial is None:
                    raise
                return {"data": {"batch_results": partial}}

        def parse(response: Any) -> None:
            answers = _batch_results(response, len(batch))
            if answers is None:
                raise unanswered
            for position, answer in zip(positions, answers, strict=True):
                results[position] = _batch_item(answer, call, self.address, open_item)

        self._run(call, send, parse)
        return results

    def default_key_id(self, *, principal: str) -> str:
        """The name of :attr:`default_key`, creating it (``aes256-gcm96``, derived) on
        first use. Concurrent first uses all get the one key: creating an existing Transit
        key changes nothing."""
        name = self.default_key
        with self._lock:
            if name in self._derived:
                return name
        try:
            self._require_derived(name, principal)
        except KeyNotFoundError:
            self.create_key(name, principal=principal)
        return name

    # ------------------------------------------------------------------ key management

    def reencrypt(
        self,
        key_id: str,
        blob: bytes,
        context: Mapping[str, str],
        new_key_id: str,
        *,
        principal: str,
    ) -> tuple[str, bytes]:
        """``(key id, new blob)`` from ``rewrap/<key_id>``: the blob under the key's newest
        version, with the same context. The plaintext never leaves Vault.

        Transit rewraps only within one key: a ``new_key_id`` other than ``key_id`` raises
        :class:`~sealstore.InvalidKmsRequestError`.
        """
        call = _Call("rewrap", Operation.REWRAP, key_id, context, principal)

        def send() -> Any:
            if new_key_id != key_id:
                raise InvalidKmsRequestError(
                    f"Transit rewraps a blob only under its own key ({key_id!r}), not "
                    f"{new_key_id!r}: decrypt it and make a new data key under the new key"
                )
            name = _key_name(key_id)
            encoded = transit_context(context)
            self._require_derived(name, principal)
            ciphertext = _check_blob(blob, key_id)
            return self.client.secrets.transit.rewrap_data(
                name, ciphertext, context=encoded, mount_point=self.mount
            )

        return self._run(
            call, send, lambda response: (key_id, _ciphertext(_data(response, "rewrap"), "rewrap"))
        )

    def reencrypt_many(
        self,
        key_id: str,
        items: Sequence[tuple[bytes, Mapping[str, str]]],
        new_key_id: str,
        *,
        principal: str,
    ) -> list[tuple[str, bytes] | SealstoreError]:
        """:meth:`reencrypt` for many ``(blob, context)`` pairs of one key,
        :data:`BATCH_SIZE` to a ``rewrap`` request (``batch_input``).

        Returns, in order, each ``(key id, new blob)`` or the error that item alone failed
        with; an error that concerns a whole request is raised. One audit event per request.
        """
        if new_key_id != key_id:
            raise InvalidKmsRequestError(
                f"Transit rewraps a blob only under its own key ({key_id!r}), not "
                f"{new_key_id!r}: decrypt it and make a new data key under the new key"
            )
        results: list[tuple[str, bytes] | SealstoreError] = []
        for start in range(0, len(items), BATCH_SIZE):
            results += self._batch(
                _Call("rewrap (batch)", Operation.REWRAP, key_id, {}, principal),
                items[start : start + BATCH_SIZE],
                lambda name, batch: self.client.secrets.transit.rewrap_data(
                    name, None, batch_input=batch, mount_point=self.mount
                ),
                lambda answer: (key_id, _ciphertext(answer, "rewrap (batch)")),
            )
        return results

    def create_key(self, key_id: str, *, principal: str) -> str:
        """Create the Transit key ``key_id`` as sealstore needs it (``aes256-gcm96``,
        ``derived=true``); nothing changes if it exists. Returns ``key_id``."""
        name = _key_name(key_id)
        self._run(
            _Call("create key", Operation.CREATE_KEY, key_id, {}, principal),
            lambda: self.client.secrets.transit.create_key(
                name, key_type="aes256-gcm96", derived=True, mount_point=self.mount
            ),
            lambda _response: None,
        )
        self._require_derived(name, principal)
        return name

    def rotate_key(self, key_id: str, *, principal: str) -> int:
        """Add a new version to the Transit key ``key_id``; return the newest version.

        New data keys use it at once; blobs of earlier versions keep decrypting down to the
        key's ``min_decryption_version``.
        """
        name = _key_name(key_id)
        call = _Call("rotate", Operation.ROTATE, key_id, {}, principal)
        self._run(call, lambda: self._rotate(name), lambda _response: None)
        return self._read_latest_version(name, principal)

    def _rotate(self, name: str) -> None:
        """Rotate ``name``, judging a server error by its effect.

        OpenBao answers concurrent rotations of one key with HTTP 500 ("transaction commit
        failed") although the new version stands: when the key's latest version moved past
        the one read before, the rotation asked for happened, and the error is not raised.
        """
        transit = self.client.secrets.transit
        before = _latest_version(_data(transit.read_key(name, mount_point=self.mount), "read key"))
        try:
            transit.rotate_key(name, mount_point=self.mount)
        except _internal_server_error():
            after = transit.read_key(name, mount_point=self.mount)
            if _latest_version(_data(after, "read key")) <= before:
                raise

    def blob_is_current(self, key_id: str, blob: bytes, *, principal: str) -> bool:
        """Whether ``blob`` was made under the newest version of the Transit key ``key_id``:
        the version its ``vault:v<version>:`` prefix names against the key's
        ``latest_version``. A blob that names no version is not current.

        The latest version is read (``keys/<key_id>``, audited as ``describe-key``) at most
        once per :attr:`version_ttl` and key, so a bulk rewrap of thousands of objects costs
        one read. A rotation made through this client (:meth:`rotate_key`), or a blob of a
        version newer than the one remembered, is taken into account at once; a rotation
        made elsewhere (another host, the ``bao`` command, ``auto_rotate_period``) is seen
        once the remembered version expires: until then blobs of the version before it
        count as current.
        """
        version = blob_version(blob) if isinstance(blob, bytes) else None
        if version is None:
            return False
        name = _key_name(key_id)
        now = self.clock()
        with self._lock:
            known = self._versions.get(name)
        if known is not None and now < known[1] and version <= known[0]:
            return version == known[0]
        return version == self._read_latest_version(name, principal)

    def _read_latest_version(self, name: str, principal: str) -> int:
        """The key's ``latest_version``, read from Vault and remembered for
        :attr:`version_ttl`."""
        latest = self._run(
            _Call("read key", Operation.DESCRIBE_KEY, name, {}, principal),
            lambda: self.client.secrets.transit.read_key(name, mount_point=self.mount),
            lambda response: _latest_version(_data(response, "read key")),
        )
        with self._lock:
            self._versions[name] = (latest, self.clock() + self.version_ttl)
            self._versions.move_to_end(name)
            while len(self._versions) > _MAX_VERSIONS_KNOWN:
                self._versions.popitem(last=False)
        return latest

    # ------------------------------------------------------------------ internals

    def _require_derived(self, name: str, principal: str) -> None:
        """Read the key once; refuse one whose derivation is off (it would ignore contexts)."""
        with self._lock:
            if name in self._derived:
                return
        self._run(
            _Call("read key", Operation.DESCRIBE_KEY, name, {}, principal),
            lambda: self.client.secrets.transit.read_key(name, mount_point=self.mount),
            lambda response: _check_derived(_data(response, "read key"), name),
        )
        with self._lock:
            self._derived.add(name)

    def _run(self, call: _Call, send: Callable[[], Any], parse: Callable[[Any], _T]) -> _T:
        """Call Vault, parse the answer, audit, translate errors at the seam."""
        try:
            result = parse(send())
        except Exception as error:
            translated, outcome = _translate(error, call, self.address)
            self._record(call, outcome, type(error).__name__)
            if translated is None or translated is error:
                raise
            raise translated from error
        self._record(call, Outcome.SUCCESS, "")
        return result

    def _record(self, call: _Call, outcome: Outcome, reason: str) -> None:
        if self.audit is None:
            return
        self.audit.record(
            AuditEvent(
                time=self.clock(),
                principal=call.principal,
                operation=call.operation,
                key_id=call.key_id,
                context_keys=tuple(sorted(call.context)),
                outcome=outcome,
                reason=reason,
            )
        )


def _key_name(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_NAME.fullmatch(key_id):
        raise KeyNotFoundError(
            f"{key_id!r} is not a Transit key name (1 to 128 letters, digits, '.', '_' or "
            "'-'), so no Transit key has it"
        )
    return key_id


def _check_blob(blob: bytes, key_id: str) -> str:
    if (
        not isinstance(blob, bytes)
        or not 0 < len(blob) <= _MAX_BLOB_BYTES
        or not _BLOB.fullmatch(blob)
    ):
        raise DecryptionError(
            f"the data key blob for Transit key {key_id!r} is not a Transit ciphertext "
            "('vault:v<version>:<base64>'); the header was altered"
        )
    return blob.decode("ascii")


def _malformed(api: str, field: str) -> KmsError:
    return KmsError(
        f"Vault answered Transit {api} without a valid {field}; check that the client talks "
        "to Vault or OpenBao"
    )


def _data(response: Any, api: str) -> Mapping[str, Any]:
    data = response.get("data") if isinstance(response, Mapping) else None
    if not isinstance(data, Mapping):
        raise _malformed(api, "data")
    return data


def _plaintext(data: Mapping[str, Any], api: str) -> bytes:
    value = data.get("plaintext")
    try:
        plaintext = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        plaintext = b""
    if len(plaintext) != _DATA_KEY_BYTES:
        raise _malformed(api, f"{_DATA_KEY_BYTES}-byte plaintext")
    return plaintext


def _opened(data: Mapping[str, Any]) -> bytes:
    try:
        return _plaintext(data, "decrypt")
    except KmsError:
        # Transit opened it, but it is no data key of ours: a blob made by someone else.
        raise DecryptionError(
            "the blob opened under its Transit key but holds no 32-byte data key; the header "
            "was altered or the blob was not made by sealstore"
        ) from None


def _ciphertext(data: Mapping[str, Any], api: str) -> bytes:
    value = data.get("ciphertext")
    blob = value.encode("ascii", "replace") if isinstance(value, str) else b""
    if not 0 < len(blob) <= _MAX_BLOB_BYTES or not _BLOB.fullmatch(blob):
        raise _malformed(api, "ciphertext")
    return blob


def _check_derived(data: Mapping[str, Any], name: str) -> None:
    if data.get("derived") is not True:
        raise KeyStateError(
            f"Transit key {name!r} was not created with derived=true, so it would ignore the "
            "encryption context sealstore binds each blob to; use a key created with "
            "derived=true (VaultTransitKms.create_key makes one)"
        )


def _latest_version(data: Mapping[str, Any]) -> int:
    value = data.get("latest_version")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _malformed("read key", "latest_version")
    return value


def _batch_results(response: Any, count: int) -> list[Any] | None:
    data = response.get("data") if isinstance(response, Mapping) else None
    results = data.get("batch_results") if isinstance(data, Mapping) else None
    if not isinstance(results, list) or len(results) != count:
        return None
    return results


def _batch_item(
    answer: Any, call: _Call, address: str, open_item: Callable[[Mapping[str, Any]], _T]
) -> _T | SealstoreError:
    error = answer.get("error") if isinstance(answer, Mapping) else "malformed"
    if error or not isinstance(answer, Mapping):
        return _error_for(400, [str(error)], call, address)
    try:
        return open_item(answer)
    except SealstoreError as refused:
        return refused


def _foreign_errors() -> tuple[type[Exception], type[Exception]]:
    """hvac's and requests' root exceptions, if installed (else classes nothing raises)."""
    try:
        import hvac.exceptions  # noqa: PLC0415 - optional dependency
        import requests  # noqa: PLC0415 - hvac's transport
    except ImportError:  # pragma: no cover - the extra is installed wherever this is used

        class _Never(Exception):
            pass

        return _Never, _Never
    return hvac.exceptions.VaultError, requests.exceptions.RequestException


def _internal_server_error() -> type[Exception]:
    """hvac's exception for HTTP 500."""
    import hvac.exceptions  # noqa: PLC0415 - optional dependency

    error: type[Exception] = hvac.exceptions.InternalServerError
    return error


_STATUS_BY_ERROR = {
    "InvalidRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "InvalidPath": 404,
    "RateLimitExceeded": 429,
    "InternalServerError": 500,
    "VaultNotInitialized": 501,
    "BadGateway": 502,
    "VaultDown": 503,
}


def _translate(
    error: Exception, call: _Call, address: str
) -> tuple[SealstoreError | None, Outcome]:
    """The sealstore error for ``error`` (``None``: not from Vault, let it through) and the
    audit outcome."""
    if isinstance(error, SealstoreError):
        outcome = Outcome.DENIED if isinstance(error, AccessDeniedError) else Outcome.FAILURE
        return error, outcome
    vault_error, transport_error = _foreign_errors()
    if isinstance(error, transport_error):
        return (
            KmsError(
                f"the Vault server at {address} did not answer Transit {call.api} for key "
                f"{call.key_id!r} ({type(error).__name__}); check that it runs and is "
                "reachable, then retry"
            ),
            Outcome.FAILURE,
        )
    if isinstance(error, vault_error):
        status = _STATUS_BY_ERROR.get(type(error).__name__, 0)
        errors = getattr(error, "errors", None)
        messages = [str(item) for item in errors] if isinstance(errors, list) else []
        translated = _error_for(status, messages, call, address)
        outcome = Outcome.DENIED if isinstance(translated, AccessDeniedError) else Outcome.FAILURE
        return translated, outcome
    return None, Outcome.FAILURE


_OPENS_BLOBS = frozenset({"decrypt", "decrypt (batch)", "rewrap", "rewrap (batch)"})
_LOGIN = "AppRole login"


def _error_for(  # noqa: PLR0911 - one answer for each kind of Vault refusal
    status: int, messages: list[str], call: _Call, address: str
) -> SealstoreError:
    """The sealstore error for Vault's answer; Vault's own text is matched, never quoted."""
    said = " ".join(messages).lower()
    key = repr(call.key_id)
    if call.api == _LOGIN and status in (400, 401, 403):
        return AccessDeniedError(
            f"Vault at {address} refused the AppRole login at auth mount {key}: check the "
            "role id, the secret id (and whether it expired or was used up) and the mount"
        )
    if status in (401, 403):
        return AccessDeniedError(
            f"Vault at {address} denied Transit {call.api} on key {key} (principal "
            f"{call.principal!r}): the token's policies must allow 'update' on "
            "<mount>/datakey/plaintext/<key>, <mount>/decrypt/<key> or <mount>/rewrap/<key>, "
            "and 'read' on <mount>/keys/<key>, as the operation needs; or the token expired"
        )
    if "encryption key not found" in said or (
        status == 404 and call.api == "read key" and not said
    ):
        return KeyNotFoundError(f"Transit key {key} does not exist at {address} ({call.api})")
    if "soft-deleted" in said:
        return KeyPendingDeletionError(
            f"Transit key {key} at {address} is soft-deleted ({call.api}); restore it "
            "(keys/<key>/soft-delete-restore) to use it again"
        )
    if "too old" in said or "disallowed by policy" in said:
        return KeyRetiredError(
            f"the blob was made under a version of Transit key {key} below its "
            f"min_decryption_version ({call.api}); lower it to read, or rewrap the object "
            "while that version is still allowed"
        )
    if status == 400 and call.api in _OPENS_BLOBS and "json" not in said:
        return DecryptionError(
            f"Transit key {key} could not open the data key blob ({call.api}): the blob was "
            "altered, or it was made under another key or encryption context"
        )
    if status == 404:
        return KmsError(
            f"Vault at {address} has no Transit engine at the mount used for {call.api} on key "
            f"{key}; check the mount path and the namespace"
        )
    return KmsError(
        f"Vault at {address} failed Transit {call.api} on key {key} (HTTP {status or 'error'}); "
        "retry later, and check the server (sealed, standby) if it persists"
    )
