"""``AwsKms`` against a real moto_server, and its error translation at the botocore seam."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

import sealstore
from sealstore.audit import MemoryAuditSink, Operation, Outcome
from sealstore.backends import S3Backend
from sealstore.kms import DataKey, KmsClient
from sealstore.kms.aws import DEFAULT_ALIAS, AwsKms
from sealstore.testing import FakeClock
from tests.servers import ServerStartError, free_ports, running_server

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

CONTEXT = {"bucket": "ledger-7f3a", "object": "2024/invoice-17.pdf"}
PRINCIPAL = "orders-service"
START = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def boto_kms(endpoint: str, **config: Any) -> KMSClient:
    """A boto3 KMS client for ``endpoint`` with dummy credentials."""
    return boto3.client(
        "kms",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**config) if config else None,
    )


@pytest.fixture
def client(moto_server: str) -> KMSClient:
    """A boto3 KMS client talking to the session's moto_server."""
    return boto_kms(moto_server)


@pytest.fixture
def sink() -> MemoryAuditSink:
    """An empty in-memory audit sink."""
    return MemoryAuditSink()


@pytest.fixture
def kms(client: KMSClient, sink: MemoryAuditSink) -> AwsKms:
    """An ``AwsKms`` over moto, auditing into ``sink`` with a fake clock."""
    return AwsKms(
        client,
        audit=sink,
        clock=FakeClock(START, tick=timedelta(seconds=1)),
        default_alias=unique_alias(),
    )


def new_key(client: KMSClient) -> str:
    """The ARN of a new symmetric key in moto."""
    arn: str = client.create_key(Description="test key")["KeyMetadata"]["Arn"]
    return arn


def unique_alias() -> str:
    """An alias no other test uses, so the shared server's state does not leak between tests."""
    return f"alias/sealstore-test/{uuid.uuid4().hex}"


def key_count(client: KMSClient) -> int:
    """How many keys moto holds (it has far fewer than one page)."""
    return len(client.list_keys(Limit=1000)["Keys"])


# --- against moto_server -------------------------------------------------------------------


def test_round_trip(kms: AwsKms, client: KMSClient) -> None:
    """A generated data key decrypts to the same 32 bytes, and its key id is the key's ARN."""
    arn = new_key(client)
    data_key = kms.generate_data_key(arn, CONTEXT, principal=PRINCIPAL)
    assert data_key.key_id == arn
    assert len(data_key.plaintext) == 32
    assert data_key.blob != data_key.plaintext
    assert kms.decrypt(data_key.key_id, data_key.blob, CONTEXT, principal=PRINCIPAL) == (
        data_key.plaintext
    )


def test_alias_resolves_to_arn_and_empty_context_works(kms: AwsKms, client: KMSClient) -> None:
    """Generating under an alias reports the key's ARN; an empty context round-trips."""
    arn = new_key(client)
    alias = unique_alias()
    client.create_alias(AliasName=alias, TargetKeyId=arn)
    data_key = kms.generate_data_key(alias, {}, principal=PRINCIPAL)
    assert data_key.key_id == arn
    assert kms.decrypt(alias, data_key.blob, {}, principal=PRINCIPAL) == data_key.plaintext


def test_satisfies_kms_client_protocol(kms: AwsKms) -> None:
    """``AwsKms`` is usable wherever a ``KmsClient`` is expected."""
    as_protocol: KmsClient = kms
    assert as_protocol is kms


@pytest.mark.parametrize(
    "other_context",
    [
        {"bucket": "ledger-7f3a", "object": "2024/invoice-18.pdf"},
        {"bucket": "ledger-7f3a"},
        {},
        {**CONTEXT, "extra": "x"},
    ],
)
def test_context_mismatch_fails(
    kms: AwsKms, client: KMSClient, other_context: dict[str, str]
) -> None:
    """A blob does not decrypt with any context but the one it was generated with."""
    data_key = kms.generate_data_key(new_key(client), CONTEXT, principal=PRINCIPAL)
    with pytest.raises(sealstore.DecryptionError) as caught:
        kms.decrypt(data_key.key_id, data_key.blob, other_context, principal=PRINCIPAL)
    assert "invoice" not in str(caught.value)
    assert isinstance(caught.value.__cause__, ClientError)


