"""Every ```python example in the README and the docs runs against the current code.

Blocks of one page run in order in one namespace, in a fresh working directory, so a page can
build on its earlier examples. Fragments that are not meant to run (a signature, a program that
needs AWS credentials) are fenced as ```py instead.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


_S3_PAGES = frozenset({"fleet.md"})
"""Pages whose examples build ``boto3.client("s3")`` from the standard AWS settings: they run
against the session's SeaweedFS, which those settings point to."""


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The page's Python examples run without error, in order."""
    blocks = _BLOCK.findall(page.read_text(encoding="utf-8"))
    if page.name in _S3_PAGES:
        monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("seaweedfs_server"))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEALSTORE_ROOT_KEY", base64.b64encode(os.urandom(32)).decode())
    (tmp_path / "big.bin").write_bytes(os.urandom(100_000))
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for number, block in enumerate(blocks):
        code = compile(block, f"{page.name} example {number + 1}", "exec")
        exec(code, namespace)  # noqa: S102 - running our own documentation is the point


def test_some_pages_have_examples() -> None:
    """The example runner finds examples (so a change of fence style cannot silence it)."""
    assert sum(len(_BLOCK.findall(page.read_text(encoding="utf-8"))) for page in PAGES) > 20
