"""The API reference (docs/reference, rendered by mkdocstrings) documents every public name.

The pages name modules and objects with ``::: path`` lines; a module is rendered with the
names in its ``__all__`` (unless its options say ``members: false``). A name added to
``sealstore.__all__`` without a place in the reference fails here rather than going
undocumented.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import sealstore

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference"
_DIRECTIVE = re.compile(r"^::: (\S+)\n((?:    .*\n)*)", re.MULTILINE)
"""A ``::: path`` line and the indented options under it."""


def _resolve(path: str) -> object:
    """The module or object a ``::: path`` line names."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            found = getattr(found, name)
        return found
    raise AssertionError(f"{path} names nothing importable")


def _rendered() -> list[object]:
    """Every object the reference pages render."""
    objects: list[object] = []
    for page in sorted(REFERENCE.glob("*.md")):
        for path, options in _DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            found = _resolve(path)
            objects.append(found)
            if isinstance(found, ModuleType) and "members: false" not in options:
                objects.extend(getattr(found, name) for name in getattr(found, "__all__", ()))
    return objects


def test_every_public_name_is_in_the_reference() -> None:
    """Each name in ``sealstore.__all__`` is rendered on some reference page."""
    rendered = _rendered()
    missing = [
        name
        for name in sealstore.__all__
        if name != "__version__"
        and not any(getattr(sealstore, name) is found for found in rendered)
    ]
    assert missing == []
