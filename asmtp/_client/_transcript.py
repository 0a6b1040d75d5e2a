"""The SMTP transcript of one conversation: to the ``asmtp`` logger, and to stderr on demand.

smtplib's ``set_debuglevel`` prints one connection's transcript to stderr (level 2 adds the
time); asmtp does that per connection too, never touching the global logger's level or
handlers, and also logs every connection's transcript on the ``asmtp`` logger at DEBUG when
the application enables it. Whether to write is decided once per public call (a logging
check per command would cost more than the command's own bookkeeping). AUTH data reaches
here already redacted by the core.
"""

from __future__ import annotations

import datetime
import logging
import sys

__all__ = ["Transcript", "logger"]

logger = logging.getLogger("asmtp")


class Transcript:
    """Where one conversation's lines go."""

    __slots__ = ("_on", "debuglevel")

    def __init__(self) -> None:
        self.debuglevel = 0
        self._on: bool | None = None  # decided for the public call under way

    def begin(self) -> None:
        """A public call starts: decide once whether its lines are written."""
        self._on = self.wanted()

    def end(self) -> None:
        self._on = None

    def wanted(self) -> bool:
        """Whether lines are written now (cheap: decided at the start of the call)."""
        if self._on is not None:
            return self._on
        return self.debuglevel > 0 or logger.isEnabledFor(logging.DEBUG)

    def line(self, template: str, *args: object) -> None:
        """One transcript line."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(template, *args)
        if self.debuglevel > 0:
            text = template % args
            if self.debuglevel > 1:
                text = f"{datetime.datetime.now().time()} {text}"  # smtplib's level 2
            sys.stderr.write(text + "\n")
