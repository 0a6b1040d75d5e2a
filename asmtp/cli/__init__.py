"""The ``asmtp`` command: ``send``, ``bulk``, ``unpack`` and ``sink`` (``pip install 'asmtp[cli]'``).

:func:`main` is the console script and ``python -m asmtp``. It imports click only when
run, so that without the ``cli`` extra it says what to install instead of failing with a
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the ``asmtp`` command line with ``argv`` (default: ``sys.argv[1:]``) and exit."""
    try:
        from ._app import cli
    except ImportError as exc:
        if exc.name not in ("click", "aiosmtpd", "trustme", "jinja2", "markupsafe", "rich"):
            raise
        print(
            f"asmtp: the command line needs {exc.name}: pip install 'asmtp[cli]'",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.exit(cli.main(argv, prog_name="asmtp", standalone_mode=False))
