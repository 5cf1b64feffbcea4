"""``python -m sealstore demo``: a short tour of the library on its embedded defaults."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence

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
    say(f"decrypted all {len(restored):,} bytes: {'identical' if restored == plaintext else 'DIFFERENT'}")

    sink = io.BytesIO()
    written = sealstore.encrypt_stream(io.BytesIO(plaintext), sink, keys)
    say(f"streamed the same bytes into a {written:,}-byte object")

    for label, attempt in [
        ("a different customer key", lambda: sealstore.decrypt(blob, sealstore.CustomerKeys(os.urandom(32)))),
        ("another expected context", lambda: sealstore.decrypt(blob, keys, context={"bucket": "other"})),
        ("one flipped bit in the body", lambda: sealstore.decrypt(_flip(blob, len(blob) // 2), keys)),
        ("a truncated object", lambda: sealstore.decrypt(blob[:-100], keys)),
    ]:
        try:
            attempt()
        except sealstore.SealstoreError as error:
            say(f"{label}: {type(error).__name__}: {error}")
        else:  # pragma: no cover - would be a security bug
            raise SystemExit(f"{label} was accepted")


def _flip(data: bytes, index: int) -> bytes:
    damaged = bytearray(data)
    damaged[index] ^= 1
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