def test_altered_blob_fails(kms: AwsKms, client: KMSClient) -> None:
    """A blob with one bit flipped raises DecryptionError, not garbage."""
    data_key = kms.generate_data_key(new_key(client), CONTEXT, principal=PRINCIPAL)
    altered = data_key.blob[:-1] + bytes([data_key.blob[-1] ^ 1])
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(data_key.key_id, altered, CONTEXT, principal=PRINCIPAL)


def test_wrong_key_id_on_decrypt_fails(kms: AwsKms, client: KMSClient) -> None:
    """Naming another existing key for a blob is refused, and the message names that key."""
    data_key = kms.generate_data_key(new_key(client), CONTEXT, principal=PRINCIPAL)
    other = new_key(client)
    # moto answers AccessDeniedException here; AWS answers IncorrectKeyException
    # (DecryptionError, covered by the stubbed translation table below).
    with pytest.raises((sealstore.AccessDeniedError, sealstore.DecryptionError)) as caught:
        kms.decrypt(other, data_key.blob, CONTEXT, principal=PRINCIPAL)
    assert other in str(caught.value)
    assert "Decrypt" in str(caught.value)


def test_reencrypt_moves_blob_to_another_key(kms: AwsKms, client: KMSClient) -> None:
    """A re-encrypted blob decrypts under the new key to the same data key, not the old one."""
    old, new = new_key(client), new_key(client)
    data_key = kms.generate_data_key(old, CONTEXT, principal=PRINCIPAL)
    new_id, new_blob = kms.reencrypt(old, data_key.blob, CONTEXT, new, principal=PRINCIPAL)
    assert new_id == new
    assert new_blob != data_key.blob
    assert kms.decrypt(new, new_blob, CONTEXT, principal=PRINCIPAL) == data_key.plaintext
    with pytest.raises((sealstore.AccessDeniedError, sealstore.DecryptionError)):
        kms.decrypt(old, new_blob, CONTEXT, principal=PRINCIPAL)


def test_reencrypt_keeps_context(kms: AwsKms, client: KMSClient) -> None:
    """Re-encryption needs the original context and binds the new blob to it."""
    old, new = new_key(client), new_key(client)
    data_key = kms.generate_data_key(old, CONTEXT, principal=PRINCIPAL)
    with pytest.raises(sealstore.DecryptionError):
        kms.reencrypt(old, data_key.blob, {"bucket": "ledger-7f3a"}, new, principal=PRINCIPAL)
    _, new_blob = kms.reencrypt(old, data_key.blob, CONTEXT, new, principal=PRINCIPAL)
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(new, new_blob, {"bucket": "ledger-7f3a"}, principal=PRINCIPAL)


def test_default_key_created_once_and_stable(client: KMSClient) -> None:
    """The default key is created on first use only, the same for two calls and two instances."""
    alias = unique_alias()
    before = key_count(client)
    first = AwsKms(client, default_alias=alias).default_key_id(principal=PRINCIPAL)
    again = AwsKms(client, default_alias=alias).default_key_id(principal=PRINCIPAL)
    other_instance = AwsKms(boto_kms(client.meta.endpoint_url), default_alias=alias)
    assert first == again == other_instance.default_key_id(principal=PRINCIPAL)
    assert key_count(client) == before + 1
    metadata = client.describe_key(KeyId=alias)["KeyMetadata"]
    assert metadata["Arn"] == first
    assert metadata["KeyState"] == "Enabled"
    assert "sealstore" in metadata["Description"]
    data_key = other_instance.generate_data_key(first, CONTEXT, principal=PRINCIPAL)
    assert data_key.key_id == first


def test_default_alias_is_sealstore_default() -> None:
    """Without an explicit alias the default key lives at ``alias/sealstore/default``."""
    kms = AwsKms(object())  # type: ignore[arg-type]
    assert kms.default_alias == DEFAULT_ALIAS == "alias/sealstore/default"
    assert repr(kms) == "AwsKms(default_alias='alias/sealstore/default')"


