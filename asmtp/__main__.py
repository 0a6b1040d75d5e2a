"""``python -m asmtp``: the command line (see :mod:`asmtp.cli`)."""

from __future__ import annotations

from asmtp.cli import main

if __name__ == "__main__":
    main()
