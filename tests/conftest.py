"""Shared fixtures, and the secrets check every test runs under (see ``tests/leaks.py``)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

import sealstore
import sealstore.testing.plugin
from sealstore.audit import AuditEvent
from tests.leaks import PLAINTEXT_MARKER, LogCatcher, SecretRegistry, key_material
from tests.servers import running_moto, running_openbao, running_seaweedfs
from tests.test_s3_backend import s3_client, unique_bucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_REGISTRY = SecretRegistry()
_REGISTRY.add(PLAINTEXT_MARKER, lasting=True)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object]) -> Generator[None, object, object]:
    """Watch for the key material of every fixture's value (keys, customer, root keys...)."""
    value = yield
    for secret in key_material(value):
        _REGISTRY.add(secret, lasting=fixturedef.scope != "function")
    return value


_CATCHER = LogCatcher(_REGISTRY)


def pytest_configure(config: pytest.Config) -> None:
    """Check every log record for secrets, for the whole run; register the fixtures users
    get (sealstore_store, sealstore_kms...) unless the entry point already did.

    pyproject.toml blocks the entry point, which pytest imports before coverage starts, so
    the plugin is imported here, once coverage measures.
    """
    logging.getLogger().addHandler(_CATCHER)
    if not config.pluginmanager.is_registered(sealstore.testing.plugin):
        config.pluginmanager.register(sealstore.testing.plugin, "sealstore-fixtures")


def pytest_unconfigure() -> None:
    """Stop checking log records."""
    logging.getLogger().removeHandler(_CATCHER)


@contextlib.contextmanager
def _debug_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.setLevel(level)


# Every logger logs at DEBUG while a test runs. These wrappers run inside pytest's own
# logging ones (trylast), which set the root level for each phase; pytest's capture handlers
# stay at ``log_level`` (INFO), so they never format DEBUG records (megabytes of request
# bodies from botocore).
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Run the setup phase with every logger at DEBUG."""
    with _debug_logging():
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Run the test with every logger at DEBUG."""
    with _debug_logging():
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Run the teardown phase with every logger at DEBUG."""
    with _debug_logging():
        return (yield)


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[SecretRegistry]:
    """The secrets this test must not leak: fails the test if one reaches a log record (any
    logger, at DEBUG) or an event recorded through a MemoryAuditSink or JsonlAuditLog.

    Add a test's own keys and plaintexts with ``secrets.add(...)``.
    """
    _CATCHER.leaks.clear()
    events: list[AuditEvent] = []
    for sink in (sealstore.MemoryAuditSink, sealstore.JsonlAuditLog):
        monkeypatch.setattr(sink, "record", _watching(sink.record, events))
    yield _REGISTRY
    leaks = [*_CATCHER.leaks]
    leaks += [
        f"audit event {event.operation.value}" for event in events if _REGISTRY.find([repr(event)])
    ]
    _CATCHER.leaks.clear()
    _REGISTRY.end_test()
    if leaks:
        pytest.fail("a secret (key or plaintext) appeared in: " + "; ".join(leaks), pytrace=False)


def _watching(
    record: Callable[[Any, AuditEvent], None], events: list[AuditEvent]
) -> Callable[[Any, AuditEvent], None]:
    def watched(self: Any, event: AuditEvent) -> None:
        events.append(event)
        record(self, event)

    return watched


@pytest.fixture
def keys() -> sealstore.CustomerKeys:
    """A fresh customer key provider."""
    return sealstore.CustomerKeys(os.urandom(32))


@pytest.fixture
def plaintext() -> bytes:
    """Plaintext the suite watches for: a test fails if it reaches a log or an audit event."""
    return PLAINTEXT_MARKER


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``moto_server`` on 127.0.0.1 for the whole session; yields its endpoint URL."""
    with running_moto(tmp_path_factory.mktemp("moto_server")) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real SeaweedFS (``weed mini``) on 127.0.0.1 for the session; yields its S3 endpoint.

    S3 requests must be signed with access key ``testing`` and secret ``testing``. Buckets
    are not created on upload: tests create their own.
    """
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def moto_bucket(moto_server: str) -> tuple[S3Client, str]:
    """A bucket on moto_server shared by the tests that run on every backend."""
    client = s3_client(moto_server)
    return client, unique_bucket(client)


@pytest.fixture(scope="session")
def seaweedfs_bucket(seaweedfs_server: str) -> tuple[S3Client, str]:
    """A bucket on SeaweedFS shared by the tests that run on every backend."""
    client = s3_client(seaweedfs_server)
    return client, unique_bucket(client)


@pytest.fixture(scope="session")
def openbao_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real OpenBao dev server on 127.0.0.1 for the session; yields ``(address, root
    token)``. Its root token is a secret the suite watches for in logs and audit events.

    Nothing is mounted but the dev server's own: tests enable the Transit engines, auth
    methods and namespaces they use, at paths of their own.
    """
    token = "root-" + os.urandom(16).hex()
    _REGISTRY.add(token, lasting=True)
    with running_openbao(tmp_path_factory.mktemp("openbao"), token) as address:
        yield address, token
