"""The ``sealstore`` command: a thin door that turns arguments into store calls and back.

Objects live in a *target* (the vault's own ``objects`` directory, another directory, or
``s3://bucket/prefix``); keys come from a local *vault* (see :mod:`sealstore.cli.vault`).
"""

from __future__ import annotations

import base64
import binascii
import enum
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, BinaryIO, NoReturn

import attrs
import typer
from rich.console import Console

import sealstore
from sealstore.cli import exits
from sealstore.cli.progress import CountingReader, CountingWriter, Discard, Reporter
from sealstore.cli.targets import S3Options, open_backend, s3_client
from sealstore.cli.vault import Vault, create, open_vault
from sealstore.errors import InvalidKeyError, ObjectNotFoundError, SealstoreError

app = typer.Typer(
    name="sealstore",
    help="Encrypted objects in a directory or an S3 bucket, with keys kept in a local vault.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
keys_app = typer.Typer(
    help="The vault's managed keyring: list, rotate, retire, reactivate, migrate."
)
audit_app = typer.Typer(help="The audit trails: show, verify, export as JSON lines.")
kms_app = typer.Typer(help="The vault's LocalKms: keys, aliases, states and policies.")
policy_app = typer.Typer(help="A LocalKms key's policy, as JSON.")
sync_app = typer.Typer(help="Copy a directory to a prefix (up) or a prefix to a directory (down).")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(kms_app, name="kms")
kms_app.add_typer(policy_app, name="policy")
app.add_typer(sync_app, name="sync")

_COPY_BUFFER = 1 << 20
DEFAULT_VAULT = Path.home() / ".sealstore"


class CommandError(Exception):
    """A problem with what the command was asked to do, outside the library."""

    def __init__(self, message: str, code: int = exits.ERROR) -> None:
        super().__init__(message)
        self.code = code


@attrs.define
class Invocation:
    """The global options, and what they open (once)."""

    vault_path: Path
    target: str | None
    s3: S3Options
    principal: str
    json: bool
    reporter: Reporter
    _vault: Vault | None = None

    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = open_vault(self.vault_path, self.principal)
        return self._vault

    def kms_reader(self, kms: sealstore.LocalKms, key: str | None = None) -> sealstore.KmsKeys:
        """KMS-mode keys over the vault's LocalKms that read objects under any of its keys."""
        trusted = frozenset(entry.key_id for entry in kms.list_keys())
        return sealstore.KmsKeys(kms, key_id=key, principal=self.principal, trusted_key_ids=trusted)

    def store(self, *, allow_plaintext_reads: bool = False) -> sealstore.EncryptedStore:
        vault = self.vault()
        backend = open_backend(self.target or str(vault.objects), self.s3)
        return sealstore.EncryptedStore(
            backend,
            vault.managed(),
            readers=[self.kms_reader(vault.kms())],
            allow_plaintext_reads=allow_plaintext_reads,
        )

    def write_keys(
        self, kms_key: str | None, customer_key: Path | None
    ) -> sealstore.KeyProvider | None:
        """The provider a write asked for, or ``None`` for the vault's managed keys."""
        if kms_key is not None and customer_key is not None:
            raise CommandError("give --kms-key or --customer-key-file, not both", exits.USAGE)
        if kms_key is not None:
            return self.kms_reader(self.vault().kms(), kms_key)
        return self.customer_keys(customer_key)

    def customer_keys(self, path: Path | None) -> sealstore.CustomerKeys | None:
        if path is None:
            return None
        vault = self.vault()
        return sealstore.CustomerKeys(
            _read_key_file(path), audit=vault.audit_log, principal=self.principal
        )

    def emit(self, data: object, lines: Iterator[str] | Sequence[str]) -> None:
        """Print ``data`` as JSON with ``--json``, else the human ``lines``."""
        if self.json:
            sys.stdout.write(json.dumps(data, indent=None, default=str) + "\n")
        else:
            for line in lines:
                sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _invocation(ctx: typer.Context) -> Invocation:
    invocation = ctx.find_object(Invocation)
    assert invocation is not None, "the main callback sets it"
    return invocation


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"sealstore {sealstore.__version__}\n")
        raise typer.Exit()


def _default_principal() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - a user without a name
        return "sealstore"


