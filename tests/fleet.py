"""A fleet on one machine: several hosts share one bucket and one keyring, then are checked.

Each *host* is a separate process with a working directory of its own (its audit log and
its results are there), sharing no local file with the others: the root key comes in its
environment, its settings on its command line, and everything shared goes through the
S3-compatible server — the objects, and the managed keyring as one object
(:class:`~sealstore.S3KeyringStore`). Until a deadline, and at least ``MIN_OPERATIONS``
times, each host:

- *puts* objects under its own prefix (``h2/000017``), their content a function of the name;
- *reads* objects of every host (found by listing the bucket), whole or a range;
- *rotates* the keyring on demand (besides the automatic rotations its small
  ``RotationPolicy`` makes every few dozen wraps, which every host races to make);
- *rewraps* one host's prefix (``rewrap_all``), racing the others' rewraps of it.

An object is *acknowledged* once its ``put`` returned. Afterwards each host, in a new process
in its own directory, lists the bucket and decrypts every acknowledged object, so each is
verified once per host. Then the trails are compared: see :func:`check_trails` for what
"the audit trails agree" means exactly.

Keys are built by one function from the host's settings (:func:`host_keys`): managed keys
in the bucket's keyring, or, given a :class:`SharedKms`, KMS keys from one Vault/OpenBao
Transit key that every host uses (:class:`~sealstore.kms.vault.VaultTransitKms`); there
*rotate* rotates the Transit key and *rewrap* is forced, so blobs are rewrapped by the KMS.

Run as a program (``nox -s fleet``: both modes, ``SEALSTORE_FLEET_SECONDS`` each, default
60, with ``SEALSTORE_FLEET_HOSTS`` hosts, default 4; ``python -m tests.fleet --help``) or
through :func:`run_fleet` (``tests/test_fleet.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

import attrs

import sealstore
from sealstore.audit import AuditEvent, Operation, Outcome
from sealstore.backends import S3Backend
from sealstore.keys.managed import RotationPolicy
from sealstore.keys.managed.keyring import decode_keyring
from sealstore.kms.vault import VaultTransitKms

MIN_OPERATIONS: Final = 24
"""Each host does at least this many operations, however slow the machine: the checks never
depend on timing. The first ones are a put, a rotation and a rewrap, in that order."""
MAX_SIZE: Final = 6000
POLICY: Final = RotationPolicy(max_wraps=48, reserve_block=8, reload_after=timedelta(seconds=0.5))
"""Every host rotates automatically after a few dozen wraps, and sees others' rotations
within half a second."""
LOST_RACE: Final = "another writer changed the keyring first"
"""The start of the reason of a failure event for a keyring change that was not saved."""
ROOT: Final = Path(__file__).resolve().parent.parent
TOKEN_VARIABLE: Final = "SEALSTORE_FLEET_VAULT_TOKEN"
"""The Vault token reaches the hosts in their environment, never on a command line."""


def content(name: str) -> bytes:
    """The plaintext of object ``name``: its size and bytes follow from the name alone."""
    seed = hashlib.sha256(name.encode()).digest()
    size = int.from_bytes(seed[:4], "big") % MAX_SIZE
    return (seed * (size // len(seed) + 1))[:size]


# ---------------------------------------------------------------------------- in a host


def _client(settings: dict[str, Any]) -> Any:
    import boto3  # noqa: PLC0415 - the fleet runs where the tests' dependencies are

    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=settings["endpoint"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class WitnessStore:
    """A keyring store that notes the revision of every keyring document its host wrote."""

    def __init__(self, store: sealstore.S3KeyringStore) -> None:
        self.store = store
        self.written: list[int] = []

    def load(self) -> bytes | None:
        """The store's document."""
        return self.store.load()

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """The store's update; notes the revision when this host's document is what stands."""
        results: list[bytes | None] = []

        def noted(current: bytes | None) -> bytes | None:
            results.append(change(current))
            return results[-1]

        stands = self.store.update(noted)
        if stands is not None and results and results[-1] == stands:
            self.written.append(decode_keyring(stands).revision)
        return stands

    def __repr__(self) -> str:
        return repr(self.store)


