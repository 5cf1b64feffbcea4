"""``AwsKms``: the :class:`~sealstore.kms.KmsClient` protocol over AWS KMS.

It wraps a boto3 KMS client that the caller builds (credentials, region, endpoint, retries
and timeouts are the client's business)::

    import boto3
    from sealstore.kms.aws import AwsKms

    kms = AwsKms(boto3.client("kms", region_name="eu-west-1"))
    data_key = kms.generate_data_key("alias/orders", {"bucket": "orders"}, principal="app")
    assert kms.decrypt(
        data_key.key_id, data_key.blob, {"bucket": "orders"}, principal="app"
    ) == data_key.plaintext

boto3 is not imported here: any object with the client's methods will do, and importing
this module works without boto3 installed. AWS errors are translated at this seam into
sealstore's errors (see :class:`AwsKms`); botocore exceptions never escape.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar, final

import attrs

from sealstore._aws import error_code, error_message, is_botocore_error
from sealstore.audit import AuditEvent, AuditSink, Operation, Outcome
from sealstore.clock import utc_now
from sealstore.errors import (
    AccessDeniedError,
    DecryptionError,
    KeyDisabledError,
    KeyNotFoundError,
    KeyPendingDeletionError,
    KeyStateError,
    KmsError,
    SealstoreError,
)
from sealstore.kms.base import DEFAULT_ALIAS, DataKey

__all__ = ["DEFAULT_ALIAS", "AwsKms", "KmsApi"]

_DATA_KEY_BYTES = 32
# AWS KMS caps CiphertextBlob at 6144 bytes; a longer blob cannot be one of its own.
_MAX_BLOB_BYTES = 6144
# The shortest waiting period AWS allows before deleting a key.
_ORPHAN_DELETION_DAYS = 7
_DEFAULT_KEY_DESCRIPTION = (
    "sealstore default key: wraps data keys for objects written without a key id"
)
_PENDING_DELETION_STATES = frozenset({"PendingDeletion", "PendingReplicaDeletion"})

_T = TypeVar("_T")


class KmsApi(Protocol):
    """The methods of a boto3 KMS client that :class:`AwsKms` calls.

    A ``boto3.client("kms")`` has them all; a test double needs only these. Each takes the
    AWS API's keyword arguments and returns its response dictionary, and reports a service
    error as an exception whose ``response["Error"]["Code"]`` is the AWS error code, as
    ``botocore.exceptions.ClientError`` does.
    """

    def generate_data_key(self, *args: Any, **kwargs: Any) -> Any: ...
    def decrypt(self, *args: Any, **kwargs: Any) -> Any: ...
    def re_encrypt(self, *args: Any, **kwargs: Any) -> Any: ...
    def describe_key(self, *args: Any, **kwargs: Any) -> Any: ...
    def create_key(self, *args: Any, **kwargs: Any) -> Any: ...
    def create_alias(self, *args: Any, **kwargs: Any) -> Any: ...
    def schedule_key_deletion(self, *args: Any, **kwargs: Any) -> Any: ...


def _check_alias(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str) or not value.startswith("alias/") or value == "alias/":
        raise ValueError("default_alias must be an AWS KMS alias name such as 'alias/app/key'")
    if value.startswith("alias/aws/"):
        raise ValueError("default_alias cannot be under 'alias/aws/', which AWS reserves")


_PLAINTEXT_FIELD = re.compile(rb'("Plaintext"\s*:\s*")[^"]*"')


class _RedactKmsPlaintext(logging.Filter):
    """Blanks ``"Plaintext"`` in the response bodies botocore logs at DEBUG: those of
    ``GenerateDataKey`` and ``Decrypt`` carry data keys, base64-encoded. Only the record's
    bytes arguments are searched, so bodies of other services are not formatted for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(
            isinstance(arg, bytes) and b'"Plaintext"' in arg for arg in args
        ):
            record.args = tuple(
                _PLAINTEXT_FIELD.sub(rb'\1<redacted>"', arg) if isinstance(arg, bytes) else arg
                for arg in args
            )
        return True