@app.callback()
def main_options(
    ctx: typer.Context,
    vault: Annotated[
        Path,
        typer.Option(envvar="SEALSTORE_VAULT", help="The vault directory (keys and settings)."),
    ] = DEFAULT_VAULT,
    target: Annotated[
        str | None,
        typer.Option(
            envvar="SEALSTORE_TARGET",
            help="Where objects live: a directory or s3://bucket/prefix "
            "[default: the vault's objects directory].",
            show_default=False,
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3 endpoint (S3-compatible stores).")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile for s3:// targets.")] = None,
    region: Annotated[str | None, typer.Option(help="AWS region for s3:// targets.")] = None,
    principal: Annotated[
        str | None,
        typer.Option(
            envvar="SEALSTORE_PRINCIPAL",
            help="Who acts, in audit records and KMS policies [default: the user name].",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable output on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Encrypted objects in a directory or an S3 bucket, with keys kept in a local vault."""
    console = Console(stderr=True)
    ctx.obj = Invocation(
        vault_path=vault,
        target=target,
        s3=S3Options(endpoint_url=endpoint_url, profile=profile, region=region),
        principal=principal or _default_principal(),
        json=json_output,
        reporter=Reporter(console, enabled=console.is_terminal and not quiet and not json_output),
    )


# ---------------------------------------------------------------------------------- options

KmsKeyOption = Annotated[
    str | None,
    typer.Option("--kms-key", help="Encrypt under this LocalKms key (id or alias/...)."),
]
CustomerKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--customer-key-file",
        help="A file of 32 bytes (or their base64), mode 0600: the object's customer key.",
    ),
]
ContextOption = Annotated[
    list[str] | None,
    typer.Option(
        "--context",
        help="KEY=VALUE of the encryption context (repeatable); values are stored in clear.",
    ),
]
PrefixArgument = Annotated[str, typer.Argument(help="Only objects whose names start so.")]


def _context(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--context takes KEY=VALUE, not {pair!r}", exits.USAGE)
        context[key] = value
    return context


def _read_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read the key file {path}: {error.strerror}") from None
    if mode & 0o077:
        raise CommandError(
            f"the key file {path} is readable by others (mode {mode & 0o777:o}): "
            f"run 'chmod 600 {path}'",
            exits.REFUSED,
        )
    if len(data) == 32:
        return data
    try:
        key = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise InvalidKeyError(f"the key file {path} must hold 32 bytes or their base64 encoding")
    return key


def _size(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _mode(head: sealstore.ObjectHead) -> str:
    return head.mode.name.lower() if head.mode else "plaintext"


def _key(head: sealstore.ObjectHead) -> str:
    if not head.encrypted:
        return "-"
    return head.key_version or head.key_id or "customer key (not stored)"


def _head_data(head: sealstore.ObjectHead) -> dict[str, Any]:
    return {
        "name": head.name,
        "encrypted": head.encrypted,
        "mode": head.mode.name.lower() if head.mode else None,
        "size": head.plaintext_size,
        "stored_size": head.stored_size,
        "key_id": head.key_id,
        "key_version": head.key_version,
        "context": dict(head.context),
        "placement": head.placement,
        "etag": head.etag,
        "problem": head.problem,
    }


# ---------------------------------------------------------------------------------- vault


@app.command()
def init(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Argument(help="Where to make the vault [default: --vault].", show_default=False),
    ] = None,
) -> None:
    """Make a vault: a managed keyring, a LocalKms and an object directory, under one root key.

    The root key comes from SEALSTORE_ROOT_KEY when it is set (and is never written);
    otherwise a new one is written to root.key with mode 0600. Back it up apart from the vault.
    """
    invocation = _invocation(ctx)
    path = directory or invocation.vault_path
    vault, wrote_key = create(path, invocation.principal)
    invocation.emit(
        {
            "vault": str(path),
            "root_key": str(path / "root.key") if wrote_key else "SEALSTORE_ROOT_KEY",
            "objects": str(vault.objects),
        },
        [
            f"vault created at {path}",
            f"  root key: {path / 'root.key' if wrote_key else 'from SEALSTORE_ROOT_KEY'}"
            " (back it up apart from the vault: without it nothing can be read)",
            f"  objects:  {vault.objects}",
        ],
    )


# ---------------------------------------------------------------------------------- objects


@contextmanager
def _input(source: str) -> Iterator[tuple[BinaryIO, int | None]]:
    if source == "-":
        yield sys.stdin.buffer, None
        return
    try:
        file = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as error:
        raise CommandError(f"cannot read {source}: {error.strerror}") from None
    with file:
        yield file, os.fstat(file.fileno()).st_size


@app.command()
def put(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A local file, or - for standard input.")],
    name: Annotated[
        str | None,
        typer.Argument(help="The object's name [default: the file's name].", show_default=False),
    ] = None,
    kms_key: KmsKeyOption = None,
    customer_key_file: CustomerKeyOption = None,
    context: ContextOption = None,
) -> None:
    """Encrypt a file into an object (managed keys unless told otherwise)."""
    invocation = _invocation(ctx)
    if name is None:
        if source == "-":
            raise CommandError("name the object when reading standard input", exits.USAGE)
        name = Path(source).name
    store = invocation.store()
    keys = invocation.write_keys(kms_key, customer_key_file)
    with _input(source) as (file, total), invocation.reporter.transfer(name, total) as advance:
        head = store.put(name, CountingReader(file, advance), keys=keys, context=_context(context))
    invocation.emit(
        _head_data(head), [f"put {name}: {_size(head.plaintext_size)} bytes, {_mode(head)}"]
    )


def _parse_range(text: str) -> tuple[int, int | None]:
    start, sep, end = text.partition("-")
    try:
        first = int(start)
        last = int(end) if end else None
    except ValueError:
        first, last = -1, None
    if not sep or first < 0 or (last is not None and last < first):
        raise CommandError(
            f"--range takes FIRST-LAST or FIRST- (byte offsets, inclusive), not {text!r}",
            exits.USAGE,
        )
    return first, last


RangeOption = Annotated[
    str | None,
    typer.Option(help="Only bytes FIRST-LAST (inclusive) or FIRST- of the plaintext."),
]


def _read_out(
    invocation: Invocation,
    store: sealstore.EncryptedStore,
    name: str,
    dst: BinaryIO,
    byte_range: str | None,
    keys: sealstore.CustomerKeys | None,
    context: dict[str, str] | None,
) -> int:
    if byte_range is None:
        total = store.head(name).plaintext_size
        with invocation.reporter.transfer(name, total) as advance:
            return store.download(name, CountingWriter(dst, advance), keys=keys, context=context)
    first, last = _parse_range(byte_range)
    with store.open(name, keys=keys, context=context) as reader:
        end = reader.size if last is None else min(last + 1, reader.size)
        reader.seek(first)
        remaining = max(0, end - first)
        with invocation.reporter.transfer(name, remaining) as advance:
            written = 0
            while remaining:
                data = reader.read(min(remaining, _COPY_BUFFER))
                if not data:
                    break
                dst.write(data)
                advance(len(data))
                remaining -= len(data)
                written += len(data)
    return written


@app.command()
def get(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The object.")],
    destination: Annotated[
        str | None,
        typer.Argument(
            help="A local file, or - for standard output [default: the object's base name].",
            show_default=False,
        ),
    ] = None,
    byte_range: Annotated[
        str | None,
        typer.Option("--range", help="Only bytes FIRST-LAST (inclusive) or FIRST-."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    customer_key_file: CustomerKeyOption = None,
    context: ContextOption = None,
) -> None:
    """Decrypt an object into a file; the file appears only once all of it is authenticated."""
    invocation = _invocation(ctx)
    store = invocation.store()
    keys = invocation.customer_keys(customer_key_file)
    expected = _context(context)
    if destination == "-":
        _read_out(invocation, store, name, sys.stdout.buffer, byte_range, keys, expected)
        return
    target = Path(destination or name.rsplit("/", 1)[-1])
    if target.exists() and not force:
        raise CommandError(f"{target} exists: pass --force to replace it, or name another file")
    partial = target.with_name(f".{target.name}.sealstore-partial")
    try:
        with open(partial, "wb") as file:
            size = _read_out(invocation, store, name, file, byte_range, keys, expected)
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    invocation.emit(
        {"name": name, "file": str(target), "size": size}, [f"got {name}: {size:,} bytes"]
    )


@app.command()
def cat(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The object.")],
    byte_range: Annotated[
        str | None,
        typer.Option("--range", help="Only bytes FIRST-LAST (inclusive) or FIRST-."),
    ] = None,
    customer_key_file: CustomerKeyOption = None,
    context: ContextOption = None,
) -> None:
    """Decrypt an object to standard output."""
    invocation = _invocation(ctx)
    store = invocation.store()
    keys = invocation.customer_keys(customer_key_file)
    quiet = attrs.evolve(invocation, reporter=Reporter(Console(stderr=True), enabled=False))
    _read_out(quiet, store, name, sys.stdout.buffer, byte_range, keys, _context(context))
    sys.stdout.buffer.flush()


@app.command("ls")
def list_objects(
    ctx: typer.Context,
    prefix: PrefixArgument = "",
) -> None:
    """List objects: plaintext size, mode and key, from their headers (nothing decrypted)."""
    invocation = _invocation(ctx)
    heads = list(invocation.store().list(prefix, details=True))
    invocation.emit(
        [_head_data(head) for head in heads],
        [
            f"{_size(head.plaintext_size):>14}  {_mode(head):<9}  {_key(head):<36}  {head.name}"
            + (f"  ({head.problem})" if head.problem else "")
            for head in heads
        ],
    )


@app.command()
def head(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The object.")],
    customer_key_file: Annotated[
        Path | None,
        typer.Option("--customer-key-file", help="Also prove this is the object's customer key."),
    ] = None,
) -> None:
    """Show an object's header fields without decrypting its body."""
    invocation = _invocation(ctx)
    store = invocation.store()
    found = store.head(name, keys=invocation.customer_keys(customer_key_file))
    data = _head_data(found)
    invocation.emit(
        data,
        [f"{field + ':':<13} {'-' if value is None else value}" for field, value in data.items()],
    )


@app.command()
def rm(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="The objects to remove.")],
) -> None:
    """Remove objects."""
    invocation = _invocation(ctx)
    store = invocation.store()
    for name in names:
        store.head(name)  # a name that does not exist is an error, not a silent success
        store.delete(name)
    invocation.emit({"removed": names}, [f"removed {name}" for name in names])


@app.command()
def cp(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The object to copy.")],
    destination: Annotated[str, typer.Argument(help="The new object's name.")],
    kms_key: KmsKeyOption = None,
    customer_key_file: CustomerKeyOption = None,
    source_customer_key_file: Annotated[
        Path | None,
        typer.Option("--source-customer-key-file", help="The source's customer key."),
    ] = None,
) -> None:
    """Copy an object, re-encrypted under new keys (managed unless told otherwise)."""
    invocation = _invocation(ctx)
    store = invocation.store()
    keys = invocation.write_keys(kms_key, customer_key_file)
    source_keys = invocation.customer_keys(source_customer_key_file)
    copied = store.copy(source, destination, keys=keys, source_keys=source_keys)
    invocation.emit(
        _head_data(copied),
        [
            f"copied {source} to {destination}: {_size(copied.plaintext_size)} bytes, "
            f"{_mode(copied)}"
        ],
    )


# ---------------------------------------------------------------------------------- bulk


def _report(
    invocation: Invocation, verb: str, report: sealstore.BulkReport, extra: Mapping[str, Any]
) -> None:
    data = {
        **extra,
        "total": report.total,
        "done": report.done,
        "current": report.current,
        "skipped": report.skipped,
        "failed": [attrs.asdict(failure) for failure in report.failed],
    }
    lines = [
        f"{verb} {report.done} of {report.total} object(s); {report.current} already current, "
        f"{report.skipped} skipped, {len(report.failed)} failed"
    ]
    lines += [f"  failed: {f.name}: {f.error}: {f.message}" for f in report.failed]
    invocation.emit(data, lines)
    if not report.ok:
        raise typer.Exit(exits.PARTIAL)


@app.command()
def rotate(
    ctx: typer.Context,
    prefix: PrefixArgument = "",
    rewrap: Annotated[
        bool, typer.Option(help="Rewrap the objects under PREFIX to the new key.")
    ] = True,
) -> None:
    """Rotate the managed master key, then rewrap every object under PREFIX to it."""
    invocation = _invocation(ctx)
    managed = invocation.vault().managed()
    version = managed.rotate()
    if not rewrap:
        invocation.emit({"key_version": version.id}, [f"new managed key version {version.id}"])
        return
    store = invocation.store()
    with invocation.reporter.objects("rewrap") as progress:
        report = store.rewrap_all(prefix, progress=progress)
    _report(
        invocation, f"new key version {version.id}; rewrapped", report, {"key_version": version.id}
    )


@app.command("rewrap")
def rewrap_command(
    ctx: typer.Context,
    prefix: PrefixArgument = "",
    force: Annotated[
        bool, typer.Option(help="Rewrap objects already under the current key.")
    ] = False,
    kms_key: Annotated[
        str | None,
        typer.Option("--kms-key", help="Move KMS-mode objects to this LocalKms key."),
    ] = None,
) -> None:
    """Rewrap every object's data key under the current master key (bodies untouched)."""
    invocation = _invocation(ctx)
    store = invocation.store()
    keys = None if kms_key is None else invocation.kms_reader(invocation.vault().kms(), kms_key)
    with invocation.reporter.objects("rewrap") as progress:
        report = store.rewrap_all(prefix, keys=keys, force=force, progress=progress)
    _report(invocation, "rewrapped", report, {})


@app.command()
def migrate(
    ctx: typer.Context,
    prefix: PrefixArgument = "",
    include_ambiguous: Annotated[
        bool,
        typer.Option(help="Also encrypt plaintext that happens to start like a header."),
    ] = False,
) -> None:
    """Encrypt, in place, the plaintext objects under PREFIX (written before encryption)."""
    invocation = _invocation(ctx)
    store = invocation.store()
    with invocation.reporter.objects("encrypt") as progress:
        report = store.encrypt_existing(
            prefix, include_ambiguous=include_ambiguous, progress=progress
        )
    _report(invocation, "encrypted", report, {})


@app.command()
def verify(
    ctx: typer.Context,
    prefix: PrefixArgument = "",
    customer_key_file: Annotated[
        Path | None,
        typer.Option("--customer-key-file", help="The customer key of customer-key objects."),
    ] = None,
) -> None:
    """Authenticate every object under PREFIX; no plaintext is written anywhere.

    Exits 4 if any object is not encrypted, cannot be read with the keys at hand, or fails
    authentication.
    """
    invocation = _invocation(ctx)
    store = invocation.store()
    keys = invocation.customer_keys(customer_key_file)
    heads = list(store.list(prefix, details=True))
    good: list[str] = []
    bad: list[dict[str, str]] = []
    with invocation.reporter.objects("verify") as progress:
        for done, found in enumerate(heads, 1):
            problem = _verify_one(store, found, keys)
            if problem is None:
                good.append(found.name)
            else:
                bad.append({"name": found.name, "error": problem[0], "message": problem[1]})
            progress(done, len(heads), found.name)
    lines = [f"verified {len(good)} of {len(heads)} object(s); {len(bad)} failed"]
    lines += [f"  failed: {b['name']}: {b['error']}: {b['message']}" for b in bad]
    invocation.emit({"total": len(heads), "verified": len(good), "failed": bad}, lines)
    if bad:
        raise typer.Exit(exits.INTEGRITY)


def _verify_one(
    store: sealstore.EncryptedStore,
    found: sealstore.ObjectHead,
    keys: sealstore.CustomerKeys | None,
) -> tuple[str, str] | None:
    if not found.encrypted:
        return "NotEncryptedError", found.problem or "the object is not encrypted"
    customer = found.mode is sealstore.Mode.CUSTOMER
    try:
        store.download(found.name, Discard(lambda _n: None), keys=keys if customer else None)
    except ObjectNotFoundError:
        return "ObjectNotFoundError", "deleted since it was listed"
    except SealstoreError as error:
        return type(error).__name__, str(error)
    return None


# ---------------------------------------------------------------------------------- sync


@sync_app.command("up")
def sync_up(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="The local directory.")],
    prefix: Annotated[str, typer.Argument(help="The prefix to copy it to (e.g. photos/).")] = "",
    all_files: Annotated[
        bool, typer.Option("--all", help="Upload every file, not only new or resized ones.")
    ] = False,
) -> None:
    """Encrypt the files of DIRECTORY that are missing (or of another size) under PREFIX."""
    invocation = _invocation(ctx)
    if not directory.is_dir():
        raise CommandError(f"{directory} is not a directory")
    store = invocation.store()
    have = {head.name: head.plaintext_size for head in store.list(prefix)}
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink())
    todo = [
        (path, prefix + path.relative_to(directory).as_posix())
        for path in files
        if all_files
        or have.get(prefix + path.relative_to(directory).as_posix(), -1) != path.stat().st_size
    ]
    total = sum(path.stat().st_size for path, _ in todo)
    with invocation.reporter.transfer(f"sync up ({len(todo)} files)", total) as advance:
        for path, name in todo:
            with open(path, "rb") as file:
                store.put(name, CountingReader(file, advance))
    invocation.emit(
        {"uploaded": [name for _, name in todo], "unchanged": len(files) - len(todo)},
        [f"uploaded {len(todo)} file(s), {len(files) - len(todo)} unchanged"],
    )