@pytest.mark.parametrize("alias", ["orders", "alias/", "alias/aws/s3"])
def test_default_alias_validated(alias: str) -> None:
    """An alias AWS would refuse for a customer key is refused when the object is made."""
    with pytest.raises(ValueError, match="alias"):
        AwsKms(object(), default_alias=alias)  # type: ignore[arg-type]


class AliasRace:
    """A KMS client whose CreateAlias loses to another process that created the alias first."""

    def __init__(self, client: KMSClient, rival_key: str) -> None:
        self._client = client
        self._rival_key = rival_key
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self._client, name)

    def create_alias(self, **kwargs: Any) -> Any:
        self.calls.append("create_alias")
        self._client.create_alias(AliasName=kwargs["AliasName"], TargetKeyId=self._rival_key)
        return self._client.create_alias(**kwargs)


def test_default_key_race_uses_the_winner(client: KMSClient, sink: MemoryAuditSink) -> None:
    """When another process creates the alias first, its key is the default and ours is
    scheduled for deletion."""
    alias = unique_alias()
    rival = new_key(client)
    racing = AliasRace(client, rival)
    kms = AwsKms(racing, default_alias=alias, audit=sink)
    assert kms.default_key_id(principal=PRINCIPAL) == rival
    assert kms.default_key_id(principal=PRINCIPAL) == rival
    assert racing.calls.count("create_key") == 1
    created = next(e.key_id for e in sink.events if e.operation is Operation.CREATE_KEY)
    assert created != rival
    assert client.describe_key(KeyId=created)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    outcomes = [(e.operation, e.outcome) for e in sink.events]
    assert outcomes == [
        (Operation.DESCRIBE_KEY, Outcome.FAILURE),
        (Operation.CREATE_KEY, Outcome.SUCCESS),
        (Operation.CREATE_ALIAS, Outcome.FAILURE),
        (Operation.DESCRIBE_KEY, Outcome.SUCCESS),
        (Operation.SCHEDULE_DELETION, Outcome.SUCCESS),
        (Operation.DESCRIBE_KEY, Outcome.SUCCESS),
    ]


@pytest.mark.parametrize(
    "key_id",
    ["11111111-2222-3333-4444-555555555555", "alias/sealstore-test/no-such-alias"],
)
def test_unknown_key(kms: AwsKms, client: KMSClient, key_id: str) -> None:
    """An unknown key id or alias raises KeyNotFoundError for every operation."""
    data_key = kms.generate_data_key(new_key(client), CONTEXT, principal=PRINCIPAL)
    with pytest.raises(sealstore.KeyNotFoundError, match="GenerateDataKey") as caught:
        kms.generate_data_key(key_id, CONTEXT, principal=PRINCIPAL)
    assert key_id in str(caught.value)
    assert isinstance(caught.value.__cause__, ClientError)
    with pytest.raises(sealstore.KeyNotFoundError, match="ReEncrypt") as caught:
        kms.reencrypt(data_key.key_id, data_key.blob, CONTEXT, key_id, principal=PRINCIPAL)
    assert f"{data_key.key_id!r} (source) or {key_id!r} (destination)" in str(caught.value)


def test_unknown_key_on_decrypt(kms: AwsKms, client: KMSClient) -> None:
    """Decrypting while naming a key that does not exist raises KeyNotFoundError."""
    data_key = kms.generate_data_key(new_key(client), CONTEXT, principal=PRINCIPAL)
    missing = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(sealstore.KeyNotFoundError, match="Decrypt"):
        kms.decrypt(missing, data_key.blob, CONTEXT, principal=PRINCIPAL)


