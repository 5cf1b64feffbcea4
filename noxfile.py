"""Development sessions: ``nox -s tests lint typecheck`` is the full check."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "lint", "typecheck"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _group(name: str) -> list[str]:
    return nox.project.dependency_groups(PYPROJECT, name)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage; without arguments, the tests marked slow
    (transfers of 1 GiB) are left out: `nox -s tests -- -m slow` runs them."""
    session.install("-e", ".", *_group("test"))
    session.run(
        "pytest",
        "--cov=sealstore",
        "--cov-branch",
        "--cov-report=term",
        *(session.posargs or ["-m", "not slow"]),
    )


FUZZ_TARGETS = (
    "header",
    "placement",
    "keyring",
    "local_kms_document",
    "local_kms_blob",
    "audit_log",
    "kms_key_ref",
    "decrypt",
)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Coverage-guided fuzzing of every parser, then the property tests with more examples.

    ``SEALSTORE_FUZZ_RUNS`` inputs per atheris target (default 1,000,000); positional
    arguments name the targets to fuzz (default: all). ``SEALSTORE_FUZZ_SCALE`` multiplies
    the property tests' examples (default 50; 0 skips them).
    """
    session.install("-e", ".", *_group("test"))
    runs = os.environ.get("SEALSTORE_FUZZ_RUNS") or "1000000"
    for target in session.posargs or FUZZ_TARGETS:
        session.run("python", "-m", "tests.fuzz.run", target, f"-runs={runs}")
    scale = os.environ.get("SEALSTORE_FUZZ_SCALE") or "50"
    if scale != "0":
        session.run(
            "pytest",
            "tests/test_properties.py",
            "-p",
            "no:cacheprovider",
            env={"SEALSTORE_FUZZ_SCALE": scale},
        )


CRASH_TESTS = (
    "tests/test_store_crash.py",
    "tests/test_keyring_crash.py",
    "tests/test_local_kms_crash.py",
    "tests/test_audit_crash.py",
    "tests/test_bulk_crash.py",
)


@nox.session
def crash(session: nox.Session) -> None:
    """The crash tests with many SIGKILLs each (SEALSTORE_CRASH_KILLS, default 200)."""
    session.install("-e", ".", *_group("test"))
    kills = os.environ.get("SEALSTORE_CRASH_KILLS") or "200"
    session.run(
        "pytest",
        *CRASH_TESTS,
        "-p",
        "no:cacheprovider",
        "-rP",  # each test's line of kills survived
        "--durations=0",
        *session.posargs,
        env={"SEALSTORE_CRASH_KILLS": kills},
    )


@nox.session
def soak(session: nox.Session) -> None:
    """Four processes writing, reading, rotating and rewrapping one store, on the file
    system and on SeaweedFS (SEALSTORE_SOAK_SECONDS per backend, default 60)."""
    session.install("-e", ".", *_group("test"))
    seconds = os.environ.get("SEALSTORE_SOAK_SECONDS") or "60"
    session.run("python", "-m", "tests.soak", "--seconds", seconds, *session.posargs)


@nox.session
def fleet(session: nox.Session) -> None:
    """Hosts as separate processes sharing one SeaweedFS bucket, with managed keys in its
    keyring, then with KMS keys from one OpenBao; then checked (SEALSTORE_FLEET_SECONDS per
    mode, default 60; SEALSTORE_FLEET_HOSTS, default 4)."""
    session.install("-e", ".", *_group("test"))
    seconds = os.environ.get("SEALSTORE_FLEET_SECONDS") or "60"
    hosts = os.environ.get("SEALSTORE_FLEET_HOSTS") or "4"
    session.run(
        "python", "-m", "tests.fleet", "--seconds", seconds, "--hosts", hosts, *session.posargs
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src, tests and benchmarks."""
    session.install("-e", ".", *_group("typecheck"))
    session.run("mypy", "--strict")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs --strict."""
    session.install(*_group("docs"))
    session.run("mkdocs", "build", "--strict", "--site-dir", "build/site")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: figures and ratios against baselines measured in the same run."""
    session.install("-e", ".", *_group("bench"))
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(name="bench-peers")
def bench_peers(session: nox.Session) -> None:
    """sealstore against Tink, the AWS Encryption SDK and Fernet, in one process."""
    session.install("-e", ".", *_group("bench-peers"))
    session.run("python", "benchmarks/peers.py", *session.posargs)