_REDACTOR = _RedactKmsPlaintext()


def _redact_botocore_logs() -> None:
    # botocore.parsers logs every response body; no request AwsKms sends carries a key.
    logger = logging.getLogger("botocore.parsers")
    if _REDACTOR not in logger.filters:
        logger.addFilter(_REDACTOR)


class _AliasTaken(KmsError):
    """CreateAlias found the alias already there: another process created it first."""


@final
@attrs.frozen(eq=False)
class AwsKms:
    """AWS KMS as a :class:`~sealstore.kms.KmsClient`, over a boto3 KMS client.

    ``principal`` is recorded in the audit trail but not sent: AWS decides by the client's
    credentials. With an ``audit`` sink, every AWS call made for a method records one
    :class:`~sealstore.audit.AuditEvent` (time from ``clock``, operation, key id, the
    encryption context's keys, outcome), whether it succeeds or fails.

    AWS errors become sealstore errors, raised ``from`` the original:

    - ``AccessDeniedException``: :class:`~sealstore.AccessDeniedError`
    - ``NotFoundException``: :class:`~sealstore.KeyNotFoundError`
    - ``DisabledException``: :class:`~sealstore.KeyDisabledError`
    - ``KMSInvalidStateException``: :class:`~sealstore.KeyPendingDeletionError` when the key is
      pending deletion, else :class:`~sealstore.KeyStateError`
    - ``InvalidCiphertextException``, ``IncorrectKeyException``:
      :class:`~sealstore.DecryptionError`
    - any other code (throttling, ``KMSInternalException``…) and botocore's own errors
      (connection refused, timeouts): :class:`~sealstore.KmsError`

    Messages name the AWS operation and the key id; never a blob, a key or a context value.
    botocore logs every response body at DEBUG, data keys included: making an ``AwsKms``
    adds a filter to the ``botocore.parsers`` logger that replaces each ``"Plaintext"``
    value in them with ``<redacted>``.
    ``repr`` shows only the default alias::

        kms = AwsKms(boto3.client("kms"), audit=sealstore.JsonlAuditLog("audit.jsonl"))
        repr(kms)  # "AwsKms(default_alias='alias/sealstore/default')"
    """

    client: KmsApi = attrs.field(repr=False)
    default_alias: str = attrs.field(default=DEFAULT_ALIAS, kw_only=True, validator=_check_alias)
    audit: AuditSink | None = attrs.field(default=None, kw_only=True, repr=False)
    clock: Callable[[], datetime] = attrs.field(default=utc_now, kw_only=True, repr=False)

    def __attrs_post_init__(self) -> None:
        _redact_botocore_logs()

    def generate_data_key(
        self, key_id: str, context: Mapping[str, str], *, principal: str
    ) -> DataKey:
        """A fresh 32-byte data key and its blob, from ``GenerateDataKey`` (``AES_256``).

        The returned :attr:`~sealstore.kms.DataKey.key_id` is the key's ARN, even when
        ``key_id`` is an alias: store that one.
        """
        request = {"KeyId": key_id, "KeySpec": "AES_256", **_context("EncryptionContext", context)}

        def parse(response: Any) -> tuple[str, DataKey]:
            arn = _text(response, "KeyId", "GenerateDataKey")
            plaintext = _data_key(response, "GenerateDataKey")
            blob = _blob(response, "GenerateDataKey")
            return arn, DataKey(key_id=arn, plaintext=plaintext, blob=blob)

        call = _Call("GenerateDataKey", Operation.GENERATE, key_id, context, principal)
        _, data_key = self._run(call, lambda: self.client.generate_data_key(**request), parse)
        return data_key

    def decrypt(
        self, key_id: str, blob: bytes, context: Mapping[str, str], *, principal: str
    ) -> bytes:
        """The 32-byte plaintext of ``blob``, from ``Decrypt`` naming ``key_id``.

        A blob made under another key or with another context, or altered, raises
        :class:`~sealstore.DecryptionError` (or :class:`~sealstore.AccessDeniedError` when the
        credentials may not use the key the blob names).
        """

        def send() -> Any:
            _check_blob(blob, "Decrypt", key_id)
            return self.client.decrypt(
                CiphertextBlob=blob, KeyId=key_id, **_context("EncryptionContext", context)
            )

        def parse(response: Any) -> tuple[str, bytes]:
            return _text(response, "KeyId", "Decrypt"), _data_key(response, "Decrypt")

        call = _Call("Decrypt", Operation.UNWRAP, key_id, context, principal)
        _, plaintext = self._run(call, send, parse)
        return plaintext

    def reencrypt(
        self,
        key_id: str,
        blob: bytes,
        context: Mapping[str, str],
        new_key_id: str,
        *,
        principal: str,
    ) -> tuple[str, bytes]:
        """``(new key ARN, new blob)`` from ``ReEncrypt``, keeping the encryption context.

        The plaintext never leaves AWS. The audit event names ``new_key_id`` (as AWS reports
        it when the call succeeds).
        """

        def send() -> Any:
            _check_blob(blob, "ReEncrypt", key_id)
            return self.client.re_encrypt(
                CiphertextBlob=blob,
                SourceKeyId=key_id,
                DestinationKeyId=new_key_id,
                **_context("SourceEncryptionContext", context),
                **_context("DestinationEncryptionContext", context),
            )

        def parse(response: Any) -> tuple[str, tuple[str, bytes]]:
            arn = _text(response, "KeyId", "ReEncrypt")
            return arn, (arn, _blob(response, "ReEncrypt"))

        call = _Call("ReEncrypt", Operation.REWRAP, new_key_id, context, principal, key_id)
        _, result = self._run(call, send, parse)
        return result

    def default_key_id(self, *, principal: str) -> str:
        """The ARN of the key behind :attr:`default_alias`, creating both on first use.

        When the alias does not exist, a symmetric key is created and the alias pointed at
        it. If another process creates the alias first, its key is used and the one just
        created is scheduled for deletion (7 days). A default key that is disabled or
        pending deletion raises its state error rather than being used.
        """
        with contextlib.suppress(KeyNotFoundError):
            return self._describe_default(principal)
        created, created_id = self._run(
            _Call("CreateKey", Operation.CREATE_KEY, self.default_alias, {}, principal),
            lambda: self.client.create_key(
                Description=_DEFAULT_KEY_DESCRIPTION,
                KeyUsage="ENCRYPT_DECRYPT",
                KeySpec="SYMMETRIC_DEFAULT",
            ),
            lambda response: (
                _metadata_arn(response, "CreateKey"),
                _text(response["KeyMetadata"], "KeyId", "CreateKey"),
            ),
        )
        try:
            self._run(
                _Call("CreateAlias", Operation.CREATE_ALIAS, created, {}, principal),
                lambda: self.client.create_alias(AliasName=self.default_alias, TargetKeyId=created),
                lambda _response: (created, None),
            )
        except _AliasTaken:
            # Lost the race: the winner's key is the default; ours was never handed out.
            winner = self._describe_default(principal)
            with contextlib.suppress(SealstoreError):  # recorded in the audit trail
                self._run(
                    _Call(
                        "ScheduleKeyDeletion", Operation.SCHEDULE_DELETION, created, {}, principal
                    ),
                    # The bare key id: some emulations take no ARN here.
                    lambda: self.client.schedule_key_deletion(
                        KeyId=created_id, PendingWindowInDays=_ORPHAN_DELETION_DAYS
                    ),
                    lambda _response: (created, None),
                )
            return winner
        return created

    def _describe_default(self, principal: str) -> str:
        def parse(response: Any) -> tuple[str, None]:
            arn = _metadata_arn(response, "DescribeKey")
            state = response["KeyMetadata"].get("KeyState")
            if state in _PENDING_DELETION_STATES:
                raise KeyPendingDeletionError(
                    f"the default AWS KMS key {self.default_alias!r} ({arn}) is scheduled for "
                    "deletion; cancel the deletion and enable it, or point the alias at "
                    "another key"
                )
            if state == "Disabled":
                raise KeyDisabledError(
                    f"the default AWS KMS key {self.default_alias!r} ({arn}) is disabled; "
                    "enable it, or point the alias at another key"
                )
            return arn, None

        return self._run(
            _Call("DescribeKey", Operation.DESCRIBE_KEY, self.default_alias, {}, principal),
            lambda: self.client.describe_key(KeyId=self.default_alias),
            parse,
        )[0]

    def _run(
        self,
        call: _Call,
        send: Callable[[], Any],
        parse: Callable[[Any], tuple[str, _T]],
    ) -> tuple[str, _T]:
        """Call AWS, parse the answer into ``(key id AWS reported, result)``, audit, translate."""
        try:
            result = parse(send())
        except Exception as error:
            translated, outcome, reason = _translate(error, call)
            self._record(call, call.key_id, outcome, reason)
            if translated is None or translated is error:
                raise
            raise translated from error
        self._record(call, result[0], Outcome.SUCCESS, "")
        return result

    def _record(self, call: _Call, key_id: str, outcome: Outcome, reason: str) -> None:
        if self.audit is None:
            return
        self.audit.record(
            AuditEvent(
                time=self.clock(),
                principal=call.principal,
                operation=call.operation,
                key_id=key_id,
                context_keys=tuple(sorted(call.context)),
                outcome=outcome,
                reason=reason,
            )
        )