@sync_app.command("down")
def sync_down(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="The prefix to copy from.")],
    directory: Annotated[Path, typer.Argument(help="The local directory (created).")],
    all_files: Annotated[
        bool, typer.Option("--all", help="Download every object, not only new or resized ones.")
    ] = False,
) -> None:
    """Decrypt the objects under PREFIX that are missing (or of another size) in DIRECTORY."""
    invocation = _invocation(ctx)
    store = invocation.store()
    heads = [head for head in store.list(prefix, details=True) if head.encrypted]
    todo: list[tuple[sealstore.ObjectHead, Path]] = []
    root = directory.resolve()
    for found in heads:
        path = (directory / found.name[len(prefix) :]).resolve()
        if root not in path.parents:
            raise CommandError(f"{found.name} would land outside {directory}; not syncing")
        if all_files or not path.is_file() or path.stat().st_size != found.plaintext_size:
            todo.append((found, path))
    total = sum(found.plaintext_size or 0 for found, _ in todo)
    with invocation.reporter.transfer(f"sync down ({len(todo)} objects)", total) as advance:
        for found, path in todo:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.sealstore-partial")
            try:
                with open(partial, "wb") as file:
                    store.download(found.name, CountingWriter(file, advance))
                partial.replace(path)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
    invocation.emit(
        {"downloaded": [found.name for found, _ in todo], "unchanged": len(heads) - len(todo)},
        [f"downloaded {len(todo)} object(s), {len(heads) - len(todo)} unchanged"],
    )


