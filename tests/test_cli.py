"""The ``sealstore`` command, run as a program in subprocesses, as a user runs it."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

import sealstore
from sealstore import FileKeyringStore, ManagedKeys, RootKey, S3KeyringStore
from sealstore.backends import FileSystemBackend

Cli = Callable[..., subprocess.CompletedProcess[bytes]]

SECRET_LINE = b"the launch code is 0000\n"


def _environment(vault: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SEALSTORE_", "AWS_"))
    }
    env.update(SEALSTORE_VAULT=str(vault), SEALSTORE_PRINCIPAL="tester", **extra)
    return env


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    """Where the tests' vault lives (not yet created)."""
    return tmp_path / "vault"


@pytest.fixture
def cli(vault: Path, tmp_path: Path) -> Cli:
    """Runs ``python -m sealstore ARGS`` against ``vault``, in ``tmp_path``."""

    def run(
        *args: str,
        code: int = 0,
        stdin: bytes = b"",
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(  # noqa: S603 - our own interpreter and program
            [sys.executable, "-m", "sealstore", *args],
            input=stdin,
            capture_output=True,
            cwd=tmp_path,
            env=env or _environment(vault),
            check=False,
            timeout=120,
        )
        assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr)
        return done

    return run


@pytest.fixture
def ready(cli: Cli, tmp_path: Path) -> Path:
    """A vault holding ``data.txt`` (20,000 numbered lines and a secret line) as ``docs/data``."""
    cli("init")
    source = tmp_path / "data.txt"
    source.write_bytes(b"".join(b"line %06d\n" % i for i in range(20_000)) + SECRET_LINE)
    cli("put", str(source), "docs/data")
    return source


def _error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("sealstore: error: ")
    return lines[0]


def _stored_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_init_writes_a_private_root_key_and_refuses_to_overwrite(cli: Cli, vault: Path) -> None:
    """init makes the vault with a 0600 root key file; a second init changes nothing."""
    cli("init")
    key_file = vault / "root.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32
    config = json.loads((vault / "sealstore-vault.json").read_text())
    assert config["root_key"] == "root.key"
    assert key_file.read_text() not in (vault / "sealstore-vault.json").read_text()
    before = key_file.read_bytes()
    again = cli("init", code=1)
    assert "already a vault" in _error_line(again)
    assert key_file.read_bytes() == before


def test_init_takes_the_root_key_from_the_environment_and_never_writes_it(
    cli: Cli, vault: Path, tmp_path: Path
) -> None:
    """With SEALSTORE_ROOT_KEY, no key file is written and later use needs the variable."""
    root = sealstore.RootKey.generate()
    with_key = _environment(vault, SEALSTORE_ROOT_KEY=root)
    cli("init", env=with_key)
    assert not (vault / "root.key").exists()
    (tmp_path / "f").write_bytes(b"hello")
    cli("put", "f", env=with_key)
    assert cli("cat", "f", env=with_key).stdout == b"hello"
    missing = cli("cat", "f", code=5)
    assert "SEALSTORE_ROOT_KEY" in _error_line(missing)
    wrong = _environment(vault, SEALSTORE_ROOT_KEY=sealstore.RootKey.generate())
    cli("cat", "f", env=wrong, code=5)


def test_a_root_key_file_others_can_read_is_refused(cli: Cli, vault: Path) -> None:
    """A root key file with group or world bits is refused with the chmod that fixes it."""
    cli("init")
    (vault / "root.key").chmod(0o644)
    refused = cli("ls", code=5)
    assert "chmod 600" in _error_line(refused)


def test_put_get_cat_range_round_trip_and_nothing_in_clear(
    cli: Cli, ready: Path, vault: Path, tmp_path: Path
) -> None:
    """Objects come back whole or by range; the stored bytes never hold the plaintext."""
    assert SECRET_LINE not in _stored_bytes(vault / "objects")
    cli("get", "docs/data", "copy.txt")
    assert (tmp_path / "copy.txt").read_bytes() == ready.read_bytes()
    assert cli("cat", "docs/data").stdout == ready.read_bytes()
    assert cli("cat", "docs/data", "--range", "120000-120010").stdout == b"line 010000"
    tail = cli("get", "docs/data", "-", "--range", "240000-").stdout
    assert tail == SECRET_LINE
    quiet = cli("put", "-", "from-stdin", stdin=b"piped")
    assert quiet.stderr == b""  # no progress drawn when stderr is not a terminal
    assert cli("cat", "from-stdin").stdout == b"piped"
    bad = cli("cat", "docs/data", "--range", "9-3", code=2)
    assert "--range" in _error_line(bad)


