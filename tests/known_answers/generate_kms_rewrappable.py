"""Write the frozen KMS-mode objects of key reference kinds 3 and 4. Run once; never again.

    python tests/known_answers/generate_kms_rewrappable.py

Writes ``kms_rewrappable/``: a root key, an embedded KMS directory (``LocalKms``) and
``objects.json`` with KMS-mode objects whose wrap binds only the kind of their key reference
(docs/format.md, "KMS mode"): a per-object key (kind 3), a bucket key (kind 4), and a
per-object object rewrapped inside the KMS after a rotation (kind 3, its blob re-encrypted,
its wrapped data key unchanged). ``tests/test_known_answers.py`` decrypts them on every run.
The kinds 1 and 2 written by earlier versions are frozen in ``providers/``. The script refuses
to run if ``kms_rewrappable/`` exists.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

import sealstore
from sealstore.backends import MemoryBackend

TARGET = Path(__file__).resolve().parent / "kms_rewrappable"
CONTEXT = {"tenant": "acme", "object": "orders/2026/12.json"}
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
    kms = sealstore.LocalKms(TARGET / "kms", root_key=root, create=True)
    key_id = kms.create_key(principal=PRINCIPAL, description="known answers").key_id
    per_object = sealstore.KmsKeys(kms, key_id=key_id, principal=PRINCIPAL)
    bucket = sealstore.KmsKeys(kms, key_id=key_id, principal=PRINCIPAL, bucket_key=True)
    entries = []

    def add(name: str, data: bytes, blob: bytes) -> None:
        entries.append(
            {
                "name": name,
                "context": CONTEXT,
                "plaintext": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
                "object": base64.b64encode(blob).decode("ascii"),
            }
        )

    for name, keys, size in (("kms-kind-3", per_object, 16_385), ("kms-kind-4", bucket, 0)):
        data = plaintext(size)
        add(name, data, sealstore.encrypt(data, keys, context=CONTEXT))
    # Rewrapped inside the KMS: through a store, whose header is detached in the metadata.
    backend = MemoryBackend()
    store = sealstore.EncryptedStore(backend, per_object)
    data = plaintext(100)
    store.put("orders/2026/12.json", data, context={"tenant": "acme"})
    kms.rotate_key(key_id, principal=PRINCIPAL)
    store.rewrap("orders/2026/12.json", force=True)
    marker = backend.head("orders/2026/12.json").metadata["sealstore"]
    header = base64.b64decode(marker.removeprefix("detached:"))
    body = backend.get("orders/2026/12.json").read()
    entries.append(
        {
            "name": "kms-kind-3-rewrapped-in-the-kms",
            "context": {"tenant": "acme", "sealstore:object": "orders/2026/12.json"},
            "plaintext": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
            "object": base64.b64encode(header + body).decode("ascii"),
        }
    )
    document = {"principal": PRINCIPAL, "kms_key_id": key_id, "objects": entries}
    (TARGET / "objects.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
