"""A griffe extension that turns the reStructuredText in sealstore's docstrings into Markdown.

The docstrings are written for ``help()`` and doctest: Sphinx roles (``:class:`~x.Y```),
literal blocks after ``::`` and bare ``>>>`` examples. mkdocstrings renders Markdown, where
those show as stray colons and block quotes, so each docstring is rewritten once the package
is loaded: a role becomes a cross-reference (resolved in the docstring's scope, and optional,
so a reference to an object the reference pages do not render stays plain code), and every
example becomes a fenced, highlighted block. The source docstrings stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):`(~?)([^`]+)`")


class RstDocstrings(griffe.Extension):
    """Rewrite every docstring of a package when the package has been loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Convert the docstrings of ``pkg`` and of everything it defines."""
        _convert_tree(pkg)


def _convert_tree(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        obj.docstring.value = to_markdown(obj.docstring.value, obj)
    for member in obj.members.values():
        if not member.is_alias:
            _convert_tree(member)  # type: ignore[arg-type]


def to_markdown(text: str, scope: griffe.Object) -> str:
    """``text`` (a cleaned docstring) with its literal blocks fenced and its roles linked."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.rstrip()
        if stripped.endswith("::"):
            head = stripped[:-2].rstrip()
            if head:
                out.append(_roles(head + ":", scope))
            index = _literal_block(lines, index + 1, _indent(line), out)
        elif line.lstrip().startswith(">>>"):
            index = _doctest_block(lines, index, out)
        else:
            out.append(_roles(line, scope))
            index += 1
    return "\n".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _literal_block(lines: list[str], start: int, base: int, out: list[str]) -> int:
    """Fence the block indented under a ``::`` line; return the index after it."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    block = lines[start:end]
    while block and not block[-1].strip():
        block.pop()
    body = [line for line in block if line.strip()]
    if not body:
        return start
    margin = min(_indent(line) for line in body)
    code = [line[margin:] for line in block]
    while code and not code[0].strip():
        code.pop(0)
    _fence(code, out, pad=" " * base)
    return end


def _doctest_block(lines: list[str], start: int, out: list[str]) -> int:
    """Fence a doctest example (up to the next blank line); return the index after it."""
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    margin = _indent(lines[start])
    _fence([line[margin:] for line in lines[start:end]], out, pad=" " * margin)
    return end


def _fence(code: list[str], out: list[str], *, pad: str) -> None:
    if out and out[-1].strip():
        out.append("")
    out.append(f"{pad}```{_language(code)}")
    out.extend(f"{pad}{line}" if line else "" for line in code)
    out.append(f"{pad}```")
    out.append("")


def _language(code: list[str]) -> str:
    if code[0].startswith(">>>"):
        return "pycon"
    try:
        compile("\n".join(code), "<docstring>", "exec")
    except SyntaxError:
        return "text"
    return "python"


def _roles(line: str, scope: griffe.Object) -> str:
    def link(match: re.Match[str]) -> str:
        short, target = match.group(1) == "~", match.group(2)
        title = target.rsplit(".", 1)[-1] if short else target
        return (
            f'<autoref identifier="{_resolve(target, scope)}" optional>'
            f"<code>{title}</code></autoref>"
        )

    return _ROLE.sub(link, line)


def _resolve(target: str, scope: griffe.Object) -> str:
    """The full path of ``target`` as Python would find it from ``scope``."""
    if target.startswith("."):  # relative to the package, as in an import
        return scope.module.path + target
    first, dot, rest = target.partition(".")
    if first == scope.module.package.name:
        return target
    for owner in (scope, scope.parent):
        if owner is not None and owner.is_class and first in owner.all_members:
            return f"{owner.path}.{first}{dot}{rest}"  # inherited members too
    try:
        return scope.resolve(first) + dot + rest
    except griffe.NameResolutionError:
        return target