def test_get_never_replaces_a_file_unless_told(cli: Cli, ready: Path, tmp_path: Path) -> None:
    """An existing destination is kept (exit 1) unless --force is given."""
    (tmp_path / "data").write_bytes(b"precious")
    refused = cli("get", "docs/data", code=1)
    assert "--force" in _error_line(refused)
    assert (tmp_path / "data").read_bytes() == b"precious"
    cli("get", "docs/data", "--force")
    assert (tmp_path / "data").read_bytes() == ready.read_bytes()


def test_a_tampered_object_fails_with_exit_4_and_leaves_no_file(
    cli: Cli, ready: Path, vault: Path, tmp_path: Path
) -> None:
    """get of an altered object exits 4, writes no file, and verify names the object."""
    stored = vault / "objects" / "docs" / "data"
    body = bytearray(stored.read_bytes())
    body[-100] ^= 1
    stored.write_bytes(bytes(body))
    failed = cli("get", "docs/data", "out.txt", code=4)
    assert "DecryptionError" in _error_line(failed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt", "vault"]
    checked = cli("verify", code=4)
    assert b"failed: docs/data: DecryptionError" in checked.stdout
    assert SECRET_LINE not in checked.stdout + checked.stderr


def test_ls_head_and_json_describe_objects_without_decrypting(cli: Cli, ready: Path) -> None:
    """ls and head show plaintext size, mode and key; --json gives the same as data."""
    listing = cli("ls").stdout.decode()
    size = ready.stat().st_size
    assert f"{size:,}" in listing
    assert "managed" in listing
    assert "docs/data" in listing
    rows = json.loads(cli("--json", "ls", "docs/").stdout)
    assert [(r["name"], r["size"], r["mode"]) for r in rows] == [("docs/data", size, "managed")]
    version = json.loads(cli("--json", "keys", "list").stdout)[0]["id"]
    assert rows[0]["key_version"] == version
    head = json.loads(cli("--json", "head", "docs/data").stdout)
    assert head["size"] == size
    assert head["encrypted"] is True
    assert cli("--version").stdout.decode().strip() == f"sealstore {sealstore.__version__}"


def test_errors_are_one_line_with_documented_codes(cli: Cli, ready: Path) -> None:
    """Unknown object: exit 3; usage error: exit 2; no vault: exit 1 saying how to make one."""
    assert "ObjectNotFoundError" in _error_line(cli("cat", "no/such", code=3))
    assert b"No such command" in cli("nonsense", code=2).stderr
    elsewhere = _environment(ready.parent / "nowhere")
    missing = cli("ls", code=1, env=elsewhere)
    assert "sealstore init" in _error_line(missing)


def test_cp_changes_mode_and_customer_objects_need_their_key(
    cli: Cli, ready: Path, tmp_path: Path
) -> None:
    """cp re-keys to KMS and customer modes; a customer object is refused without its key."""
    cli("kms", "create-key", "--alias", "alias/docs")
    cli("cp", "docs/data", "docs/kms", "--kms-key", "alias/docs")
    key_file = tmp_path / "customer.key"
    key_file.write_bytes(os.urandom(32))
    key_file.chmod(0o600)
    cli("cp", "docs/kms", "docs/mine", "--customer-key-file", str(key_file))
    modes = {r["name"]: r["mode"] for r in json.loads(cli("--json", "ls").stdout)}
    assert modes == {"docs/data": "managed", "docs/kms": "kms", "docs/mine": "customer"}
    assert cli("cat", "docs/kms").stdout == ready.read_bytes()
    refused = cli("cat", "docs/mine", code=5)
    assert "ProviderMismatchError" in _error_line(refused)
    mine = cli("cat", "docs/mine", "--customer-key-file", str(key_file)).stdout
    assert mine == ready.read_bytes()
    other = tmp_path / "other.key"
    other.write_text(base64.b64encode(os.urandom(32)).decode())
    other.chmod(0o600)
    cli("cat", "docs/mine", "--customer-key-file", str(other), code=4)
    cli("verify", code=4)
    cli("verify", "--customer-key-file", str(key_file))
    cli("rm", "docs/mine", "docs/kms")
    assert [r["name"] for r in json.loads(cli("--json", "ls").stdout)] == ["docs/data"]
    cli("rm", "docs/mine", code=3)


def test_rotate_rewraps_and_keys_retire_and_reactivate(cli: Cli, ready: Path) -> None:
    """rotate moves objects to a new version; a retired version refuses reads until reactivated."""
    first = json.loads(cli("--json", "keys", "list").stdout)[0]["id"]
    cli("put", str(ready), "old/one")
    report = json.loads(cli("--json", "rotate", "docs/").stdout)
    assert (report["total"], report["done"], report["failed"]) == (1, 1, [])
    assert report["key_version"] != first
    cli("keys", "retire", first)
    refused = cli("cat", "old/one", code=5)
    assert "KeyRetiredError" in _error_line(refused)
    assert cli("cat", "docs/data").stdout == ready.read_bytes()
    partial = json.loads(cli("--json", "rewrap", code=6).stdout)
    assert [f["name"] for f in partial["failed"]] == ["old/one"]
    cli("keys", "reactivate", first)
    assert json.loads(cli("--json", "rewrap").stdout)["done"] == 1
    states = [v["state"] for v in json.loads(cli("--json", "keys", "list").stdout)]
    assert states == ["active", "current"]
    cli("keys", "rotate")
    assert len(json.loads(cli("--json", "keys", "list").stdout)) == 3


def test_migrate_encrypts_plaintext_that_verify_reported(
    cli: Cli, ready: Path, vault: Path
) -> None:
    """A plaintext object fails verify (exit 4) until migrate encrypts it in place."""
    legacy = vault / "objects" / "legacy" / "old.csv"
    legacy.parent.mkdir()
    legacy.write_bytes(SECRET_LINE)
    assert b"plaintext" in cli("ls", "legacy/").stdout
    assert b"NotEncryptedError" in cli("verify", code=4).stdout
    report = json.loads(cli("--json", "migrate", "legacy/").stdout)
    assert (report["total"], report["done"]) == (1, 1)
    assert SECRET_LINE not in legacy.read_bytes()
    assert b"verified 2 of 2" in cli("verify").stdout
    assert cli("cat", "legacy/old.csv").stdout == SECRET_LINE


def test_audit_show_verify_export_and_a_broken_chain(cli: Cli, ready: Path, vault: Path) -> None:
    """The audit trail is shown, exported as JSON lines, and a edited log fails with exit 4."""
    shown = cli("audit", "show").stdout.decode()
    assert "rotate" in shown
    assert "generate" in shown
    exported = [json.loads(line) for line in cli("audit", "export").stdout.splitlines()]
    assert {e["operation"] for e in exported} >= {"rotate", "generate"}
    assert all(e["principal"] == "tester" for e in exported)
    assert b"hash chain intact" in cli("audit", "verify").stdout
    cli("audit", "verify", "--log", "kms")
    log = vault / "audit.jsonl"
    log.write_text(log.read_text().replace("tester", "mallory", 1))
    assert b"BROKEN" in cli("audit", "verify", code=4).stdout
    assert "audit verify" in _error_line(cli("audit", "export", code=4))


def test_kms_keys_aliases_states_and_policies(cli: Cli, ready: Path, tmp_path: Path) -> None:
    """kms commands administer LocalKms keys; a disabled key refuses writes with exit 5."""
    key = json.loads(cli("--json", "kms", "create-key", "--description", "d").stdout)["key_id"]
    cli("kms", "alias", "alias/reports", key)
    assert f"{key}  alias/reports" in cli("kms", "list-keys").stdout.decode()
    cli("kms", "disable", "alias/reports")
    refused = cli("put", str(ready), "r", "--kms-key", "alias/reports", code=5)
    assert "KeyDisabledError" in _error_line(refused)
    cli("kms", "enable", key)
    cli("put", str(ready), "r", "--kms-key", "alias/reports")
    policy = json.loads(cli("kms", "policy", "get", key).stdout)
    assert policy["decrypt"] == ["tester"]
    policy["decrypt"] = ["someone-else"]
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    cli("kms", "policy", "put", key, "policy.json")
    denied = cli("cat", "r", code=5)
    assert "AccessDeniedError" in _error_line(denied)
    scheduled = json.loads(cli("--json", "kms", "schedule-deletion", key, "--days", "7").stdout)
    assert scheduled["state"] == "pending-deletion"
    assert scheduled["deletion_date"] is not None
    cli("kms", "cancel-deletion", key)
    cli("kms", "alias", "alias/reports", "--delete")
    assert "alias/reports" not in cli("kms", "list-keys").stdout.decode()


def test_sync_up_and_down_copies_only_what_changed(cli: Cli, ready: Path, tmp_path: Path) -> None:
    """sync up encrypts a tree under a prefix, sync down restores it; unchanged files stay."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(5000))
    first = json.loads(cli("--json", "sync", "up", "tree", "backup/").stdout)
    assert sorted(first["uploaded"]) == ["backup/a.txt", "backup/sub/b.bin"]
    (tree / "a.txt").write_bytes(b"alpha, longer")
    second = json.loads(cli("--json", "sync", "up", "tree", "backup/").stdout)
    assert (second["uploaded"], second["unchanged"]) == (["backup/a.txt"], 1)
    cli("sync", "down", "backup/", "restored")
    restored = tmp_path / "restored"
    assert (restored / "a.txt").read_bytes() == b"alpha, longer"
    assert (restored / "sub" / "b.bin").read_bytes() == (tree / "sub" / "b.bin").read_bytes()
    again = json.loads(cli("--json", "sync", "down", "backup/", "restored").stdout)
    assert (again["downloaded"], again["unchanged"]) == ([], 2)


def test_an_s3_target_with_endpoint_url(cli: Cli, vault: Path, moto_server: str) -> None:
    """s3://bucket/prefix works through the standard AWS configuration and --endpoint-url."""
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="cli-bucket")
    env = _environment(
        vault,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        SEALSTORE_TARGET="s3://cli-bucket/team",
    )
    cli("init", env=env)
    endpoint = ("--endpoint-url", moto_server)
    cli(*endpoint, "put", "-", "reports/q3.csv", stdin=SECRET_LINE, env=env)
    stored = s3.get_object(Bucket="cli-bucket", Key="team/reports/q3.csv")
    assert SECRET_LINE not in stored["Body"].read()
    assert "sealstore" in stored["Metadata"]
    rows = json.loads(cli(*endpoint, "--json", "ls", env=env).stdout)
    assert [(r["name"], r["size"], r["placement"]) for r in rows] == [
        ("reports/q3.csv", len(SECRET_LINE), "detached")
    ]
    assert cli(*endpoint, "cat", "reports/q3.csv", env=env).stdout == SECRET_LINE
    cli(*endpoint, "verify", env=env)
    no_bucket = cli(*endpoint, "--target", "s3://", "ls", env=env, code=1)
    assert "names no bucket" in _error_line(no_bucket)


