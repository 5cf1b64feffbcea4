"""Coverage-guided fuzzing of one target with atheris (libFuzzer).

    python -m tests.fuzz.run TARGET [--work DIR] [libFuzzer options, e.g. -runs=1000000]

The fuzzer starts from the committed seeds (``tests/fuzz/corpus/TARGET``) and reproducers
(``tests/fuzz/reproducers/TARGET``) and adds the inputs it finds interesting to ``--work``
(default ``build/fuzz/TARGET``, kept between runs). An input that makes the target raise
anything but a ``SealstoreError``, or exceed its memory bound, stops the run and is written
to ``tests/fuzz/reproducers/TARGET/``: fix the bug, keep the file as a regression input.
Every ``--memory-every``-th input (default 10; tracing every allocation makes an input some
three times slower) is handled under :mod:`tracemalloc` and must stay within the target's
memory bound; every input is held under libFuzzer's ``-rss_limit_mb``.
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "tests" / "fuzz"
DEFAULTS = ("-rss_limit_mb=1024", "-timeout=10", "-print_final_stats=1")
JSON_TARGETS = frozenset({"keyring", "local_kms_document", "audit_log"})
"""Targets that read JSON: their mutations draw on ``json.dict`` (names and edge values)."""


def main(argv: list[str]) -> None:
    """Parse the command line and fuzz the target it names until libFuzzer stops."""
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__)
    parser.add_argument("target")
    parser.add_argument("--work", type=Path, help="where new corpus inputs are kept")
    parser.add_argument("--memory-every", type=int, default=10, metavar="N")
    args, libfuzzer = parser.parse_known_args(argv)
    with atheris.instrument_imports(include=["sealstore"]):
        from tests.fuzz.targets import TARGETS, exercise  # noqa: PLC0415

    if args.target not in TARGETS:
        parser.error(f"unknown target {args.target!r}; the targets are {', '.join(TARGETS)}")
    target = TARGETS[args.target]
    work = args.work or ROOT / "build" / "fuzz" / target.name
    reproducers = FUZZ / "reproducers" / target.name
    for directory in (work, reproducers):
        directory.mkdir(parents=True, exist_ok=True)
    options = [*DEFAULTS, f"-artifact_prefix={reproducers}/", f"-max_len={target.max_len}"]
    if target.name in JSON_TARGETS:
        options.append(f"-dict={FUZZ / 'json.dict'}")
    options += libfuzzer
    corpora = [str(work), str(FUZZ / "corpus" / target.name), str(reproducers)]

    count = 0

    def one_input(data: bytes) -> None:
        nonlocal count
        count += 1
        if count % args.memory_every:
            exercise(target, data)
            return
        tracemalloc.start()
        try:
            exercise(target, data)
        finally:
            tracemalloc.stop()

    atheris.Setup([sys.argv[0], *options, *corpora], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