@attrs.define
class HostKeys:
    """A host's key provider, how it rotates, and what it noted of its keyring writes."""

    provider: sealstore.ManagedKeys | sealstore.KmsKeys
    rotate: Callable[[], object]
    witness: WitnessStore | None = None
    """The managed keyring's store, noting the revisions written (``None`` in KMS mode)."""

    def noted(self) -> dict[str, Any]:
        """The revisions written and the lost conditional writes retried."""
        if self.witness is None:
            return {"revisions": [], "conflicts": 0}
        return {"revisions": self.witness.written, "conflicts": self.witness.store.conflicts}


def host_keys(settings: dict[str, Any], client: Any, audit: sealstore.JsonlAuditLog) -> HostKeys:
    """The keys of a host, auditing to its own log: managed keys in the bucket's keyring, or
    (``settings["vault"]``) KMS keys from the Transit engine every host shares."""
    host = settings["host"]
    vault = settings.get("vault")
    if vault is not None:
        kms = VaultTransitKms.with_token(
            vault["address"], os.environ[TOKEN_VARIABLE], mount=vault["mount"], audit=audit
        )
        keys = sealstore.KmsKeys(kms, key_id=vault["key"], principal=host)
        return HostKeys(keys, partial(kms.rotate_key, vault["key"], principal=host))
    store = WitnessStore(
        sealstore.S3KeyringStore(
            client,
            settings["bucket"],
            settings["keyring"],
            sealstore.RootKey.from_env(),
            create=True,
        )
    )
    managed = sealstore.ManagedKeys(store, rotation=POLICY, audit=audit, principal=host)
    return HostKeys(managed, managed.rotate, store)


class _Host:
    """One host's store, its random choices and its tallies."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.name: str = settings["host"]
        client = _client(settings)
        self.keys = host_keys(settings, client, sealstore.JsonlAuditLog("audit.jsonl"))
        self.store = sealstore.EncryptedStore(
            S3Backend(client, settings["bucket"], prefix="objects/"), self.keys.provider
        )
        self.rng = random.Random(settings["seed"])
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []
        self.acknowledged: list[str] = []
        self.seen: list[str] = []

    def run(self, operation: str, call: Callable[[], object]) -> None:
        try:
            call()
        except sealstore.ObjectChangedError:  # a rewrap raced another host's rewrap
            self.counts[f"{operation} ObjectChangedError"] += 1
        except Exception as error:  # every other error is what the fleet looks for
            self.counts[f"{operation} failed"] += 1
            if len(self.problems) < 20:
                self.problems.append(f"{self.name} {operation}: {type(error).__name__}: {error}")
        else:
            self.counts[operation] += 1

    def put(self, number: int) -> None:
        name = f"{self.name}/{number:06d}"
        self.store.put(name, content(name))
        self.acknowledged.append(name)

    def read(self) -> None:
        if not self.seen or self.rng.random() < 0.05:
            self.seen = [head.name for head in self.store.list()]
        if not self.seen:
            return
        name = self.rng.choice(self.seen)
        expected = content(name)
        if self.rng.random() < 0.7:
            got = self.store.get(name)
        else:
            start = self.rng.randrange(len(expected) + 1)
            with self.store.open(name) as reader:
                reader.seek(start)
                got = reader.read(1000)
            expected = expected[start : start + 1000]
        if got != expected:
            raise AssertionError(f"{name} read back other bytes than were written")
        self.counts["reads of other hosts' objects"] += not name.startswith(f"{self.name}/")

    def rewrap(self) -> None:
        prefix = f"h{self.rng.randrange(self.settings['hosts'])}/"
        # A KMS's own rotation keeps the key id: only a forced rewrap moves its blobs on.
        report = self.store.rewrap_all(prefix, force="vault" in self.settings)
        self.counts["rewrapped objects"] += report.done
        for failure in report.failed:
            if failure.error == "ObjectChangedError":
                self.counts["rewraps lost to another host's"] += 1
            else:
                self.problems.append(f"{self.name} rewrap of {failure.name}: {failure.error}")

    def work(self) -> None:
        deadline = self.settings["deadline"]
        number = 0
        while number < MIN_OPERATIONS or time.time() < deadline:
            pick = self.rng.random()
            if number == 0 or (number > 2 and pick < 0.45):
                self.run("put", partial(self.put, number))
            elif number == 1 or (number > 2 and pick < 0.53):
                self.run("rotate", self.keys.rotate)
            elif number == 2 or (number > 2 and pick < 0.58):
                self.run("rewrap_all", self.rewrap)
            else:
                self.run("read", self.read)
            number += 1
        self.counts["operations"] = number

    def result(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "counts": dict(self.counts),
            "problems": self.problems,
            "acknowledged": self.acknowledged,
            **self.keys.noted(),
        }


def _verify(settings: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Decrypt every acknowledged object on this host: what was verified, what was not."""
    host = _Host(settings)
    listed = {head.name for head in host.store.list()}
    problems = [f"{host.name}: {name} is not listed" for name in names if name not in listed]
    failures = [problem for name in names if (problem := _verify_one(host, name))]
    verified = len(names) - len(failures)
    problems.extend(failures)
    return {"host": host.name, "verified": verified, "problems": problems[:20]}