# ---------------------------------------------------------------------------------- keys


def _version_data(version: sealstore.KeyVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "created": version.created.isoformat(),
        "state": version.state.value,
        "reserved_wraps": version.reserved_wraps,
    }


def _version_line(version: sealstore.KeyVersion) -> str:
    return (
        f"{version.id}  {version.state.value:<8}  {version.created:%Y-%m-%d %H:%M:%S}  "
        f"{version.reserved_wraps:,} wraps"
    )


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """The keyring's versions, oldest first."""
    invocation = _invocation(ctx)
    versions = invocation.vault().managed().versions()
    invocation.emit([_version_data(v) for v in versions], [_version_line(v) for v in versions])


@keys_app.command("rotate")
def keys_rotate(ctx: typer.Context) -> None:
    """Add a new current version (objects keep their old one until rewrapped)."""
    _keys_change(ctx, lambda managed: managed.rotate(), "rotated; current")


@keys_app.command("retire")
def keys_retire(
    ctx: typer.Context, version: Annotated[str, typer.Argument(help="The version id.")]
) -> None:
    """Stop a version from decrypting (rewrap its objects first)."""
    _keys_change(ctx, lambda managed: managed.retire(version), "retired")


@keys_app.command("reactivate")
def keys_reactivate(
    ctx: typer.Context, version: Annotated[str, typer.Argument(help="The version id.")]
) -> None:
    """Let a retired version decrypt again."""
    _keys_change(ctx, lambda managed: managed.reactivate(version), "reactivated")