def test_default_key_pending_deletion(
    kms: AwsKms, client: KMSClient, sink: MemoryAuditSink
) -> None:
    """A default key scheduled for deletion raises KeyPendingDeletionError instead of being used.

    moto keeps serving GenerateDataKey on such a key, but DescribeKey reports its state.
    """
    arn = kms.default_key_id(principal=PRINCIPAL)
    key_id = client.describe_key(KeyId=arn)["KeyMetadata"]["KeyId"]  # moto wants no ARN here
    client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(sealstore.KeyPendingDeletionError, match="cancel the deletion"):
        kms.default_key_id(principal=PRINCIPAL)
    assert sink.events[-1].operation is Operation.DESCRIBE_KEY
    assert sink.events[-1].outcome is Outcome.FAILURE
    assert sink.events[-1].reason == "KeyPendingDeletionError"


def test_server_not_running() -> None:
    """A KMS endpoint where nothing listens raises KmsError caused by botocore's error."""
    (port,) = free_ports(1)
    client = boto_kms(
        f"http://127.0.0.1:{port}",
        connect_timeout=1,
        read_timeout=1,
        retries={"total_max_attempts": 1},
    )
    sink = MemoryAuditSink()
    kms = AwsKms(client, audit=sink, clock=FakeClock(START, tick=timedelta(seconds=1)))
    with pytest.raises(sealstore.KmsError) as caught:
        kms.generate_data_key("alias/orders", CONTEXT, principal=PRINCIPAL)
    assert type(caught.value) is sealstore.KmsError
    assert isinstance(caught.value.__cause__, EndpointConnectionError)
    assert "GenerateDataKey" in str(caught.value)
    assert "alias/orders" in str(caught.value)
    assert [(e.outcome, e.reason) for e in sink.events] == [
        (Outcome.FAILURE, "EndpointConnectionError")
    ]


def test_audit_events_without_secrets(
    kms: AwsKms, client: KMSClient, sink: MemoryAuditSink
) -> None:
    """Each call records one event with time, principal, key, context keys and outcome, and no
    event holds a key, a blob or a context value."""
    old, new = new_key(client), new_key(client)
    data_key = kms.generate_data_key(old, CONTEXT, principal=PRINCIPAL)
    kms.decrypt(old, data_key.blob, CONTEXT, principal=PRINCIPAL)
    _, new_blob = kms.reencrypt(old, data_key.blob, CONTEXT, new, principal=PRINCIPAL)
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(new, new_blob, {"bucket": "elsewhere"}, principal="intruder")
    assert [(e.operation, e.key_id, e.outcome, e.principal) for e in sink.events] == [
        (Operation.GENERATE, old, Outcome.SUCCESS, PRINCIPAL),
        (Operation.UNWRAP, old, Outcome.SUCCESS, PRINCIPAL),
        (Operation.REWRAP, new, Outcome.SUCCESS, PRINCIPAL),
        (Operation.UNWRAP, new, Outcome.FAILURE, "intruder"),
    ]
    assert [e.context_keys for e in sink.events] == [("bucket", "object")] * 3 + [("bucket",)]
    assert [e.time for e in sink.events] == [START + timedelta(seconds=n) for n in (0, 1, 2, 3)]
    assert sink.events[-1].reason == "InvalidCiphertextException"
    recorded = repr(sink.events)
    for secret in (data_key.plaintext, data_key.blob, new_blob):
        assert secret.hex() not in recorded
        assert repr(secret)[2:-1] not in recorded
    for value in ("ledger", "invoice", "elsewhere"):
        assert value not in recorded


def test_repr_hides_secrets(kms: AwsKms, client: KMSClient) -> None:
    """Neither the provider's nor a data key's repr shows key material or the client."""
    data_key = kms.generate_data_key(new_key(client), CONTEXT, principal=PRINCIPAL)
    assert repr(data_key) == f"DataKey(key_id={data_key.key_id!r})"
    assert repr(kms).startswith("AwsKms(default_alias='alias/sealstore-test/")
    assert "testing" not in repr(kms)


