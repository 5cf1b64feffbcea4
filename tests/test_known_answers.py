"""Objects written in format version 1 decrypt forever.

``known_answers/v1.json`` holds objects made once by ``known_answers/generate.py`` when the
format was specified, with their customer keys. They are never regenerated: every reading
API, and the independent decoder of ``docs/format.md``, must keep turning them back into
their recorded plaintexts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sealstore
from sealstore.header import parse_header
from tests.test_wire_format import decode, decode_header

KNOWN_ANSWERS = Path(__file__).resolve().parent / "known_answers" / "v1.json"
FROZEN_SHA256 = "8663c428cf7d5241bf88662960aaa9885d40451e92f9de6f42a7d6e35967a5f6"
"""SHA-256 of the entries in canonical JSON, so line endings and indentation do not matter."""
RECIPE = "bytes(i % 251 for i in range(size))"

ENTRIES: list[dict[str, Any]] = json.loads(KNOWN_ANSWERS.read_text(encoding="utf-8"))
IDS = [entry["name"] for entry in ENTRIES]

Context = dict[str, str] | None
Reader = Callable[[bytes, sealstore.CustomerKeys, Context], bytes]


def _plaintext(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def _blob(entry: dict[str, Any]) -> bytes:
    return base64.b64decode(entry["object"], validate=True)


def _keys(entry: dict[str, Any]) -> sealstore.CustomerKeys:
    return sealstore.CustomerKeys(bytes.fromhex(entry["customer_key"]))


def _read_decrypt(blob: bytes, keys: sealstore.CustomerKeys, context: Context) -> bytes:
    return sealstore.decrypt(blob, keys, context=context)


def _read_stream(blob: bytes, keys: sealstore.CustomerKeys, context: Context) -> bytes:
    sink = io.BytesIO()
    written = sealstore.decrypt_stream(io.BytesIO(blob), sink, keys, context=context)
    assert written == len(sink.getvalue())
    return sink.getvalue()


def _read_random_access(blob: bytes, keys: sealstore.CustomerKeys, context: Context) -> bytes:
    with sealstore.open_decrypted(io.BytesIO(blob), keys, context=context) as reader:
        size = reader.seek(0, io.SEEK_END)
        reader.seek(0)
        data = reader.read()
        assert len(data) == size
        return data


READERS = [
    pytest.param(_read_decrypt, id="decrypt"),
    pytest.param(_read_stream, id="decrypt_stream"),
    pytest.param(_read_random_access, id="open_decrypted"),
]


def test_the_frozen_entries_are_the_ones_first_written() -> None:
    """v1.json holds exactly the entries generated when format version 1 was specified."""
    canonical = json.dumps(ENTRIES, sort_keys=True, separators=(",", ":")).encode("ascii")
    assert hashlib.sha256(canonical).hexdigest() == FROZEN_SHA256


def test_the_frozen_objects_cover_the_documented_sizes() -> None:
    """Sizes 0, 1, 16 KiB, 16 KiB + 1 and ~100 KiB, each without and with a context."""
    covered = {(e["plaintext"]["size"], e["context"] is not None) for e in ENTRIES}
    sizes = (0, 1, 16384, 16385, 102407)
    assert covered == {(size, has) for size in sizes for has in (False, True)}
    assert len(ENTRIES) == len(covered)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_recorded_plaintext_is_rebuilt_from_its_recipe(entry: dict[str, Any]) -> None:
    """The recipe rebuilds a plaintext whose SHA-256 is the recorded one."""
    assert entry["plaintext"]["recipe"] == RECIPE
    data = _plaintext(entry["plaintext"]["size"])
    assert hashlib.sha256(data).hexdigest() == entry["plaintext"]["sha256"]


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize("give_context", [False, True], ids=["context-unchecked", "context-given"])
@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_frozen_object_decrypts(entry: dict[str, Any], give_context: bool, read: Reader) -> None:
    """Each frozen object decrypts to its recorded plaintext through every reading API."""
    context = (entry["context"] or {}) if give_context else None
    plaintext = read(_blob(entry), _keys(entry), context)
    assert len(plaintext) == entry["plaintext"]["size"]
    assert hashlib.sha256(plaintext).hexdigest() == entry["plaintext"]["sha256"]


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_independent_decoder_reads_frozen_object(entry: dict[str, Any]) -> None:
    """The decoder written from docs/format.md decrypts each frozen object too."""
    blob = _blob(entry)
    header = decode_header(blob)
    assert (header.version, header.mode) == (1, 3)
    assert header.context == (entry["context"] or {})
    plaintext = decode(blob, bytes.fromhex(entry["customer_key"]), entry["context"])
    assert hashlib.sha256(plaintext).hexdigest() == entry["plaintext"]["sha256"]


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_frozen_object_refuses_another_key(entry: dict[str, Any]) -> None:
    """A frozen object read with a different customer key raises WrongKeyError."""
    with pytest.raises(sealstore.WrongKeyError):
        sealstore.decrypt(_blob(entry), sealstore.CustomerKeys(os.urandom(32)))


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_frozen_object_refuses_another_context(entry: dict[str, Any]) -> None:
    """A frozen object read expecting another context raises ContextMismatchError."""
    with pytest.raises(sealstore.ContextMismatchError):
        sealstore.decrypt(_blob(entry), _keys(entry), context={"tenant": "globex"})


PROVIDERS = Path(__file__).resolve().parent / "known_answers" / "providers"
PROVIDER_OBJECTS = json.loads((PROVIDERS / "objects.json").read_text(encoding="utf-8"))


@pytest.fixture
def frozen_providers(tmp_path: Path) -> Path:
    """A copy of the frozen keyring and key store (reading must not touch the originals)."""
    copy = tmp_path / "providers"
    shutil.copytree(PROVIDERS, copy)
    return copy


@pytest.mark.parametrize(
    "entry", PROVIDER_OBJECTS["objects"], ids=[e["name"] for e in PROVIDER_OBJECTS["objects"]]
)
def test_frozen_managed_and_kms_objects_decrypt_forever(
    frozen_providers: Path, entry: dict[str, Any]
) -> None:
    """Managed- and KMS-mode objects decrypt with the frozen keyring and key store they used."""
    root = sealstore.RootKey.from_file(frozen_providers / "root.key")
    keys: sealstore.KeyProvider
    if entry["name"].startswith("managed"):
        keys = sealstore.ManagedKeys(sealstore.FileKeyringStore(frozen_providers / "keyring", root))
    else:
        kms = sealstore.LocalKms(
            frozen_providers / "kms", root_key=root, audit=sealstore.MemoryAuditSink()
        )
        keys = sealstore.KmsKeys(
            kms, key_id=PROVIDER_OBJECTS["kms_key_id"], principal=PROVIDER_OBJECTS["principal"]
        )
    blob = base64.b64decode(entry["object"])
    expected = entry["plaintext"]["sha256"]
    assert (
        hashlib.sha256(sealstore.decrypt(blob, keys, context=entry["context"])).hexdigest()
        == expected
    )
    sink = io.BytesIO()
    sealstore.decrypt_stream(io.BytesIO(blob), sink, keys)
    assert hashlib.sha256(sink.getvalue()).hexdigest() == expected
    with sealstore.open_decrypted(io.BytesIO(blob), keys) as reader:
        assert hashlib.sha256(reader.read()).hexdigest() == expected


KMS_REWRAPPABLE = Path(__file__).resolve().parent / "known_answers" / "kms_rewrappable"
KMS_REWRAPPABLE_OBJECTS = json.loads((KMS_REWRAPPABLE / "objects.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "entry",
    KMS_REWRAPPABLE_OBJECTS["objects"],
    ids=[e["name"] for e in KMS_REWRAPPABLE_OBJECTS["objects"]],
)
def test_frozen_kms_objects_of_kinds_3_and_4_decrypt_forever(
    tmp_path: Path, entry: dict[str, Any]
) -> None:
    """KMS-mode objects whose wrap binds only the key reference's kind (3: per object, 4:
    bucket key; one rewrapped inside the KMS) decrypt with the frozen key store they used."""
    copy = tmp_path / "kms_rewrappable"
    shutil.copytree(KMS_REWRAPPABLE, copy)
    root = sealstore.RootKey.from_file(copy / "root.key")
    kms = sealstore.LocalKms(copy / "kms", root_key=root, audit=sealstore.MemoryAuditSink())
    keys = sealstore.KmsKeys(
        kms,
        key_id=KMS_REWRAPPABLE_OBJECTS["kms_key_id"],
        principal=KMS_REWRAPPABLE_OBJECTS["principal"],
    )
    blob = base64.b64decode(entry["object"])
    assert parse_header(blob).key_ref[0] == (4 if entry["name"] == "kms-kind-4" else 3)
    plaintext = sealstore.decrypt(blob, keys, context=entry["context"])
    assert hashlib.sha256(plaintext).hexdigest() == entry["plaintext"]["sha256"]
