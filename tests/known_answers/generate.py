"""Write the frozen format version 1 objects in ``v1.json``. Run once; never again.

    python tests/known_answers/generate.py

The objects were made by this script when format version 1 was specified and are kept
exactly as written: ``tests/test_known_answers.py`` decrypts them on every run, so a
sealstore that can no longer read them fails its tests. Regenerating them would defeat that
purpose, so this script refuses to overwrite an existing file. If a later format version
needs frozen objects, write them to a new file (``v2.json``) with a new script.

Each entry records a fresh random customer key, the encryption context (or null), how to
rebuild the plaintext and its SHA-256, and the object in base64.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from pathlib import Path

import sealstore

TARGET = Path(__file__).resolve().parent / "v1.json"
RECIPE = "bytes(i % 251 for i in range(size))"
SIZES = [0, 1, 16384, 16385, 102400 + 7]
CONTEXT = {"tenant": "acme", "object": "reports/2026/q3.csv", "région": "eu-west-3", "a": ""}


def plaintext(size: int) -> bytes:
    """The plaintext of ``size`` bytes that ``RECIPE`` describes."""
    return bytes(i % 251 for i in range(size))


def entries() -> list[dict[str, object]]:
    """One entry per size, each without and with an encryption context."""
    result: list[dict[str, object]] = []
    for size in SIZES:
        data = plaintext(size)
        for context in (None, CONTEXT):
            key = os.urandom(32)
            blob = sealstore.encrypt(data, sealstore.CustomerKeys(key), context=context)
            result.append(
                {
                    "name": f"customer-{size}-bytes-{'with' if context else 'no'}-context",
                    "customer_key": key.hex(),
                    "context": context,
                    "plaintext": {
                        "recipe": RECIPE,
                        "size": size,
                        "sha256": hashlib.sha256(data).hexdigest(),
                    },
                    "object": base64.b64encode(blob).decode("ascii"),
                }
            )
    return result


def main() -> int:
    try:
        with TARGET.open("x", encoding="utf-8") as out:
            json.dump(entries(), out, indent=1, ensure_ascii=False)
            out.write("\n")
    except FileExistsError:
        sys.stderr.write(f"{TARGET} exists: frozen objects are never regenerated\n")
        return 1
    sys.stdout.write(f"wrote {TARGET}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