@attrs.frozen
class _Call:
    """One AWS KMS request as the audit trail and error messages describe it."""

    api: str
    operation: Operation
    key_id: str
    """The key the audit event names."""
    context: Mapping[str, str] = attrs.field(repr=False)
    principal: str
    source_key_id: str | None = None
    """For ReEncrypt, the key the blob comes from (``key_id`` is the destination)."""

    def named(self) -> str:
        """The key, or keys, as error messages name them."""
        if self.source_key_id is None:
            return repr(self.key_id)
        return f"{self.source_key_id!r} (source) or {self.key_id!r} (destination)"


def _context(name: str, context: Mapping[str, str]) -> dict[str, dict[str, str]]:
    # An empty context is sent as none at all, which AWS treats the same way.
    return {name: dict(context)} if context else {}


def _check_blob(blob: bytes, api: str, key_id: str) -> None:
    if not isinstance(blob, bytes) or not 0 < len(blob) <= _MAX_BLOB_BYTES:
        raise DecryptionError(
            f"the data key blob for AWS KMS {api} with key {key_id!r} is not bytes of 1 to "
            f"{_MAX_BLOB_BYTES} bytes, so it cannot be an AWS KMS blob; the header was altered"
        )


def _malformed(api: str, field: str) -> KmsError:
    return KmsError(
        f"AWS KMS answered {api} without a valid {field}; check that the client talks to "
        "AWS KMS or a faithful emulation of it"
    )


