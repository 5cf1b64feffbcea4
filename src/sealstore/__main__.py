"""``python -m sealstore demo``: a short tour of the library on its embedded defaults."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Sequence

import sealstore


def demo(out: io.TextIOBase | None = None) -> None:
    """Encrypt an object, read a range of it, decrypt it, and show the errors a reader meets."""

    def say(line: str) -> None:
        print(line, file=out or sys.stdout)

    keys = sealstore.CustomerKeys(os.urandom(32))
    plaintext = b"".join(f"line {i:06d}\n".encode() for i in range(20_000))
    context = {"bucket": "demo", "object": "lines.txt"}
    blob = sealstore.encrypt(plaintext, keys, context=context)
    say(f"encrypted {len(plaintext):,} bytes with a customer key into {len(blob):,} bytes")

    with sealstore.open_decrypted(io.BytesIO(blob), keys, context=context) as reader:
        reader.seek(12 * 15_000)
        line = reader.read(12)
        say(
            f"ranged read at offset {12 * 15_000:,}: {line!r} "
            f"({reader.chunks_decrypted} of {len(plaintext) // 16384 + 1} chunks decrypted)"
        )

    restored = sealstore.decrypt(blob, keys, context=context)
    verdict = "identical" if restored == plaintext else "DIFFERENT"
    say(f"decrypted all {len(restored):,} bytes: {verdict}")

    sink = io.BytesIO()
    written = sealstore.encrypt_stream(io.BytesIO(plaintext), sink, keys)
    say(f"streamed the same bytes into a {written:,}-byte object")

    other_keys = sealstore.CustomerKeys(os.urandom(32))
    attempts: list[tuple[str, Callable[[], bytes]]] = [
        ("a different customer key", lambda: sealstore.decrypt(blob, other_keys)),
        ("another context", lambda: sealstore.decrypt(blob, keys, context={"bucket": "x"})),
        ("one flipped bit in the body", lambda: sealstore.decrypt(_flip(blob), keys)),
        ("a truncated object", lambda: sealstore.decrypt(blob[:-100], keys)),
    ]
    for label, attempt in attempts:
        say(f"{label}: {_refusal(attempt)}")


def _refusal(attempt: Callable[[], bytes]) -> str:
    try:
        attempt()
    except sealstore.SealstoreError as error:
        return f"{type(error).__name__}: {error}"
    raise SystemExit("a damaged or mismatched object was accepted")  # pragma: no cover


def _flip(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 1
    return bytes(damaged)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sealstore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run a short tour on the embedded defaults")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
