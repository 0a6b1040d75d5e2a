"""A conversation's transcript: the ``asmtp`` logger at DEBUG, and stderr for smtplib's
``set_debuglevel``.

Whether to log is decided once per public call (:meth:`Transcript.begin`), so a command
costs one attribute read when nobody listens. Secrets never reach it: the core gives the
loggable form of AUTH commands.
"""

from __future__ import annotations

import datetime
import logging
import sys

__all__ = ["Transcript", "logger"]

logger = logging.getLogger("asmtp")


class Transcript:
    """Where one conversation's lines go, and whether anyone wants them."""

    __slots__ = ("_on", "debuglevel")

    def __init__(self) -> None:
        self.debuglevel = 0
        """smtplib's level: 1 prints lines to stderr, 2 with the time; 0 prints nothing."""
        self._on: bool | None = None

    def begin(self) -> None:
        """A public call starts: decide, once for all its commands, whether to log."""
        self._on = self._wanted_now()

    def end(self) -> None:
        self._on = None

    def wanted(self) -> bool:
        """Whether to log: as decided when the current public call began, else now."""
        return self._on if self._on is not None else self._wanted_now()

    def _wanted_now(self) -> bool:
        return self.debuglevel > 0 or logger.isEnabledFor(logging.DEBUG)

    def line(self, template: str, *args: object) -> None:
        """One transcript line (callers check :meth:`wanted` first, to skip formatting)."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(template, *args)
        if self.debuglevel > 0:
            text = template % args
            if self.debuglevel > 1:
                text = f"{datetime.datetime.now().time()} {text}"  # smtplib's level 2
            sys.stderr.write(text + "\n")
