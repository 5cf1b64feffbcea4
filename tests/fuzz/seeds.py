"""Write the seed corpora: valid inputs for every fuzz target, made by the library.

``python -m tests.fuzz.seeds`` rewrites ``tests/fuzz/corpus/<target>/``. The seeds are
committed; rerun this only when a format changes (the test suite checks that every seed is
still accepted by its target).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs

import sealstore
from sealstore.audit.events import AuditEvent, Operation, Outcome
from sealstore.header import parse_header
from sealstore.keys.managed.keyring import add_version, encode_keyring
from sealstore.kms.local.blob import seal_blob
from sealstore.kms.local.document import KeyState, Store, encode_document
from sealstore.placement import place
from tests.fuzz.targets import (
    CUSTOMER_KEY,
    DECRYPT_CONTEXT,
    LOCAL_KMS_CONTEXT,
    LOCAL_KMS_STORE,
    TARGETS,
)

CORPUS = Path(__file__).parent / "corpus"
REPRODUCERS = Path(__file__).parent / "reproducers"
_T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
_CHUNK = 16384


def _objects(workdir: Path) -> Iterator[bytes]:
    """Objects in every mode, with and without a context (KMS ones per object and bucket)."""
    kms = sealstore.LocalKms(workdir / "kms", root_key=sealstore.RootKey.from_bytes(bytes(32)))
    providers: list[sealstore.KeyProvider] = [
        sealstore.CustomerKeys(CUSTOMER_KEY),
        sealstore.ManagedKeys(sealstore.MemoryKeyringStore()),
        sealstore.KmsKeys(kms),
        sealstore.KmsKeys(kms, bucket_key=True),
    ]
    for keys in providers:
        yield sealstore.encrypt(b"seed", keys)
        yield sealstore.encrypt(b"", keys, context={"tenant": "acme", "\u00e9": "\u2603"})


def _decrypt_inputs() -> Iterator[bytes]:
    keys = sealstore.CustomerKeys(CUSTOMER_KEY)
    for size in (0, 100, _CHUNK + 5):
        plaintext = bytes(i % 251 for i in range(size))
        for selector in range(4):
            context = DECRYPT_CONTEXT if selector & 2 else None
            if selector & 1:
                header, body = sealstore.encrypt_detached(plaintext, keys, context=context)
                yield bytes((selector,)) + len(header).to_bytes(2, "big") + header + body
            else:
                yield bytes((selector,)) + sealstore.encrypt(plaintext, keys, context=context)


def _audit_logs(workdir: Path) -> Iterator[bytes]:
    log = sealstore.JsonlAuditLog(workdir / "audit.jsonl")
    events = (
        AuditEvent(time=_T0, principal="alice", operation=Operation.GENERATE, key_id="k1"),
        AuditEvent(
            time=_T0 + timedelta(seconds=1),
            principal="bob",
            operation=Operation.UNWRAP,
            key_id="k1",
            key_version="2",
            context_keys=("bucket", "tenant"),
            outcome=Outcome.DENIED,
            reason="not allowed \u2603",
        ),
        AuditEvent(time=_T0, principal="carol", operation=Operation.ROTATE, key_id="k2"),
    )
    for event in events:
        log.record(event)
        yield log.path.read_bytes()


def _local_kms_documents() -> Iterator[bytes]:
    yield encode_document(LOCAL_KMS_STORE)
    (key,) = LOCAL_KMS_STORE.keys.values()
    pending = attrs.evolve(key, state=KeyState.PENDING_DELETION, deletion_date=_T0)
    yield encode_document(Store({key.key_id: pending}, {}))


def _keyrings() -> Iterator[bytes]:
    ring, _ = add_version(None, _T0)
    yield encode_keyring(ring)
    ring, _ = add_version(ring, _T0 + timedelta(days=1))
    first, second = ring.versions
    yield encode_keyring(attrs.evolve(ring, versions=(attrs.evolve(first, retired=True), second)))


def seeds(workdir: Path) -> dict[str, list[bytes]]:
    """Valid inputs for each target."""
    objects = list(_objects(workdir))
    headers = [parse_header(blob).encode() for blob in objects]
    (key,) = LOCAL_KMS_STORE.keys.values()
    return {
        "header": headers,
        "placement": [
            *(
                (place(header, keeps_metadata=True)[1] or {})["sealstore"].encode()
                for header in headers
            ),
            b"inline",
        ],
        "keyring": list(_keyrings()),
        "local_kms_document": list(_local_kms_documents()),
        "local_kms_blob": [
            seal_blob(LOCAL_KMS_STORE, key, material, bytes(32), LOCAL_KMS_CONTEXT)
            for material in key.materials
        ],
        "audit_log": list(_audit_logs(workdir)),
        "kms_key_ref": [
            parse_header(blob).key_ref
            for blob in objects
            if parse_header(blob).mode is sealstore.Mode.KMS
        ],
        "decrypt": list(_decrypt_inputs()),
    }


def write_seeds() -> None:
    """Replace every target's seed directory with freshly made seeds."""
    with tempfile.TemporaryDirectory() as workdir:
        made = seeds(Path(workdir))
    assert made.keys() == TARGETS.keys()
    for name, inputs in made.items():
        directory = CORPUS / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for data in inputs:
            (directory / f"seed-{hashlib.sha256(data).hexdigest()[:16]}").write_bytes(data)


if __name__ == "__main__":
    write_seeds()