@keys_app.command("migrate")
def keys_migrate(
    ctx: typer.Context,
    destination: Annotated[
        str, typer.Argument(help="s3://bucket/key of the shared keyring object to create.")
    ],
) -> None:
    """Copy the vault's keyring into a bucket, for hosts sharing it (overwrites nothing)."""
    invocation = _invocation(ctx)
    bucket, _, key = destination.removeprefix("s3://").partition("/")
    if not destination.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise CommandError(f"{destination} is not s3://bucket/key", exits.USAGE)
    vault = invocation.vault()
    target = sealstore.S3KeyringStore(
        s3_client(invocation.s3), bucket, key, vault.root_key, create=True
    )
    copied = sealstore.keys.managed.migrate_keyring(vault.managed().store, target)
    versions = sealstore.ManagedKeys(target).versions()
    verb = "copied the keyring to" if copied else "the keyring is already at"
    invocation.emit(
        {"destination": destination, "copied": copied, "versions": len(versions)},
        [f"{verb} {destination} ({len(versions)} version(s))"],
    )


def _keys_change(
    ctx: typer.Context,
    change: Callable[[sealstore.ManagedKeys], sealstore.KeyVersion],
    verb: str,
) -> None:
    invocation = _invocation(ctx)
    version = change(invocation.vault().managed())
    invocation.emit(_version_data(version), [f"{verb} {version.id}"])


