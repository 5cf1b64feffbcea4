"""An independent reader of sealed documents, written from docs/sealed-documents.md alone.

The decoder below opens a sealed keyring or ``LocalKms`` key store with ``cryptography``'s
primitives (HKDF, scrypt, AES-GCM) and the constants on the page, never sealstore's codecs,
recovers the master keys and KMS material, and decrypts managed- and KMS-mode objects with
the object-side decoder of ``docs/format.md`` (from ``tests/test_wire_format.py``). If the
library's files drift from the page, or the page from the code, these tests fail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

import sealstore
from sealstore.keys.kms import BucketKeyPolicy
from sealstore.kms.policy import KeyPolicy
from sealstore.sealed import RootKey, open_document
from tests.test_wire_format import (
    MODE_KMS,
    MODE_MANAGED,
    Header,
    decode_header,
    decrypt_chunks,
    encode_context,
)

PAGE = Path(__file__).resolve().parent.parent / "docs" / "sealed-documents.md"
PROVIDERS = Path(__file__).resolve().parent / "known_answers" / "providers"

# Constants, as listed on the page.
MAGIC = b"SLKS"
VERSION = 1
PREFIX_SIZE = 24
NONCE_SIZE = 12
MAX_SEALED = 64 << 20
HKDF_LABEL = b"sealstore/v1 root "
KEYRING_PURPOSE = b"managed keyring"
KEY_STORE_PURPOSE = b"sealstore/local-kms/v1"
BLOB_LABEL = b"sealstore/local-kms/blob/v1\x00"
BUCKET_KEY_CONTEXT = {"sealstore:purpose": "bucket-key"}
KEYRING_ID = re.compile(r"kr-[0-9a-f]{16}")
VERSION_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


class Refused(Exception):
    """The independent decoder refuses the input, for the reason given."""


# --------------------------------------------------------------------------------------------
# The sealed file.


@dataclass(frozen=True)
class Root:
    """A root key as the page describes it: 32 raw bytes, or a passphrase and its scrypt."""

    raw: bytes | None = None
    passphrase: str | None = None


def sealing_key(root: Root, purpose: bytes, prefix: bytes) -> bytes:
    """HKDF-SHA256(secret, salt, b"sealstore/v1 root " || purpose), the secret being the raw
    key or scrypt of the UTF-8 passphrase with the file's salt and parameters."""
    log2_n, r, p, salt = prefix[5], prefix[6], prefix[7], prefix[8:24]
    if root.raw is not None:
        if (log2_n, r, p) != (0, 0, 0):
            raise Refused("sealed under a passphrase")
        secret = root.raw
    else:
        assert root.passphrase is not None
        if log2_n == 0:
            raise Refused("sealed under a raw key")
        secret = Scrypt(salt, 32, 1 << log2_n, r, p).derive(root.passphrase.encode("utf-8"))
    return HKDF(SHA256(), 32, salt, HKDF_LABEL + purpose).derive(secret)


def open_sealed(data: bytes, root: Root, purpose: bytes) -> bytes:
    """Steps 1 to 4 of the page: the document inside a sealed file."""
    if len(data) > MAX_SEALED or len(data) < PREFIX_SIZE or data[:4] != MAGIC:
        raise Refused("not a sealed file")
    if data[4] != VERSION:
        raise Refused("another version")
    prefix = data[:PREFIX_SIZE]
    key = sealing_key(root, purpose, prefix)
    nonce, sealed = data[PREFIX_SIZE : PREFIX_SIZE + NONCE_SIZE], data[PREFIX_SIZE + NONCE_SIZE :]
    if len(sealed) < 16:
        raise Refused("too short")
    try:
        return AESGCM(key).decrypt(nonce, sealed, purpose + prefix)
    except InvalidTag:
        raise Refused("does not open") from None


def seal(document: bytes, root: Root, purpose: bytes, salt: bytes, nonce: bytes) -> bytes:
    """The sealed file of ``document`` with the given salt and nonce, by the page's rules."""
    prefix = MAGIC + bytes((VERSION, 0, 0, 0)) + salt
    key = sealing_key(root, purpose, prefix)
    return prefix + nonce + AESGCM(key).encrypt(nonce, document, purpose + prefix)


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise Refused("a time is a string")
    parsed = datetime.fromisoformat(value)
    if parsed.utcoffset() is None:
        raise Refused("a time has an offset")
    return parsed