def _text(response: Any, field: str, api: str) -> str:
    value = response.get(field) if isinstance(response, Mapping) else None
    if not isinstance(value, str) or not value:
        raise _malformed(api, field)
    return value


def _data_key(response: Any, api: str) -> bytes:
    value = response.get("Plaintext") if isinstance(response, Mapping) else None
    if not isinstance(value, bytes) or len(value) != _DATA_KEY_BYTES:
        raise _malformed(api, f"{_DATA_KEY_BYTES}-byte Plaintext")
    return value


def _blob(response: Any, api: str) -> bytes:
    value = response.get("CiphertextBlob") if isinstance(response, Mapping) else None
    if not isinstance(value, bytes) or not 0 < len(value) <= _MAX_BLOB_BYTES:
        raise _malformed(api, "CiphertextBlob")
    return value


def _metadata_arn(response: Any, api: str) -> str:
    metadata = response.get("KeyMetadata") if isinstance(response, Mapping) else None
    return _text(metadata, "Arn", api)


def _translate(error: Exception, call: _Call) -> tuple[SealstoreError | None, Outcome, str]:
    """The sealstore error for ``error`` (``None``: not from AWS, let it through), the audit
    outcome and a secret-free reason."""
    if isinstance(error, SealstoreError):
        return error, Outcome.FAILURE, type(error).__name__
    code = error_code(error)
    if code is None:
        if is_botocore_error(error):
            # The class name, not str(error): botocore's parameter errors quote values.
            return (
                KmsError(
                    f"AWS KMS {call.api} with key {call.named()} did not complete "
                    f"({type(error).__name__}); check the client's endpoint, region, network "
                    "and credentials, then retry"
                ),
                Outcome.FAILURE,
                type(error).__name__,
            )
        return None, Outcome.FAILURE, type(error).__name__
    message = error_message(error)
    outcome = Outcome.DENIED if code == "AccessDeniedException" else Outcome.FAILURE
    return _error_for_code(code, message, call), outcome, code


