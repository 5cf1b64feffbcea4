"""Shared fixtures."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

import sealstore
from tests.servers import running_server


@pytest.fixture
def keys() -> sealstore.CustomerKeys:
    """A fresh customer key provider."""
    return sealstore.CustomerKeys(os.urandom(32))


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``moto_server`` on 127.0.0.1 for the whole session; yields its endpoint URL."""
    with running_server(
        lambda ports: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(ports[0])],
        log_dir=tmp_path_factory.mktemp("moto_server"),
        name="moto_server",
    ) as server:
        yield server.endpoint
