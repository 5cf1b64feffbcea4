"""A local vault: the keys the ``sealstore`` command works with, in one directory.

``sealstore init DIR`` lays out::

    DIR/sealstore-vault.json   what lives where (no secrets)
    DIR/root.key               the root key, base64, mode 0600 (absent when it comes
                               from SEALSTORE_ROOT_KEY)
    DIR/keyring                the managed keyring, sealed under the root key
    DIR/audit.jsonl            the managed keyring's audit trail (hash-chained)
    DIR/kms/                   a LocalKms, sealed under the same root key
    DIR/objects/               the default store of encrypted objects
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

import attrs

import sealstore
from sealstore.errors import KeystoreError, RootKeyError

CONFIG_NAME: Final = "sealstore-vault.json"
ROOT_KEY_VARIABLE: Final = "SEALSTORE_ROOT_KEY"
_FORMAT: Final = "sealstore-vault"
_VERSION: Final = 1


@attrs.frozen
class Layout:
    """Where a vault keeps each part, relative to its directory (its config file)."""

    root_key: str | None = "root.key"
    """The root key file, or ``None`` when the root key comes from ``SEALSTORE_ROOT_KEY``."""
    keyring: str = "keyring"
    audit: str = "audit.jsonl"
    kms: str = "kms"
    objects: str = "objects"

    def as_dict(self) -> dict[str, Any]:
        """The config file's content."""
        return {"format": _FORMAT, "version": _VERSION, **attrs.asdict(self)}

    @classmethod
    def from_dict(cls, data: object, where: Path) -> Layout:
        """The layout a config file records; ``KeystoreError`` if it is not one."""
        if (
            not isinstance(data, dict)
            or data.get("format") != _FORMAT
            or data.get("version") != _VERSION
        ):
            raise KeystoreError(f"{where} is not a sealstore vault config of version {_VERSION}")
        fields: dict[str, str | None] = {}
        for field in attrs.fields(cls):
            value = data.get(field.name)
            if value is None and field.name == "root_key":
                fields[field.name] = None
            elif (
                isinstance(value, str) and value and not os.path.isabs(value) and ".." not in value
            ):
                fields[field.name] = value
            else:
                raise KeystoreError(f"{where}: '{field.name}' must be a relative path in the vault")
        return cls(**fields)  # type: ignore[arg-type]


@attrs.frozen
class Vault:
    """An opened vault: its paths, its root key and the principal the command acts as."""

    path: Path
    layout: Layout
    root_key: sealstore.RootKey = attrs.field(repr=False)
    principal: str

    @property
    def objects(self) -> Path:
        """The vault's own object store directory."""
        return self.path / self.layout.objects

    @property
    def audit_log(self) -> sealstore.JsonlAuditLog:
        """The managed keyring's audit trail."""
        return sealstore.JsonlAuditLog(self.path / self.layout.audit)

    @property
    def kms_audit_log(self) -> sealstore.JsonlAuditLog:
        """The LocalKms's audit trail."""
        return sealstore.JsonlAuditLog(self.path / self.layout.kms / "audit.jsonl")

    def managed(self, *, create: bool = False) -> sealstore.ManagedKeys:
        """The vault's managed keyring, auditing to :attr:`audit_log`."""
        return sealstore.ManagedKeys(
            sealstore.FileKeyringStore(
                self.path / self.layout.keyring, self.root_key, create=create
            ),
            audit=self.audit_log,
            principal=self.principal,
        )

    def kms(self, *, create: bool = False) -> sealstore.LocalKms:
        """The vault's LocalKms."""
        return sealstore.LocalKms(
            self.path / self.layout.kms, root_key=self.root_key, create=create
        )


def create(path: Path, principal: str) -> tuple[Vault, bool]:
    """Make a vault at ``path``; returns it and whether a root key file was written.

    The root key comes from ``SEALSTORE_ROOT_KEY`` when it is set (and is then never written
    to disk); otherwise a new one is generated into ``root.key`` with mode 0600. A directory
    that already holds a vault config is refused, so nothing is ever overwritten.
    """
    config = path / CONFIG_NAME
    if config.exists():
        raise KeystoreError(f"{path} is already a vault; use it, or choose another directory")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise KeystoreError(f"cannot create the vault directory {path}: {error.strerror}") from None
    from_env = bool(os.environ.get(ROOT_KEY_VARIABLE))
    layout = Layout(root_key=None if from_env else "root.key")
    if from_env:
        root_key = sealstore.RootKey.from_env(ROOT_KEY_VARIABLE)
    else:
        encoded = sealstore.RootKey.generate()
        key_file = path / "root.key"
        try:
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeystoreError(
                f"{key_file} already exists; move it away or set {ROOT_KEY_VARIABLE}"
            ) from None
        with os.fdopen(descriptor, "w") as file:
            file.write(encoded + "\n")
            file.flush()
            os.fsync(file.fileno())
        root_key = sealstore.RootKey.from_base64(encoded)
    vault = Vault(path, layout, root_key, principal)
    vault.managed(create=True).rotate()
    vault.kms(create=True)
    vault.objects.mkdir(mode=0o700, exist_ok=True)
    temporary = config.with_suffix(".tmp")
    temporary.write_text(json.dumps(layout.as_dict(), indent=2) + "\n", encoding="utf-8")
    temporary.replace(config)
    return vault, not from_env


def open_vault(path: Path, principal: str) -> Vault:
    """The vault at ``path``, with its root key; ``KeystoreError`` says what to do if absent."""
    config = path / CONFIG_NAME
    try:
        text = config.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeystoreError(
            f"no vault at {path} (no {CONFIG_NAME}); create one with 'sealstore init {path}' "
            "or point --vault (or SEALSTORE_VAULT) at an existing one"
        ) from None
    except OSError as error:
        raise KeystoreError(f"cannot read {config}: {error.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise KeystoreError(f"{config} is not valid JSON") from None
    layout = Layout.from_dict(data, config)
    if os.environ.get(ROOT_KEY_VARIABLE):
        root_key = sealstore.RootKey.from_env(ROOT_KEY_VARIABLE)
    elif layout.root_key is None:
        raise RootKeyError(
            f"the vault at {path} keeps no root key file: set {ROOT_KEY_VARIABLE} to its root key"
        )
    else:
        root_key = _read_root_key(path / layout.root_key)
    return Vault(path, layout, root_key, principal)


def _read_root_key(key_file: Path) -> sealstore.RootKey:
    # Like ssh with a private key: a root key others can read is refused, not used.
    try:
        mode = key_file.stat().st_mode
    except OSError as error:
        raise RootKeyError(f"cannot read the root key file {key_file}: {error.strerror}") from None
    if mode & 0o077:
        raise RootKeyError(
            f"the root key file {key_file} is readable by others (mode {mode & 0o777:o}): "
            f"run 'chmod 600 {key_file}'"
        )
    return sealstore.RootKey.from_file(key_file)