_PERMISSIONS = {
    "ReEncrypt": "kms:ReEncryptFrom on the source key and kms:ReEncryptTo on the destination",
    "CreateAlias": "kms:CreateAlias on both the alias and the key",
}
_UNUSABLE_BLOB = (
    "AWS KMS could not open the data key blob with key {key} ({api}: {code}): the blob "
    "was altered, or it was made under another key or encryption context"
)
_ERRORS_BY_CODE: Mapping[str, tuple[type[SealstoreError], str]] = {
    "AccessDeniedException": (
        AccessDeniedError,
        "AWS KMS denied {api} on key {key} to the credentials used for principal "
        "{principal!r}; allow {permission} for that IAM identity",
    ),
    "NotFoundException": (
        KeyNotFoundError,
        "AWS KMS key {key} does not exist in this account and region ({api}); check the "
        "key id or alias and the client's region",
    ),
    "DisabledException": (
        KeyDisabledError,
        "AWS KMS key {key} is disabled ({api}); enable it to use it again",
    ),
    "InvalidCiphertextException": (DecryptionError, _UNUSABLE_BLOB),
    "IncorrectKeyException": (DecryptionError, _UNUSABLE_BLOB),
    "AlreadyExistsException": (
        _AliasTaken,
        "AWS KMS {api} for key {key} failed: the alias already exists",
    ),
}
_PENDING_DELETION: tuple[type[SealstoreError], str] = (
    KeyPendingDeletionError,
    "AWS KMS key {key} is scheduled for deletion ({api}); cancel the deletion and enable "
    "the key to use it again",
)
_OTHER_STATE: tuple[type[SealstoreError], str] = (
    KeyStateError,
    "AWS KMS key {key} is in a state that does not allow {api}; check its state with DescribeKey",
)
_OTHER: tuple[type[SealstoreError], str] = (
    KmsError,
    "AWS KMS {api} with key {key} failed ({code}); retry later, and check the key and "
    "the client's configuration if it persists",
)


def _error_for_code(code: str, message: str, call: _Call) -> SealstoreError:
    if code == "KMSInvalidStateException":
        kind, template = _PENDING_DELETION if _says_pending_deletion(message) else _OTHER_STATE
    else:
        kind, template = _ERRORS_BY_CODE.get(code, _OTHER)
    return kind(
        template.format(
            api=call.api,
            key=call.named(),
            principal=call.principal,
            code=code,
            permission=_PERMISSIONS.get(call.api, f"kms:{call.api} on the key"),
        )
    )


def _says_pending_deletion(message: str) -> bool:
    squeezed = "".join(message.lower().split())
    return "pendingdeletion" in squeezed or "pendingreplicadeletion" in squeezed
