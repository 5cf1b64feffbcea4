"""Write the frozen managed- and KMS-mode objects, with their key stores. Run once; never again.

    python tests/known_answers/generate_providers.py

Writes ``providers/``: a root key, a keyring file sealed under it (``FileKeyringStore``), an
embedded KMS directory (``LocalKms``), and ``objects.json`` with objects encrypted in managed
mode (two keyring versions, one of them rotated out) and in KMS mode (per-object keys and a
bucket key). ``tests/test_known_answers.py`` decrypts them on every run: a sealstore that can no
longer read its own keyring, key store or objects fails its tests. The script refuses to run
if ``providers/`` exists.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

import sealstore

TARGET = Path(__file__).resolve().parent / "providers"
CONTEXT = {"tenant": "acme", "object": "orders/2026/11.json"}
PRINCIPAL = "known-answers"


def plaintext(size: int) -> bytes:
    """The plaintext of ``size`` bytes: ``bytes(i % 251 for i in range(size))``."""
    return bytes(i % 251 for i in range(size))


def main() -> int:
    if TARGET.exists():
        print(f"{TARGET} exists: the frozen objects are never regenerated", file=sys.stderr)
        return 1
    TARGET.mkdir()
    root_text = sealstore.RootKey.generate()
    (TARGET / "root.key").write_text(root_text + "\n", encoding="ascii")
    root = sealstore.RootKey.from_base64(root_text)
    managed = sealstore.ManagedKeys(
        sealstore.FileKeyringStore(TARGET / "keyring", root, create=True)
    )
    kms = sealstore.LocalKms(TARGET / "kms", root_key=root, create=True)
    key_id = kms.create_key(principal=PRINCIPAL, description="known answers").key_id
    per_object = sealstore.KmsKeys(kms, key_id=key_id, principal=PRINCIPAL)
    bucket = sealstore.KmsKeys(kms, key_id=key_id, principal=PRINCIPAL, bucket_key=True)
    entries = []

    def add(name: str, keys: sealstore.KeyProvider, size: int) -> None:
        data = plaintext(size)
        blob = sealstore.encrypt(data, keys, context=CONTEXT)
        entries.append(
            {
                "name": name,
                "context": CONTEXT,
                "plaintext": {"size": size, "sha256": hashlib.sha256(data).hexdigest()},
                "object": base64.b64encode(blob).decode("ascii"),
            }
        )

    add("managed-first-version", managed, 20_000)
    managed.rotate()
    add("managed-second-version", managed, 1)
    add("kms-per-object", per_object, 16_385)
    kms.rotate_key(key_id, principal=PRINCIPAL)
    add("kms-bucket-key", bucket, 0)
    add("kms-per-object-rotated", per_object, 100)
    document = {"principal": PRINCIPAL, "kms_key_id": key_id, "objects": entries}
    (TARGET / "objects.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