def _key(value: object) -> bytes:
    if not isinstance(value, str):
        raise Refused("a key is a string")
    try:
        key = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise Refused("a key is base64") from None
    if len(key) != 32:
        raise Refused("a key is 32 bytes")
    return key


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused("a number is an integer, not a boolean")
    return value


# --------------------------------------------------------------------------------------------
# The managed keyring.


@dataclass(frozen=True)
class Version:
    """One version of a managed keyring, as the page lists its fields."""

    id: str
    created: datetime
    retired: bool
    reserved_wraps: int
    key: bytes


@dataclass(frozen=True)
class Keyring:
    """A parsed keyring document."""

    keyring: str
    next_sequence: int
    current: str
    versions: dict[str, Version]


def parse_keyring(document: bytes) -> Keyring:
    """The keyring document, with every rule of the page's field tables checked."""
    doc = json.loads(document.decode("utf-8"))
    if doc["kind"] != "sealstore-keyring" or _int(doc["schema"]) != 1:
        raise Refused("not a schema 1 keyring")
    if not KEYRING_ID.fullmatch(doc["keyring"]) or _int(doc["next_sequence"]) < 1:
        raise Refused("bad keyring id or sequence")
    if not 1 <= len(doc["versions"]) <= 10_000:
        raise Refused("1 to 10,000 versions")
    versions: dict[str, Version] = {}
    for item in doc["versions"]:
        if not VERSION_ID.fullmatch(item["id"]) or item["id"] in versions:
            raise Refused("bad or repeated version id")
        if item["state"] not in ("active", "retired") or _int(item["reserved_wraps"]) < 0:
            raise Refused("bad state or count")
        versions[item["id"]] = Version(
            item["id"],
            _time(item["created"]),
            item["state"] == "retired",
            item["reserved_wraps"],
            _key(item["key"]),
        )
    current = versions.get(doc["current"])
    if current is None or current.retired:
        raise Refused("the current version is missing or retired")
    return Keyring(doc["keyring"], doc["next_sequence"], doc["current"], versions)


def unwrap(kek: bytes, header: Header, wrap_ad: bytes | None = None) -> bytes:
    """The data key: AES-256-GCM of nonce (12) || ciphertext || tag under ``kek``, with
    ``wrap_ad`` (by default the header's, which ends with the whole key reference)."""
    wrapped = header.wrapped_key
    if len(wrapped) != 60:
        raise Refused("a wrapped data key is 60 bytes")
    return AESGCM(kek).decrypt(
        wrapped[:12], wrapped[12:], header.wrap_ad if wrap_ad is None else wrap_ad
    )


def decrypt_managed(blob: bytes, keyring: Keyring) -> bytes:
    """A managed-mode object, decrypted with the master key its header names."""
    header = decode_header(blob)
    assert header.mode == MODE_MANAGED
    version = keyring.versions[header.key_ref.decode("ascii")]
    data_key = unwrap(version.key, header)
    return b"".join(decrypt_chunks(data_key, header.immutable, blob[header.length :]))


# --------------------------------------------------------------------------------------------
# The LocalKms key store.


@dataclass(frozen=True)
class KmsKey:
    """One key of a key store, as the page lists its fields."""

    description: str
    creator: str
    created: datetime
    state: str
    deletion_date: datetime | None
    policy: dict[str, list[str]]
    materials: dict[int, tuple[datetime, bytes]]