# --- error translation at the seam, with botocore's Stubber --------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[AwsKms, Stubber, MemoryAuditSink]]:
    """An ``AwsKms`` over a boto3 client whose answers are queued with a Stubber (no network)."""
    client = boto_kms("http://127.0.0.1:9")
    sink = MemoryAuditSink()
    with Stubber(client) as stubber:
        yield (
            AwsKms(client, audit=sink, clock=FakeClock(START, tick=timedelta(seconds=1))),
            stubber,
            sink,
        )
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "message", "expected", "outcome"),
    [
        (
            "AccessDeniedException",
            "User x is not authorized",
            sealstore.AccessDeniedError,
            Outcome.DENIED,
        ),
        ("NotFoundException", "Key does not exist", sealstore.KeyNotFoundError, Outcome.FAILURE),
        ("DisabledException", "key/k is disabled.", sealstore.KeyDisabledError, Outcome.FAILURE),
        (
            "KMSInvalidStateException",
            "arn:aws:kms:us-east-1:1:key/k is pending deletion.",
            sealstore.KeyPendingDeletionError,
            Outcome.FAILURE,
        ),
        (
            "KMSInvalidStateException",
            "key/k is pending replica deletion.",
            sealstore.KeyPendingDeletionError,
            Outcome.FAILURE,
        ),
        (
            "KMSInvalidStateException",
            "arn:aws:kms:us-east-1:1:key/k is pending import.",
            sealstore.KeyStateError,
            Outcome.FAILURE,
        ),
        ("InvalidCiphertextException", "", sealstore.DecryptionError, Outcome.FAILURE),
        ("IncorrectKeyException", "wrong key", sealstore.DecryptionError, Outcome.FAILURE),
        ("ThrottlingException", "Rate exceeded", sealstore.KmsError, Outcome.FAILURE),
        ("KMSInternalException", "", sealstore.KmsError, Outcome.FAILURE),
        ("DependencyTimeoutException", "", sealstore.KmsError, Outcome.FAILURE),
    ],
)
def test_error_translation(
    stubbed: tuple[AwsKms, Stubber, MemoryAuditSink],
    code: str,
    message: str,
    expected: type[sealstore.SealstoreError],
    outcome: Outcome,
) -> None:
    """Each AWS error code becomes its sealstore error, caused by the ClientError, audited."""
    kms, stubber, sink = stubbed
    stubber.add_client_error("decrypt", service_error_code=code, service_message=message)
    blob = b"\x01" * 96
    with pytest.raises(sealstore.SealstoreError) as caught:
        kms.decrypt("alias/orders", blob, CONTEXT, principal=PRINCIPAL)
    assert type(caught.value) is expected
    assert isinstance(caught.value.__cause__, ClientError)
    text = str(caught.value)
    assert "Decrypt" in text
    assert "alias/orders" in text
    assert blob.hex() not in text
    assert "invoice" not in text
    assert [(e.outcome, e.reason) for e in sink.events] == [(outcome, code)]


def test_access_denied_names_principal(stubbed: tuple[AwsKms, Stubber, MemoryAuditSink]) -> None:
    """A denial's message names the principal, the operation and the key id."""
    kms, stubber, _ = stubbed
    stubber.add_client_error("generate_data_key", service_error_code="AccessDeniedException")
    with pytest.raises(sealstore.AccessDeniedError) as caught:
        kms.generate_data_key("alias/orders", CONTEXT, principal=PRINCIPAL)
    assert PRINCIPAL in str(caught.value)
    assert "kms:GenerateDataKey" in str(caught.value)


def test_reencrypt_denial_names_both_permissions(
    stubbed: tuple[AwsKms, Stubber, MemoryAuditSink],
) -> None:
    """A denied ReEncrypt names both keys and the two permissions it needs."""
    kms, stubber, sink = stubbed
    stubber.add_client_error("re_encrypt", service_error_code="AccessDeniedException")
    with pytest.raises(sealstore.AccessDeniedError) as caught:
        kms.reencrypt("alias/old", b"blob", CONTEXT, "alias/new", principal=PRINCIPAL)
    assert "'alias/old' (source) or 'alias/new' (destination)" in str(caught.value)
    assert "kms:ReEncryptFrom" in str(caught.value)
    assert "kms:ReEncryptTo" in str(caught.value)
    assert [(e.operation, e.key_id, e.outcome) for e in sink.events] == [
        (Operation.REWRAP, "alias/new", Outcome.DENIED)
    ]


