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
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = ["LocalServer", "ServerStartError", "free_ports", "http_answers", "running_server"]

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