def test_the_command_copies_the_vault_keyring_to_a_bucket(
    cli: Cli,
    vault: Path,
    tmp_path: Path,
    seaweedfs_server: str,
    seaweedfs_bucket: tuple[Any, str],
) -> None:
    """``keys migrate s3://bucket/key`` copies the vault's keyring there (under the vault's
    root key); run again it copies nothing; a bad destination is a usage error."""
    client, bucket = seaweedfs_bucket
    env = _environment(
        vault,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    cli("init", env=env)
    (tmp_path / "f").write_bytes(b"hello fleet")
    cli("put", "f", env=env)
    cli("keys", "rotate", env=env)
    destination = f"s3://{bucket}/fleet/keyring-{uuid.uuid4().hex[:8]}"
    endpoint = ("--endpoint-url", seaweedfs_server)
    first = json.loads(cli(*endpoint, "--json", "keys", "migrate", destination, env=env).stdout)
    assert first == {"destination": destination, "copied": True, "versions": 2}
    again = cli(*endpoint, "keys", "migrate", destination, env=env).stdout.decode()
    assert again == f"the keyring is already at {destination} (2 version(s))\n"
    root = RootKey.from_file(vault / "root.key")
    shared = ManagedKeys(
        S3KeyringStore(client, bucket, destination.split("/", 3)[3], root),
    )
    vault_keys = ManagedKeys(FileKeyringStore(vault / "keyring", root))
    assert [v.id for v in shared.versions()] == [v.id for v in vault_keys.versions()]
    store = sealstore.EncryptedStore(FileSystemBackend(vault / "objects"), shared)
    assert store.get("f") == b"hello fleet"
    for bad in ("bucket/key", f"s3://{bucket}", f"s3://{bucket}/dir/"):
        done = cli(*endpoint, "keys", "migrate", bad, env=env, code=2)
        assert "is not s3://bucket/key" in _error_line(done)


def test_importing_sealstore_does_not_import_the_command_line_dependencies() -> None:
    """import sealstore loads neither typer, click nor rich."""
    probe = (
        "import sys, sealstore, sealstore.__main__; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click', 'rich')))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and program
        [sys.executable, "-c", probe], capture_output=True, check=True
    )
    assert done.stdout.strip() == b"[]"


def test_demo_runs_without_the_cli_extra(tmp_path: Path) -> None:
    """Without typer, python -m sealstore demo still runs; other commands say what to install."""
    script = (
        "import runpy, sys; sys.modules['typer'] = None; "
        "sys.argv = ['sealstore', *sys.argv[1:]]; "
        "runpy.run_module('sealstore', run_name='__main__')"
    )
    demo = subprocess.run(  # noqa: S603 - our own interpreter and program
        [sys.executable, "-c", script, "demo"], capture_output=True, cwd=tmp_path, check=False
    )
    assert demo.returncode == 0, demo.stderr
    assert b"hash chain intact" in demo.stdout
    other = subprocess.run(  # noqa: S603 - our own interpreter and program
        [sys.executable, "-c", script, "ls"], capture_output=True, cwd=tmp_path, check=False
    )
    assert other.returncode == 2
    assert b"pip install 'sealstore[cli]'" in other.stderr


def test_context_is_bound_and_mistakes_get_one_line_errors(
    cli: Cli, ready: Path, tmp_path: Path
) -> None:
    """A read with another context exits 4; malformed arguments exit 2; bad files exit 1."""
    cli("put", str(ready), "ctx", "--context", "team=a")
    assert "ContextMismatchError" in _error_line(cli("cat", "ctx", "--context", "team=b", code=4))
    assert cli("cat", "ctx", "--context", "team=a").stdout == ready.read_bytes()
    assert "KEY=VALUE" in _error_line(cli("put", str(ready), "--context", "team", code=2))
    assert "standard input" in _error_line(cli("put", "-", code=2))
    assert "--range" in _error_line(cli("cat", "ctx", "--range", "a-b", code=2))
    both = cli("put", str(ready), "--kms-key", "k", "--customer-key-file", "k", code=2)
    assert "not both" in _error_line(both)
    assert "cannot read" in _error_line(cli("put", "missing.txt", code=1))
    assert "cannot read the key file" in _error_line(
        cli("cat", "ctx", "--customer-key-file", "absent.key", code=1)
    )
    short = tmp_path / "short.key"
    short.write_bytes(b"not a key")
    short.chmod(0o600)
    assert "32 bytes" in _error_line(
        cli("put", str(ready), "--customer-key-file", "short.key", code=1)
    )
    assert "not a directory" in _error_line(cli("sync", "up", "data.txt", code=1))
    assert "unsupported target" in _error_line(cli("--target", "ftp://host/x", "ls", code=1))
    profile = cli(
        "--target",
        "s3://bucket",
        "--profile",
        "no-such-profile",
        "ls",
        code=1,
        env=_environment(ready.parent / "vault", AWS_CONFIG_FILE=str(tmp_path / "none")),
    )
    assert "cannot configure the S3 client" in _error_line(profile)


def test_admin_commands_in_every_form(cli: Cli, ready: Path, tmp_path: Path) -> None:
    """rotate --no-rewrap, describe-key, audit export to a file and bad policies all behave."""
    version = json.loads(cli("--json", "rotate", "--no-rewrap").stdout)["key_version"]
    assert json.loads(cli("--json", "keys", "list").stdout)[-1]["id"] == version
    assert json.loads(cli("--json", "head", "docs/data").stdout)["key_version"] != version
    key = json.loads(cli("--json", "kms", "create-key", "--alias", "alias/x").stdout)["key_id"]
    described = cli("kms", "describe-key", "alias/x").stdout.decode()
    assert key in described
    assert "enabled" in described
    cli("audit", "export", "--log", "kms", "--output", "kms.jsonl")
    exported = (tmp_path / "kms.jsonl").read_text().splitlines()
    assert "create-key" in [json.loads(line)["operation"] for line in exported]
    assert "cannot read" in _error_line(cli("kms", "policy", "put", key, "absent.json", code=1))
    (tmp_path / "bad.json").write_text("{not json")
    assert "not JSON" in _error_line(cli("kms", "policy", "put", key, "bad.json", code=2))
    (tmp_path / "odd.json").write_text(json.dumps({"no-such-operation": ["x"]}))
    assert "not a key policy" in _error_line(cli("kms", "policy", "put", key, "odd.json", code=2))
    script = Path(sys.executable).with_name("sealstore")
    done = subprocess.run(  # noqa: S603 - the console script installed with the package
        [str(script), "--version"], capture_output=True, check=True
    )
    assert done.stdout.decode().strip() == f"sealstore {sealstore.__version__}"