@pytest.mark.parametrize(
    ("response", "field"),
    [
        ({"KeyId": "arn:k", "Plaintext": b"\x00" * 16, "CiphertextBlob": b"b"}, "Plaintext"),
        (
            {"KeyId": "arn:k", "Plaintext": b"\x00" * 32, "CiphertextBlob": b"b" * 6145},
            "CiphertextBlob",
        ),
        ({"Plaintext": b"\x00" * 32, "CiphertextBlob": b"b"}, "KeyId"),
    ],
)
def test_malformed_answer(
    stubbed: tuple[AwsKms, Stubber, MemoryAuditSink], response: dict[str, Any], field: str
) -> None:
    """An answer with a short data key, an oversized blob or no key id raises KmsError."""
    kms, stubber, sink = stubbed
    stubber.add_response("generate_data_key", response)
    with pytest.raises(sealstore.KmsError, match=field):
        kms.generate_data_key("alias/orders", CONTEXT, principal=PRINCIPAL)
    assert sink.events[0].outcome is Outcome.FAILURE


@pytest.mark.parametrize("blob", [b"", b"\x00" * 6145])
def test_impossible_blob_refused_without_a_call(
    stubbed: tuple[AwsKms, Stubber, MemoryAuditSink], blob: bytes
) -> None:
    """A blob no AWS KMS could have made is refused before any request (nothing is stubbed)."""
    kms, _, sink = stubbed
    with pytest.raises(sealstore.DecryptionError, match="header was altered"):
        kms.decrypt("alias/orders", blob, CONTEXT, principal=PRINCIPAL)
    with pytest.raises(sealstore.DecryptionError):
        kms.reencrypt("alias/orders", blob, CONTEXT, "alias/other", principal=PRINCIPAL)
    assert [e.reason for e in sink.events] == ["DecryptionError", "DecryptionError"]


def test_default_key_disabled(stubbed: tuple[AwsKms, Stubber, MemoryAuditSink]) -> None:
    """A default key reported disabled raises KeyDisabledError instead of being used."""
    kms, stubber, _ = stubbed
    stubber.add_response(
        "describe_key",
        {
            "KeyMetadata": {
                "KeyId": "k",
                "Arn": "arn:aws:kms:us-east-1:1:key/k",
                "KeyState": "Disabled",
            }
        },
        {"KeyId": DEFAULT_ALIAS},
    )
    with pytest.raises(sealstore.KeyDisabledError, match="enable it"):
        kms.default_key_id(principal=PRINCIPAL)


def test_default_key_creation_denied(stubbed: tuple[AwsKms, Stubber, MemoryAuditSink]) -> None:
    """Credentials that may not create the default key get AccessDeniedError, audited."""
    kms, stubber, sink = stubbed
    stubber.add_client_error("describe_key", service_error_code="NotFoundException")
    stubber.add_client_error("create_key", service_error_code="AccessDeniedException")
    with pytest.raises(sealstore.AccessDeniedError, match="CreateKey"):
        kms.default_key_id(principal=PRINCIPAL)
    assert [(e.operation, e.outcome) for e in sink.events] == [
        (Operation.DESCRIBE_KEY, Outcome.FAILURE),
        (Operation.CREATE_KEY, Outcome.DENIED),
    ]


class BrokenClient:
    """A client whose calls fail with an error that is not from AWS."""

    def __getattr__(self, name: str) -> Any:
        def fail(**_kwargs: Any) -> Any:
            raise RuntimeError("bug in a test double")

        return fail


def test_foreign_errors_pass_through_audited() -> None:
    """An exception that is neither AWS's nor botocore's is not disguised, but is audited."""
    sink = MemoryAuditSink()
    kms = AwsKms(BrokenClient(), audit=sink)
    with pytest.raises(RuntimeError, match="bug in a test double"):
        kms.generate_data_key("alias/orders", CONTEXT, principal=PRINCIPAL)
    assert [(e.outcome, e.reason) for e in sink.events] == [(Outcome.FAILURE, "RuntimeError")]
    assert sink.events[0].time.tzinfo is timezone.utc