def _verify_one(host: _Host, name: str) -> str | None:
    """What is wrong with object ``name`` as ``host`` reads it, or ``None``."""
    try:
        if host.store.get(name) == content(name):
            return None
    except Exception as error:  # each reported
        return f"{host.name}: {name}: {type(error).__name__}: {error}"
    return f"{host.name}: {name} holds other bytes than were written"


def host_main(mode: str, settings_json: str) -> None:
    """A host process: ``work`` until the deadline, or ``verify`` the names on stdin."""
    settings = json.loads(settings_json)
    if mode == "work":
        host = _Host(settings)
        host.work()
        result = host.result()
    else:
        result = _verify(settings, json.loads(sys.stdin.read()))
    Path(f"{mode}.json").write_text(json.dumps(result), encoding="utf-8")


# ---------------------------------------------------------------------------- the parent


@attrs.define
class FleetReport:
    """What a fleet run did, and what the checks found wrong (nothing, when it passes)."""

    counts: Counter[str] = attrs.field(factory=Counter)
    problems: list[str] = attrs.field(factory=list)

    def lines(self) -> Iterator[str]:
        """The counts, one per line, then the problems."""
        for key in sorted(self.counts):
            yield f"  {key:<50} {self.counts[key]:>9}"
        for problem in self.problems:
            yield f"  PROBLEM {problem}"


def _start(
    directory: Path, mode: str, settings: dict[str, Any], secrets: dict[str, str]
) -> subprocess.Popen[bytes]:
    directory.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | secrets
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(  # noqa: S603 - our own interpreter running this module
        [sys.executable, "-m", "tests.fleet", f"--{mode}", json.dumps(settings)],
        cwd=directory,
        env=env,
        stdin=subprocess.PIPE,
    )


