"""``python -m sealstore``: the ``sealstore`` command (extra ``cli``).

Without the extra, only ``demo`` runs (it needs nothing but the library); any other command
says how to install the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sealstore.cli.tour import demo

__all__ = ["demo", "main"]

_CLI_DEPENDENCIES = frozenset({"typer", "click", "rich"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from sealstore.cli.app import run  # noqa: PLC0415 - the cli extra may be missing
    except ModuleNotFoundError as missing:
        if missing.name not in _CLI_DEPENDENCIES:
            raise
        if args == ["demo"]:
            demo()
            return 0
        sys.stderr.write(
            f"sealstore: error: the command line needs {missing.name}: "
            "pip install 'sealstore[cli]' (only 'python -m sealstore demo' runs without it)\n"
        )
        return 2
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