# ---------------------------------------------------------------------------------- audit


class Trail(str, enum.Enum):
    """The vault's two audit trails."""

    KEYS = "keys"
    KMS = "kms"


LogOption = Annotated[
    Trail,
    typer.Option(
        "--log", help="Which trail: keys (managed and customer keys) or kms (the LocalKms)."
    ),
]


def _log(invocation: Invocation, which: Trail) -> sealstore.JsonlAuditLog:
    vault = invocation.vault()
    return vault.audit_log if which is Trail.KEYS else vault.kms_audit_log


def _event_data(event: sealstore.AuditEvent) -> dict[str, Any]:
    return {
        "time": event.time.isoformat(),
        "principal": event.principal,
        "operation": event.operation.value,
        "key_id": event.key_id,
        "key_version": event.key_version,
        "context_keys": list(event.context_keys),
        "outcome": event.outcome.value,
        "reason": event.reason,
    }


@audit_app.command("show")
def audit_show(
    ctx: typer.Context,
    log: LogOption = Trail.KEYS,
    last: Annotated[int, typer.Option(help="Only the last N events (0: all).", min=0)] = 20,
) -> None:
    """The latest audit events."""
    invocation = _invocation(ctx)
    events = list(_log(invocation, log).events())
    if last:
        events = events[-last:]
    invocation.emit(
        [_event_data(e) for e in events],
        [
            f"{e.time:%Y-%m-%d %H:%M:%S} {e.principal:<12} {e.operation.value:<18} "
            f"{e.outcome.value:<7} {e.key_id}" + (f"  {e.reason}" if e.reason else "")
            for e in events
        ],
    )


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, log: LogOption = Trail.KEYS) -> None:
    """Check the log's hash chain; exits 4 if it is broken."""
    invocation = _invocation(ctx)
    result = _log(invocation, log).verify()
    invocation.emit(
        attrs.asdict(result),
        [
            f"{result.records} records, hash chain intact"
            if result.ok
            else f"BROKEN at line {result.first_bad_line} after {result.records} good "
            f"records: {result.problem}"
        ],
    )
    if not result.ok:
        raise typer.Exit(exits.INTEGRITY)


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    log: LogOption = Trail.KEYS,
    output: Annotated[
        Path | None, typer.Option(help="Write to this file [default: standard output].")
    ] = None,
) -> None:
    """Every event as one JSON object per line (after checking the chain)."""
    invocation = _invocation(ctx)
    audit = _log(invocation, log)
    result = audit.verify()
    if not result.ok:
        raise CommandError(
            f"the audit log is broken at line {result.first_bad_line} ({result.problem}); "
            "run 'sealstore audit verify' and restore it before exporting",
            exits.INTEGRITY,
        )
    lines = (json.dumps(_event_data(event)) + "\n" for event in audit.events())
    if output is None:
        sys.stdout.writelines(lines)
        sys.stdout.flush()
    else:
        with open(output, "w", encoding="utf-8") as file:
            file.writelines(lines)