def parse_key_store(document: bytes) -> tuple[dict[str, KmsKey], dict[str, str]]:
    """``(keys, aliases)`` of a key store document, with the page's rules checked."""
    doc = json.loads(document.decode("utf-8"))
    if _int(doc["format"]) not in (1, 2):
        raise Refused("not format 1 or 2")
    if _int(doc.get("sequence", 0)) < 0:
        raise Refused("a sequence number is 0 or more")
    keys: dict[str, KmsKey] = {}
    for key_id, raw in doc["keys"].items():
        if raw["state"] not in ("enabled", "disabled", "pending-deletion"):
            raise Refused("bad state")
        deletion = raw["deletion_date"]
        materials: dict[int, tuple[datetime, bytes]] = {}
        for index, entry in enumerate(raw["materials"], start=1):
            if _int(entry["version"]) != index:
                raise Refused("material versions are 1, 2, 3 ... in order")
            materials[index] = (_time(entry["created"]), _key(entry["key"]))
        if not materials:
            raise Refused("a key has material")
        keys[key_id] = KmsKey(
            description=raw["description"],
            creator=raw["creator"],
            created=_time(raw["created"]),
            state=raw["state"],
            deletion_date=None if deletion is None else _time(deletion),
            policy=raw["policy"],
            materials=materials,
        )
    aliases: dict[str, str] = doc["aliases"]
    if not all(key_id in keys for key_id in aliases.values()):
        raise Refused("an alias names a missing key")
    if not set(doc.get("alias_owners", {})) <= set(aliases):
        raise Refused("an owner is recorded for a missing alias")
    return keys, aliases


def parse_blob(blob: bytes) -> tuple[str, int, bytes, bytes]:
    """``(key id, material version, blob[0 : 6 + n], nonce || ciphertext || tag)``."""
    if blob[0] != 1 or len(blob) != 66 + blob[1]:
        raise Refused("not a version 1 blob")
    n = blob[1]
    key_id = blob[2 : 2 + n].decode("ascii")
    (version,) = struct.unpack(">I", blob[2 + n : 6 + n])
    return key_id, version, blob[: 6 + n], blob[6 + n :]


def decrypt_kms(blob: bytes, keys: Mapping[str, KmsKey]) -> bytes:
    """A KMS-mode object made through LocalKms, decrypted with the material its blob names."""
    header = decode_header(blob)
    assert header.mode == MODE_KMS
    ref = header.key_ref
    kind = ref[0]
    (id_size,) = struct.unpack_from(">H", ref, 1)
    ref_key_id = ref[3 : 3 + id_size].decode("utf-8")
    (blob_size,) = struct.unpack_from(">H", ref, 3 + id_size)
    kms_blob = ref[5 + id_size :]
    assert len(kms_blob) == blob_size
    key_id, version, blob_head, sealed = parse_blob(kms_blob)
    assert key_id == ref_key_id
    material = keys[key_id].materials[version][1]
    per_object = kind in (1, 3)
    context_field = header.context_field if per_object else encode_context(BUCKET_KEY_CONTEXT)
    assert kind in (1, 2, 3, 4)
    kek = AESGCM(material).decrypt(sealed[:12], sealed[12:], BLOB_LABEL + blob_head + context_field)
    # Kinds 3 and 4 bind only the kind byte of the key reference into the wrap.
    wrap_ad = header.immutable + b"\x00\x01" + bytes((kind,)) if kind > 2 else None
    data_key = unwrap(kek, header, wrap_ad)
    return b"".join(decrypt_chunks(data_key, header.immutable, blob[header.length :]))


# --------------------------------------------------------------------------------------------
# The page's tables.


