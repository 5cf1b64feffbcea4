"""No key or plaintext reaches a log record or an audit event: the suite-wide check
(``tests/leaks.py``, the ``secrets`` fixture) and botocore's DEBUG logging of KMS bodies."""

from __future__ import annotations

import base64
import logging
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import sealstore
from sealstore.backends.s3 import S3Backend
from sealstore.kms.aws import AwsKms
from tests.leaks import PLAINTEXT_MARKER, LogCatcher, SecretRegistry, key_material, spellings

pytest_plugins = ["pytester"]

KEY = bytes(range(32))


def test_spellings_of_a_key() -> None:
    """A key is watched for raw, as repr, hex and base64 (standard and URL-safe)."""
    forms = spellings(KEY)
    assert {KEY.hex(), KEY.hex().upper(), repr(KEY)[2:-1], KEY.decode("latin-1")} <= forms
    assert base64.b64encode(KEY).decode()[:42] in forms  # the characters of whole sextets
    assert base64.urlsafe_b64encode(KEY).decode()[:42] in forms


@pytest.mark.parametrize("shift", [0, 1, 2])
def test_registry_finds_a_key_inside_longer_base64(shift: int) -> None:
    """A key embedded in a longer value that was base64-encoded is found at any alignment."""
    registry = SecretRegistry()
    registry.add(KEY)
    text = base64.b64encode(os.urandom(shift) + KEY + os.urandom(5)).decode()
    assert registry.find([f"document: {text}"])
    assert not registry.find([base64.b64encode(os.urandom(40)).decode()])


def test_registry_forgets_a_tests_secrets_but_not_lasting_ones() -> None:
    """A test's secrets are dropped when it ends; lasting ones (session fixtures) stay."""
    registry = SecretRegistry()
    registry.add(KEY)
    registry.add(PLAINTEXT_MARKER, lasting=True)
    registry.end_test()
    assert not registry.find([KEY.hex()])
    assert registry.find([f"got {PLAINTEXT_MARKER!r}"])
    with pytest.raises(ValueError, match="short"):
        registry.add(b"abc")


def test_key_material_of_fixture_values() -> None:
    """Customer keys, root keys and raw 32-byte keys are registered from fixtures."""
    assert key_material(sealstore.CustomerKeys(KEY)) == [KEY]
    assert key_material(sealstore.RootKey.from_bytes(KEY)) == [KEY]
    assert key_material(KEY) == [KEY]
    assert key_material("not a key") == []


def test_log_catcher_names_the_leaking_record() -> None:
    """A record whose message, arguments (bytes included) or exception holds a secret is
    reported by logger and level."""
    registry = SecretRegistry()
    registry.add(KEY)
    catcher = LogCatcher(registry)
    logger = logging.getLogger("tests.leaky")
    logger.addHandler(catcher)
    try:
        logger.warning("fine %s", {"body": os.urandom(64)})
        logger.info("request %s", {"params": [b"xx" + KEY + b"yy"]})
        try:
            raise ValueError(KEY.hex())
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(catcher)
    assert catcher.leaks == [
        "log record of 'tests.leaky' at INFO",
        "log record of 'tests.leaky' at ERROR",
    ]
    assert catcher.records == []


_LEAKY_TESTS = """
    import logging
    from datetime import datetime, timezone
    import sealstore
    from sealstore.audit import Operation
    from tests.leaks import PLAINTEXT_MARKER

    def test_logs_fixture_key(keys):
        logging.getLogger("botocore.parsers").debug("body %r", keys.key)

    def test_logs_registered_secret(secrets):
        secret = b"0123456789abcdef"
        secrets.add(secret)
        logging.getLogger("sealstore").debug("key %s", secret.hex())

    def test_audits_plaintext(keys):
        sink = sealstore.MemoryAuditSink()
        sink.record(sealstore.AuditEvent(
            time=datetime.now(timezone.utc), principal="p", operation=Operation.GENERATE,
            key_id="k", reason=PLAINTEXT_MARKER.decode()))

    def test_clean(keys):
        logging.getLogger("botocore").debug("nothing secret here")
        assert sealstore.decrypt(sealstore.encrypt(PLAINTEXT_MARKER, keys), keys)
"""


def test_suite_fails_a_test_that_leaks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test whose logs or audit events hold a fixture's key, a registered secret or the
    plaintext marker fails; a clean one passes."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(textwrap.dedent(_LEAKY_TESTS))
    # In a child process: the leaks it logs must not reach this test's own check.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=3)
    result.stdout.fnmatch_lines(
        ["*a secret (key or plaintext) appeared in: log record of 'botocore.parsers' at DEBUG*"]
    )
    result.stdout.fnmatch_lines(["*a secret (key or plaintext) appeared in: audit event generate*"])


# --- botocore's DEBUG logging of KMS bodies ---------------------------------------------


def _boto_kms(endpoint: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def botocore_debug() -> Iterator[LogCatcher]:
    """Every botocore record at DEBUG, kept for the test to read."""
    catcher = LogCatcher()
    logger = logging.getLogger("botocore")
    logger.addHandler(catcher)
    try:
        yield catcher
    finally:
        logger.removeHandler(catcher)


def _bodies(catcher: LogCatcher) -> list[str]:
    return [
        record.getMessage()
        for record in catcher.records
        if record.name == "botocore.parsers" and record.getMessage().startswith("Response body")
    ]


def test_aws_kms_data_keys_stay_out_of_botocore_debug_logs(
    moto_server: str, secrets: SecretRegistry, botocore_debug: LogCatcher
) -> None:
    """With botocore logging at DEBUG, the data key AwsKms gets from GenerateDataKey and
    Decrypt is not in any record, raw or base64: AwsKms redacts KMS response bodies."""
    client = _boto_kms(moto_server)
    key_id = client.create_key()["KeyMetadata"]["Arn"]
    kms = AwsKms(client)
    data_key = kms.generate_data_key(key_id, {"bucket": "b"}, principal="app")
    secrets.add(data_key.plaintext)
    assert kms.decrypt(key_id, data_key.blob, {"bucket": "b"}, principal="app") == (
        data_key.plaintext
    )
    bodies = _bodies(botocore_debug)
    assert len([body for body in bodies if '"Plaintext": "<redacted>"' in body]) == 2
    assert not any(base64.b64encode(data_key.plaintext).decode() in body for body in bodies)


def test_botocore_debug_logs_kms_data_keys_without_the_filter(
    moto_server: str, botocore_debug: LogCatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hazard the redaction guards against: botocore alone logs GenerateDataKey's
    Plaintext (base64) at DEBUG."""
    monkeypatch.setattr(logging.getLogger("botocore.parsers"), "filters", [])
    client = _boto_kms(moto_server)
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    plaintext = client.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"]
    encoded = base64.b64encode(plaintext).decode()
    assert any(encoded in body for body in _bodies(botocore_debug))


def test_store_on_s3_logs_neither_key_nor_plaintext(
    moto_server: str, keys: sealstore.CustomerKeys, plaintext: bytes, botocore_debug: LogCatcher
) -> None:
    """A round trip through the S3 backend with botocore at DEBUG: requests and responses
    are logged, the customer key and the plaintext are not (the suite's check)."""
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="hygiene")
    store = sealstore.EncryptedStore(S3Backend(s3, "hygiene"))
    store.put("object", plaintext, keys=keys, context={"tenant": "acme"})
    assert store.get("object", keys=keys, context={"tenant": "acme"}) == plaintext
    assert any(record.name == "botocore.endpoint" for record in botocore_debug.records)