# ---------------------------------------------------------------------------------- kms


def _key_data(meta: Any) -> dict[str, Any]:
    return {
        "key_id": meta.key_id,
        "aliases": list(meta.aliases),
        "description": meta.description,
        "state": meta.state.value,
        "created": meta.created.isoformat(),
        "deletion_date": meta.deletion_date.isoformat() if meta.deletion_date else None,
        "current_version": meta.current_version,
    }


@kms_app.command("create-key")
def kms_create_key(
    ctx: typer.Context,
    description: Annotated[str, typer.Option(help="What the key is for.")] = "",
    alias: Annotated[str | None, typer.Option(help="Also name it alias/...")] = None,
) -> None:
    """Create a key (its policy: every operation for the principal)."""
    invocation = _invocation(ctx)
    kms = invocation.vault().kms()
    meta = kms.create_key(principal=invocation.principal, description=description)
    if alias is not None:
        kms.create_alias(alias, meta.key_id, principal=invocation.principal)
        meta = kms.describe_key(meta.key_id, principal=invocation.principal)
    invocation.emit(
        _key_data(meta), [f"created key {meta.key_id}" + (f" ({alias})" if alias else "")]
    )


@kms_app.command("list-keys")
def kms_list_keys(ctx: typer.Context) -> None:
    """Every key, with its aliases."""
    invocation = _invocation(ctx)
    entries = invocation.vault().kms().list_keys()
    invocation.emit(
        [{"key_id": e.key_id, "aliases": list(e.aliases)} for e in entries],
        [f"{e.key_id}  {' '.join(e.aliases)}" for e in entries],
    )


@kms_app.command("describe-key")
def kms_describe_key(
    ctx: typer.Context, key: Annotated[str, typer.Argument(help="Key id or alias.")]
) -> None:
    """A key's metadata (never its material)."""
    invocation = _invocation(ctx)
    meta = invocation.vault().kms().describe_key(key, principal=invocation.principal)
    data = _key_data(meta)
    invocation.emit(data, [f"{field + ':':<16} {value}" for field, value in data.items()])


@kms_app.command("alias")
def kms_alias(
    ctx: typer.Context,
    alias: Annotated[str, typer.Argument(help="alias/...")],
    key: Annotated[str | None, typer.Argument(help="The key id it names.")] = None,
    delete: Annotated[bool, typer.Option(help="Remove the alias instead.")] = False,
) -> None:
    """Point an alias at a key (created, or moved if it exists), or delete it."""
    invocation = _invocation(ctx)
    kms = invocation.vault().kms()
    if delete:
        kms.delete_alias(alias, principal=invocation.principal)
        invocation.emit({"alias": alias, "deleted": True}, [f"deleted {alias}"])
        return
    if key is None:
        raise CommandError("name the key the alias points at (or pass --delete)", exits.USAGE)
    existing = {a for entry in kms.list_keys() for a in entry.aliases}
    if alias in existing:
        kms.update_alias(alias, key, principal=invocation.principal)
    else:
        kms.create_alias(alias, key, principal=invocation.principal)
    invocation.emit({"alias": alias, "key_id": key}, [f"{alias} -> {key}"])