def test_data_key_type_is_kms_data_key(stubbed: tuple[AwsKms, Stubber, MemoryAuditSink]) -> None:
    """A generated key is a ``DataKey`` carrying exactly what AWS returned."""
    kms, stubber, _ = stubbed
    stubber.add_response(
        "generate_data_key",
        {
            "KeyId": "arn:aws:kms:us-east-1:1:key/k",
            "Plaintext": b"\x07" * 32,
            "CiphertextBlob": b"blob",
        },
        {"KeyId": "alias/orders", "KeySpec": "AES_256", "EncryptionContext": CONTEXT},
    )
    assert kms.generate_data_key("alias/orders", CONTEXT, principal=PRINCIPAL) == DataKey(
        key_id="arn:aws:kms:us-east-1:1:key/k", plaintext=b"\x07" * 32, blob=b"blob"
    )


# --- packaging -------------------------------------------------------------------------------


def test_import_does_not_pull_boto3() -> None:
    """Importing sealstore, or the AWS adapter itself, imports neither boto3 nor botocore."""
    code = textwrap.dedent(
        """
        import sys
        import sealstore, sealstore.kms.aws
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"boto3", "botocore"})
        print(",".join(loaded))
        """
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


# --- the server helper behind the moto_server fixture ---------------------------------------


def test_running_server_serves_then_stops(tmp_path: Path) -> None:
    """A started server answers on its endpoint and its process is gone after the block."""
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1"]
    with running_server(lambda ports: [*command, str(ports[0])], log_dir=tmp_path) as server:
        with urllib.request.urlopen(server.endpoint + "/", timeout=5) as answer:  # noqa: S310
            assert answer.status == 200
        while_running = server.returncode
        pid = server.pid
    assert while_running is None
    assert server.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_running_server_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    """A server that ignores SIGTERM is killed with SIGKILL after the grace period."""
    program = (
        "import signal, sys, http.server\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])),"
        " http.server.BaseHTTPRequestHandler).serve_forever()\n"
    )
    with running_server(
        lambda ports: [sys.executable, "-c", program, str(ports[0])],
        log_dir=tmp_path,
        stop_timeout=0.5,
    ) as server:
        while_running = server.returncode
    assert while_running is None
    assert server.returncode == -signal.SIGKILL


def test_running_server_reports_early_exit(tmp_path: Path) -> None:
    """A command that exits before answering fails with its log, after each attempt."""
    program = "import sys; print('cannot bind', sys.argv[1]); sys.exit(3)"
    with (
        pytest.raises(ServerStartError, match="exited with status 3") as caught,
        running_server(
            lambda ports: [sys.executable, "-c", program, str(ports[0])],
            log_dir=tmp_path,
            attempts=2,
        ),
    ):
        pytest.fail("the block must not run")
    assert str(caught.value).count("cannot bind") == 2


@pytest.mark.parametrize("bucket_key", [False, True])
def test_kms_keys_over_aws_kms_through_a_store_on_s3(
    client: KMSClient, moto_server: str, bucket_key: bool
) -> None:
    """KmsKeys over AwsKms encrypts objects in an S3Backend and reads them back, ranges too."""
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = f"kms-store-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    keys = sealstore.KmsKeys(AwsKms(client), key_id=new_key(client), bucket_key=bucket_key)
    store = sealstore.EncryptedStore(S3Backend(s3, bucket), keys)
    plaintext = os.urandom(100_000)
    head = store.put("reports/q3.bin", plaintext, context={"tenant": "acme"})
    assert head.key_id is not None
    assert head.key_id.startswith("arn:aws:kms:")
    assert store.get("reports/q3.bin", context={"tenant": "acme"}) == plaintext
    with store.open("reports/q3.bin") as reader:
        reader.seek(70_000)
        assert reader.read(10) == plaintext[70_000:70_010]
