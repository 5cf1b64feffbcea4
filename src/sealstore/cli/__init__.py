"""The ``sealstore`` command line (extra ``cli``: typer and rich).

Run ``sealstore --help``; the commands are described in the docs' CLI page. Its
dependencies are imported only when the command runs, never by ``import sealstore``.
"""

from __future__ import annotations

from typing import NoReturn


def main() -> NoReturn:
    """The ``sealstore`` console script."""
    from sealstore.cli.app import main as run_main  # noqa: PLC0415 - typer and rich, on use

    run_main()
