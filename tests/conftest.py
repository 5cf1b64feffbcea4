"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import sealstore
from tests.servers import running_moto, running_seaweedfs


@pytest.fixture
def keys() -> sealstore.CustomerKeys:
    """A fresh customer key provider."""
    return sealstore.CustomerKeys(os.urandom(32))


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