def _section(heading: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = text.find("\n#", start)
    return text[start : len(text) if end < 0 else end]


def _field_table(heading: str) -> dict[str, bool]:
    """Field name to whether it is required, from a ``| field | JSON type | required |`` table."""
    rows = [line.strip("|").split("|") for line in _section(heading).splitlines()]
    fields = {}
    for cells in rows:
        if len(cells) >= 3 and cells[0].strip().startswith("`"):
            required = cells[2].strip()
            assert required == "yes" or required.startswith("no"), cells
            fields[cells[0].strip().strip("`")] = required == "yes"
    assert fields, heading
    return fields


def _check_fields(obj: Mapping[str, Any], heading: str) -> None:
    """Every field ``obj`` has is on the page, and every required one is there."""
    table = _field_table(heading)
    assert set(obj) <= set(table), f"fields missing from {heading}: {set(obj) - set(table)}"
    assert {name for name, required in table.items() if required} <= set(obj)


# --------------------------------------------------------------------------------------------
# Library-written files.


def _plaintext(label: str, size: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(size)


def test_a_library_keyring_opens_by_the_page_rules(tmp_path: Path) -> None:
    """A keyring file written by FileKeyringStore opens, parses and decrypts its objects."""
    raw = os.urandom(32)
    keys = sealstore.ManagedKeys(
        sealstore.FileKeyringStore(tmp_path / "keyring", RootKey.from_bytes(raw), create=True)
    )
    context = {"tenant": "acme"}
    first = sealstore.encrypt(_plaintext("first", 20_000), keys, context=context)
    keys.rotate()
    second = sealstore.encrypt(_plaintext("second", 5), keys)
    keys.retire(keys.versions()[0].id)

    data = (tmp_path / "keyring").read_bytes()
    assert data[:8] == b"SLKS\x01\x00\x00\x00"
    document = open_sealed(data, Root(raw=raw), KEYRING_PURPOSE)
    doc = json.loads(document)
    _check_fields(doc, "### Keyring fields")
    for item in doc["versions"]:
        _check_fields(item, "### Version fields")

    keyring = parse_keyring(document)
    shown = keys.versions()
    assert list(keyring.versions) == [version.id for version in shown]
    assert keyring.current == shown[-1].id
    assert keyring.next_sequence == len(shown) + 1
    for version in shown:
        parsed = keyring.versions[version.id]
        assert parsed.created == version.created
        assert parsed.reserved_wraps == version.reserved_wraps
        assert parsed.retired == (version.state is sealstore.VersionState.RETIRED)
    assert decrypt_managed(first, keyring) == _plaintext("first", 20_000)
    assert decrypt_managed(second, keyring) == _plaintext("second", 5)


def test_a_keyring_sealed_under_a_passphrase_opens_by_the_page_rules(tmp_path: Path) -> None:
    """A passphrase root key stores its scrypt parameters, and they derive the sealing key."""
    root = RootKey.from_passphrase("correct horse battery staple é", work_factor=10)
    keys = sealstore.ManagedKeys(
        sealstore.FileKeyringStore(tmp_path / "keyring", root, create=True)
    )
    blob = sealstore.encrypt(b"under a passphrase", keys)

    data = (tmp_path / "keyring").read_bytes()
    assert data[5:8] == bytes((10, 8, 1))
    passphrase = Root(passphrase="correct horse battery staple é")
    keyring = parse_keyring(open_sealed(data, passphrase, KEYRING_PURPOSE))
    assert decrypt_managed(blob, keyring) == b"under a passphrase"
    with pytest.raises(Refused):
        open_sealed(data, Root(passphrase="wrong"), KEYRING_PURPOSE)
    with pytest.raises(Refused):
        open_sealed(data, Root(raw=bytes(32)), KEYRING_PURPOSE)


def test_a_library_key_store_opens_by_the_page_rules(tmp_path: Path) -> None:
    """keys.sealed written by LocalKms opens, parses, and decrypts per-object and bucket-key
    objects, including blobs made under rotated material."""
    raw = os.urandom(32)
    now = [datetime(2030, 1, 1, tzinfo=timezone.utc)]
    kms = sealstore.LocalKms(
        tmp_path / "kms",
        root_key=RootKey.from_bytes(raw),
        clock=lambda: now[0],
        audit=sealstore.MemoryAuditSink(),
        create=True,
    )
    policy = KeyPolicy.build(administrators=["alice"], users=["app", "é-service"])
    key_id = kms.create_key(principal="alice", description="invoices €", policy=policy).key_id
    kms.create_alias("alias/invoices", key_id, principal="alice")
    gone = kms.create_key(principal="alice").key_id
    kms.create_alias("alias/gone", gone, principal="alice")
    kms.schedule_key_deletion(gone, principal="alice", waiting_days=7)
    per_object = sealstore.KmsKeys(kms, key_id="alias/invoices", principal="app")
    bucket = sealstore.KmsKeys(kms, key_id=key_id, principal="app", bucket_key=BucketKeyPolicy())
    context = {"tenant": "acme", "object": "a/b"}
    objects: dict[str, tuple[bytes, bytes]] = {}

    def add(name: str, keys: sealstore.KmsKeys, size: int) -> None:
        plaintext = _plaintext(name, size)
        objects[name] = (sealstore.encrypt(plaintext, keys, context=context), plaintext)

    add("per-object-v1", per_object, 16_385)
    now[0] += timedelta(days=400)  # the next use rotates the key's material
    add("per-object-v2", per_object, 3)
    add("bucket-key", bucket, 0)
    doomed = kms.create_key(principal="alice").key_id
    kms.schedule_key_deletion(doomed, principal="alice", waiting_days=7)
    default = sealstore.KmsKeys(kms, principal="app")
    add("default-key", default, 100)

    data = (tmp_path / "kms" / "keys.sealed").read_bytes()
    document = open_sealed(data, Root(raw=raw), KEY_STORE_PURPOSE)
    with pytest.raises(Refused):
        open_sealed(data, Root(raw=raw), KEYRING_PURPOSE)
    doc = json.loads(document)
    _check_fields(doc, "### Key store fields")
    for raw_key in doc["keys"].values():
        _check_fields(raw_key, "### Key fields")
        for material in raw_key["materials"]:
            _check_fields(material, "### Material fields")

    keys, aliases = parse_key_store(document)
    assert aliases["alias/invoices"] == key_id
    assert aliases["alias/sealstore/default"] in keys
    for some_id, key in keys.items():
        reader = "app" if some_id == aliases["alias/sealstore/default"] else "alice"
        meta = kms.describe_key(some_id, principal=reader)
        assert (key.description, key.creator, key.created) == (
            meta.description,
            meta.creator,
            meta.created,
        )
        assert key.state == meta.state.value
        assert key.deletion_date == meta.deletion_date
        assert key.policy == meta.policy.as_dict()
        assert max(key.materials) == meta.current_version
        assert key.materials[meta.current_version][0] == meta.rotated
    assert keys[doomed].state == "pending-deletion"
    assert keys[doomed].deletion_date == now[0] + timedelta(days=7)
    assert gone not in keys  # removed, with its alias, once its deletion date passed
    assert "alias/gone" not in aliases
    assert len(keys[key_id].materials) == 2
    for name, (blob, plaintext) in objects.items():
        assert decrypt_kms(blob, keys) == plaintext, name


def test_the_frozen_keyring_and_key_store_open_by_the_page_rules() -> None:
    """The frozen files under tests/known_answers/providers open with the page's rules alone,
    and every frozen managed- and KMS-mode object decrypts to its recorded plaintext."""
    root = Root(raw=base64.b64decode((PROVIDERS / "root.key").read_text("ascii").strip()))
    keyring = parse_keyring(
        open_sealed((PROVIDERS / "keyring").read_bytes(), root, KEYRING_PURPOSE)
    )
    keys, _ = parse_key_store(
        open_sealed((PROVIDERS / "kms" / "keys.sealed").read_bytes(), root, KEY_STORE_PURPOSE)
    )
    entries = json.loads((PROVIDERS / "objects.json").read_text("utf-8"))["objects"]
    assert {entry["name"].split("-")[0] for entry in entries} == {"managed", "kms"}
    for entry in entries:
        blob = base64.b64decode(entry["object"])
        if entry["name"].startswith("managed"):
            plaintext = decrypt_managed(blob, keyring)
        else:
            plaintext = decrypt_kms(blob, keys)
        assert len(plaintext) == entry["plaintext"]["size"]
        assert hashlib.sha256(plaintext).hexdigest() == entry["plaintext"]["sha256"]


def test_the_purpose_and_every_prefix_byte_are_authenticated(tmp_path: Path) -> None:
    """Another purpose, or any changed byte of the prefix, keeps a sealed file shut, for the
    page's decoder and for sealstore alike."""
    raw = os.urandom(32)
    sealed = seal(b"{}", Root(raw=raw), KEYRING_PURPOSE, os.urandom(16), os.urandom(12))
    assert open_sealed(sealed, Root(raw=raw), KEYRING_PURPOSE) == b"{}"
    with pytest.raises(Refused):
        open_sealed(sealed, Root(raw=raw), KEY_STORE_PURPOSE)
    for offset in range(8, PREFIX_SIZE):  # the salt: the key and the associated data change
        damaged = sealed[:offset] + bytes((sealed[offset] ^ 1,)) + sealed[offset + 1 :]
        with pytest.raises(Refused):
            open_sealed(damaged, Root(raw=raw), KEYRING_PURPOSE)
        with pytest.raises(sealstore.RootKeyError):
            open_document(RootKey.from_bytes(raw), KEYRING_PURPOSE, damaged, "x")


# --------------------------------------------------------------------------------------------
# The worked example.


def _worked_example() -> tuple[bytes, bytes, bytes, str]:
    """``(root key, document, sealed file, section text)`` as printed on the page."""
    section = PAGE.read_text(encoding="utf-8").split("## Worked example", 1)[1]
    root = re.search(r"^root key: ([0-9a-f]{64})$", section, re.MULTILINE)
    document = re.search(r"^(\{\"kind\".*\})$", section, re.MULTILINE)
    assert root is not None
    assert document is not None
    dump = re.findall(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} ?)+)$", section, re.MULTILINE)
    return (
        bytes.fromhex(root.group(1)),
        document.group(1).encode("utf-8"),
        bytes.fromhex("".join(dump)),
        section,
    )