def _kms_state_change(
    ctx: typer.Context, key: str, verb: str, change: Callable[[sealstore.LocalKms, str], object]
) -> None:
    invocation = _invocation(ctx)
    kms = invocation.vault().kms()
    change(kms, invocation.principal)
    meta = kms.describe_key(key, principal=invocation.principal)
    invocation.emit(_key_data(meta), [f"{verb} {meta.key_id}: {meta.state.value}"])


KeyArgument = Annotated[str, typer.Argument(help="Key id or alias.")]


@kms_app.command("enable")
def kms_enable(ctx: typer.Context, key: KeyArgument) -> None:
    """Make a disabled key usable again."""
    _kms_state_change(ctx, key, "enabled", lambda kms, who: kms.enable_key(key, principal=who))


@kms_app.command("disable")
def kms_disable(ctx: typer.Context, key: KeyArgument) -> None:
    """Stop a key from being used (reversible)."""
    _kms_state_change(ctx, key, "disabled", lambda kms, who: kms.disable_key(key, principal=who))


@kms_app.command("schedule-deletion")
def kms_schedule_deletion(
    ctx: typer.Context,
    key: KeyArgument,
    days: Annotated[int, typer.Option(help="Waiting period (7 to 30 days).")] = 30,
) -> None:
    """Schedule a key's deletion; until then it refuses use and can be cancelled."""
    _kms_state_change(
        ctx,
        key,
        "scheduled deletion of",
        lambda kms, who: kms.schedule_key_deletion(key, waiting_days=days, principal=who),
    )


@kms_app.command("cancel-deletion")
def kms_cancel_deletion(ctx: typer.Context, key: KeyArgument) -> None:
    """Cancel a scheduled deletion (the key comes back disabled)."""
    _kms_state_change(
        ctx,
        key,
        "cancelled deletion of",
        lambda kms, who: kms.cancel_key_deletion(key, principal=who),
    )


@policy_app.command("get")
def kms_policy_get(ctx: typer.Context, key: KeyArgument) -> None:
    """A key's policy as JSON: operation to principals."""
    invocation = _invocation(ctx)
    meta = invocation.vault().kms().describe_key(key, principal=invocation.principal)
    sys.stdout.write(
        json.dumps(meta.policy.as_dict(), indent=None if invocation.json else 2) + "\n"
    )


@policy_app.command("put")
def kms_policy_put(
    ctx: typer.Context,
    key: KeyArgument,
    policy_file: Annotated[Path, typer.Argument(help="A JSON file, as 'policy get' prints.")],
) -> None:
    """Replace a key's policy."""
    invocation = _invocation(ctx)
    try:
        grants = json.loads(policy_file.read_text(encoding="utf-8"))
    except OSError as error:
        raise CommandError(f"cannot read {policy_file}: {error.strerror}") from None
    except ValueError:
        raise CommandError(f"{policy_file} is not JSON", exits.USAGE) from None
    try:
        policy = sealstore.KeyPolicy(grants)
    except (TypeError, ValueError) as error:
        raise CommandError(f"{policy_file} is not a key policy: {error}", exits.USAGE) from None
    invocation.vault().kms().put_key_policy(key, policy, principal=invocation.principal)
    invocation.emit(policy.as_dict(), [f"policy of {key} replaced"])


# ---------------------------------------------------------------------------------- demo


@app.command()
def demo() -> None:
    """A short tour of the library in a temporary directory."""
    from sealstore.cli.tour import demo as tour  # noqa: PLC0415 - only this command needs it

    tour()


# ---------------------------------------------------------------------------------- running


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(
            args=list(sys.argv[1:] if argv is None else argv),
            prog_name="sealstore",
            standalone_mode=False,
        )
    except typer.TyperException as error:  # a usage error: the message and how to get help
        error.show()  # type: ignore[attr-defined]
        return error.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted")
        return exits.INTERRUPTED
    except CommandError as error:
        _fail(str(error))
        return error.code
    except SealstoreError as error:
        _fail(f"{type(error).__name__}: {error}")
        return exits.code_for(error)
    except BrokenPipeError:
        # A reader such as 'head' went away: the output was not wanted any more.
        sys.stderr.close()
        return exits.OK
    return code if isinstance(code, int) else exits.OK


def _fail(message: str) -> None:
    sys.stderr.write(f"sealstore: error: {' '.join(message.split())}\n")
    sys.stderr.flush()


def main() -> NoReturn:
    """The console script."""
    sys.exit(run())