def _run_hosts(
    base: Path,
    mode: str,
    every: list[dict[str, Any]],
    stdin: bytes,
    timeout: float,
    secrets: dict[str, str],
) -> list[dict[str, Any]]:
    processes = [_start(base / s["host"], mode, s, secrets) for s in every]
    try:
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(stdin)
            process.stdin.close()
        statuses = [process.wait(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    results = []
    for settings, status in zip(every, statuses, strict=True):
        path = base / settings["host"] / f"{mode}.json"
        if status or not path.exists():
            results.append({"host": settings["host"], "problems": [f"exited with {status}"]})
        else:
            results.append(json.loads(path.read_text(encoding="utf-8")))
    return results


@attrs.frozen
class SharedKms:
    """A Vault or OpenBao every host uses: its address, a token, and the Transit engine's
    mount and key (made by :func:`shared_transit_key`)."""

    address: str
    token: str = attrs.field(repr=False)
    mount: str
    key: str


def shared_transit_key(address: str, token: str) -> SharedKms:
    """A Transit engine of its own on the Vault at ``address``, with one key sealstore can
    use (derived), for a fleet in KMS mode; ``token`` may enable engines (a root token)."""
    import hvac  # noqa: PLC0415 - only the KMS mode needs it

    mount = f"fleet-{uuid.uuid4().hex[:8]}"
    hvac.Client(url=address, token=token, timeout=10).sys.enable_secrets_engine(
        "transit", path=mount
    )
    kms = VaultTransitKms.with_token(address, token, mount=mount)
    return SharedKms(address, token, mount, kms.create_key("fleet", principal="fleet-setup"))


def run_fleet(
    base: Path,
    endpoint: str,
    *,
    hosts: int = 4,
    seconds: float = 3.0,
    kms: SharedKms | None = None,
) -> FleetReport:
    """Run ``hosts`` hosts in directories under ``base`` against the SeaweedFS (or other
    S3-compatible server) at ``endpoint``, for about ``seconds``, then check everything.

    Managed mode (the default) shares one :class:`~sealstore.S3KeyringStore` in the bucket,
    its root key from ``SEALSTORE_ROOT_KEY`` in this process's environment; with ``kms``,
    the hosts use KMS keys from that shared Transit key instead.
    """
    bucket = f"fleet-{uuid.uuid4().hex[:12]}"
    _client({"endpoint": endpoint}).create_bucket(Bucket=bucket)
    deadline = time.time() + seconds
    shared: dict[str, Any] = {
        "hosts": hosts,
        "endpoint": endpoint,
        "bucket": bucket,
        "keyring": "keys/keyring",
        "deadline": deadline,
    }
    if kms is not None:
        shared["vault"] = {"address": kms.address, "mount": kms.mount, "key": kms.key}
    every = [{**shared, "host": f"h{number}", "seed": number} for number in range(hosts)]
    secrets = {} if kms is None else {TOKEN_VARIABLE: kms.token}
    report = FleetReport()
    started = time.monotonic()
    worked = _run_hosts(base, "work", every, b"", seconds + 600, secrets)
    report.counts["seconds of work (wall clock)"] = round(time.monotonic() - started)
    report.counts["hosts"] = hosts
    acknowledged: list[str] = []
    for result in worked:
        report.problems.extend(result["problems"])
        report.counts.update(result.get("counts", {}))
        report.counts["conflicts retried"] += result.get("conflicts", 0)
        acknowledged.extend(result.get("acknowledged", []))
    report.counts["objects acknowledged"] = len(acknowledged)
    names = json.dumps(acknowledged).encode()
    verified = _run_hosts(base, "verify", every, names, 600, secrets)
    for result in verified:
        report.problems.extend(result["problems"])
        report.counts["objects verified (each object, on each host)"] += result.get("verified", 0)
    if len(acknowledged) * hosts != report.counts["objects verified (each object, on each host)"]:
        report.problems.append("not every acknowledged object was verified on every host")
    if report.problems:
        return report
    logs = {s["host"]: sealstore.JsonlAuditLog(base / s["host"] / "audit.jsonl") for s in every}
    if kms is not None:
        puts = {r["host"]: len(r["acknowledged"]) for r in worked}
        report.problems.extend(check_kms_trails(kms, logs, puts, report.counts))
        return report
    keyring = sealstore.S3KeyringStore(
        _client(shared), bucket, "keys/keyring", sealstore.RootKey.from_env()
    ).load()
    assert keyring is not None
    report.problems.extend(
        check_trails(keyring, logs, {r["host"]: r["revisions"] for r in worked}, report.counts)
    )
    return report


def check_kms_trails(
    kms: SharedKms,
    logs: dict[str, sealstore.JsonlAuditLog],
    puts: dict[str, int],
    counts: Counter[str],
) -> list[str]:
    """What is wrong with the hosts' KMS audit trails, given the shared Transit key.

    In KMS mode the trails *agree* when every host's log verifies; every event names the
    shared key and the host as principal, with outcome success; each host recorded exactly
    one ``generate`` per object it acknowledged (per-object data keys; its puts all
    succeeded); and the ``rotate`` events of all hosts together number exactly the key's
    versions beyond the first (the KMS made one version per rotation, none lost).
    """
    import hvac  # noqa: PLC0415 - only the KMS mode needs it

    problems = []
    rotations = 0
    for host, log in logs.items():
        check = log.verify()
        if not check.ok:
            problems.append(f"{host}'s audit log does not verify: {check.problem}")
            continue
        events = list(log.events())
        counts["audit events"] += len(events)
        wrong = [
            e
            for e in events
            if e.key_id != kms.key or e.principal != host or e.outcome is not Outcome.SUCCESS
        ]
        if wrong:
            problems.append(f"{host} recorded {len(wrong)} events of another key, or failures")
        generated = sum(e.operation is Operation.GENERATE for e in events)
        if generated != puts[host]:
            problems.append(f"{host} recorded {generated} data keys for {puts[host]} objects")
        counts["KMS data keys generated"] += generated
        counts["KMS server-side rewraps"] += sum(e.operation is Operation.REWRAP for e in events)
        rotations += sum(e.operation is Operation.ROTATE for e in events)
    client = hvac.Client(url=kms.address, token=kms.token, timeout=10)
    latest = client.secrets.transit.read_key(kms.key, mount_point=kms.mount)["data"][
        "latest_version"
    ]
    counts["rotations saved"] = rotations
    counts["key versions in the KMS"] = latest
    if rotations != latest - 1:
        problems.append(f"the trails record {rotations} rotations; the key has {latest} versions")
    return problems


def check_trails(
    keyring: bytes,
    logs: dict[str, sealstore.JsonlAuditLog],
    revisions: dict[str, list[int]],
    counts: Counter[str],
) -> list[str]:
    """What is wrong with the hosts' audit trails and keyring writes, given the final keyring.

    The trails *agree* when:

    1. every host's log verifies (its hash chain is intact), and every event names the
       final keyring's id, except the two events of a rotation that was not saved (below):
       a host that lost the race to create the keyring names the keyring it would have made;
    2. a rotation is *saved* by a host when its log has a ``rotate`` success for a version
       and no later ``rotate`` failure for that version saying that another writer changed
       the keyring first. The versions saved by the hosts are disjoint (one winner per
       version) and together are exactly the versions of the final keyring;
    3. every version any host wrapped a data key under (``generate`` success) or unwrapped
       one with (``unwrap`` success) is one of them;
    4. no log records any other failure.

    Besides, every keyring revision from 1 to the final one was written by exactly one host
    (one winner per contested write, no write lost), as the hosts' witnesses noted.
    """
    ring = decode_keyring(keyring)
    problems: list[str] = []
    saved: dict[str, str] = {}
    for host, log in logs.items():
        check = log.verify()
        if not check.ok:
            problems.append(f"{host}'s audit log does not verify: {check.problem}")
            continue
        events = list(log.events())
        counts["audit events"] += len(events)
        problems.extend(_host_trail(host, events, ring.keyring_id, saved, counts))
    versions = {entry.id for entry in ring.versions}
    if set(saved) != versions:
        problems.append(
            f"the trails record {len(saved)} saved rotations, the keyring holds "
            f"{len(versions)} versions ({len(set(saved) ^ versions)} differ)"
        )
    counts["key versions in the final keyring"] = len(versions)
    for host, log in logs.items():
        used = {
            e.key_version or ""
            for e in log.events()
            if e.operation in {Operation.GENERATE, Operation.UNWRAP}
            and e.outcome is Outcome.SUCCESS
        }
        if unknown := used - versions:
            problems.append(f"{host} used versions no trail saved: {sorted(unknown)[:3]}")
    written = sorted(r for host_revisions in revisions.values() for r in host_revisions)
    counts["keyring revisions written"] = len(written)
    if written != list(range(1, ring.revision + 1)):
        problems.append(
            f"keyring revisions 1..{ring.revision} were not each written by exactly one host"
        )
    return problems


def _host_trail(
    host: str,
    events: list[AuditEvent],
    keyring_id: str,
    saved: dict[str, str],
    counts: Counter[str],
) -> list[str]:
    problems = []
    mine: set[str] = set()
    lost = {e.key_version for e in events if e.operation is Operation.ROTATE and _lost_race(e)}
    for event in events:
        not_saved = event.operation is Operation.ROTATE and event.key_version in lost
        if event.key_id != keyring_id and not not_saved:
            problems.append(f"{host} recorded an event for keyring {event.key_id!r}")
        version = event.key_version or ""
        if event.operation is Operation.ROTATE and event.outcome is Outcome.SUCCESS:
            mine.add(version)
        elif event.operation is Operation.ROTATE and _lost_race(event):
            mine.discard(version)
            counts["rotations made again after a lost race"] += 1
        elif event.outcome is not Outcome.SUCCESS:
            problems.append(f"{host} recorded a failure: {event.operation.value} {event.reason}")
    for version in mine:
        if version in saved:
            problems.append(f"{version} was saved by both {saved[version]} and {host}")
        saved[version] = host
    counts["rotations saved"] += len(mine)
    return problems


def _lost_race(event: AuditEvent) -> bool:
    return event.outcome is Outcome.FAILURE and event.reason.startswith(LOST_RACE)


def main(argv: list[str]) -> int:
    """Run a fleet on servers of its own, in each mode asked for; 0 when every check passed."""
    from tests.servers import running_openbao, running_seaweedfs  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m tests.fleet", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="per mode (default 60)")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--mode", choices=("managed", "kms", "both"), default="both")
    args = parser.parse_args(argv)
    os.environ["SEALSTORE_ROOT_KEY"] = sealstore.RootKey.generate()
    modes = ("managed", "kms") if args.mode == "both" else (args.mode,)
    passed = True
    with (
        tempfile.TemporaryDirectory(prefix="sealstore-fleet-") as temporary,
        contextlib.ExitStack() as servers,
    ):
        base = Path(temporary)
        for name in ("seaweedfs", "openbao", *modes):
            (base / name).mkdir()
        endpoint = servers.enter_context(running_seaweedfs(base / "seaweedfs"))
        for mode in modes:
            kms = None
            what = "managed keys in one S3KeyringStore"
            if mode == "kms":
                token = "fleet-" + uuid.uuid4().hex
                address = servers.enter_context(running_openbao(base / "openbao", token))
                kms = shared_transit_key(address, token)
                what = "KMS keys from one OpenBao Transit key"
            report = run_fleet(
                base / mode, endpoint, hosts=args.hosts, seconds=args.seconds, kms=kms
            )
            print(f"\n== fleet: {args.hosts} hosts, {what}")
            for line in report.lines():
                print(line)
            passed &= not report.problems
    print("\nfleet", "passed" if passed else "FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    if sys.argv[1:2] in (["--work"], ["--verify"]):
        host_main(sys.argv[1][2:], sys.argv[2])
    else:
        sys.exit(main(sys.argv[1:]))