def _rows(section: str) -> dict[str, list[str]]:
    rows = {}
    for line in section.splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_worked_example_is_what_the_rules_give() -> None:
    """The printed file is exactly the printed document sealed by the page's rules under the
    printed root key, salt and nonce; sealstore opens it to the same keyring."""
    raw, document, sealed, section = _worked_example()
    rows = _rows(section)
    salt = bytes.fromhex(rows["08"][2].strip("`"))
    nonce = bytes.fromhex(rows["18"][2].strip("`"))
    assert seal(document, Root(raw=raw), KEYRING_PURPOSE, salt, nonce) == sealed
    assert len(document) == 444
    assert len(sealed) == 496
    assert sealed[0x1E0:].hex() == rows["1e0"][2].strip("`")
    assert open_sealed(sealed, Root(raw=raw), KEYRING_PURPOSE) == document

    prefix = sealed[:PREFIX_SIZE]
    key = sealing_key(Root(raw=raw), KEYRING_PURPOSE, prefix)
    assert key.hex() == rows["sealing key"][1].strip("`")
    assert (KEYRING_PURPOSE + prefix).hex() == rows[
        "associated data (39 bytes: purpose, then the prefix)"
    ][1].strip("`")

    keyring = parse_keyring(document)
    assert keyring.keyring == "kr-3af86f2964bda68a"
    assert keyring.current == "v000002-7a6691a8"
    first, second = keyring.versions.values()
    assert first.retired
    assert not second.retired
    assert first.key.hex() in rows["versions[0]"][2]
    assert second.key.hex() in rows["versions[1]"][2]

    # sealstore agrees: it opens the printed file and its keyring reads the document.
    opened = open_document(RootKey.from_bytes(raw), KEYRING_PURPOSE, sealed, "the example")[1]
    assert opened == document
    state = {v.id: v.state for v in _managed_over(document).versions()}
    assert state == {
        "v000001-9e1bc9b2": sealstore.VersionState.RETIRED,
        "v000002-7a6691a8": sealstore.VersionState.CURRENT,
    }


def _managed_over(document: bytes) -> sealstore.ManagedKeys:
    store = sealstore.MemoryKeyringStore()
    store.update(lambda _old: document)
    return sealstore.ManagedKeys(store, clock=lambda: datetime(2030, 5, 1, tzinfo=timezone.utc))


def test_the_worked_example_keyring_decrypts_an_object_by_the_rules(tmp_path: Path) -> None:
    """An object sealstore wraps under the example keyring decrypts with the printed key."""
    raw, document, sealed, _ = _worked_example()
    path = tmp_path / "keyring"
    path.write_bytes(sealed)
    keys = sealstore.ManagedKeys(
        sealstore.FileKeyringStore(path, RootKey.from_bytes(raw)),
        clock=lambda: datetime(2030, 5, 1, tzinfo=timezone.utc),
    )
    blob = sealstore.encrypt(b"recovered", keys, context={"k": "v"})
    assert decode_header(blob).key_ref == b"v000002-7a6691a8"
    assert decrypt_managed(blob, parse_keyring(document)) == b"recovered"
