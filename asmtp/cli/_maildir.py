"""Delivery into a Maildir: written in ``tmp/``, synced, then renamed into ``new/``.

The Maildir rule (https://cr.yp.to/proto/maildir.html): a reader sees a message in
``new/`` whole or not at all, since a rename is atomic, and whatever a crash leaves
behind stays in ``tmp/``, which readers ignore. Messages are stored with LF line endings,
as mail readers expect in a Maildir, after a ``Return-Path`` and one ``Delivered-To`` line
per envelope recipient, so Bcc recipients are visible in the stored copy.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from pathlib import Path

__all__ = ["Maildir"]


class Maildir:
    """A Maildir at ``path`` (``tmp``, ``new`` and ``cur`` are created when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in ("tmp", "new", "cur"):
            (path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        # Maildir names must not hold "/" or ":" (the flags separator).
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def deliver(self, sender: str, recipients: tuple[str, ...], raw: bytes) -> Path:
        """Store one message; the path of its file in ``new/``."""
        trace = f"Return-Path: <{sender}>\r\n".encode()
        trace += b"".join(f"Delivered-To: {each}\r\n".encode() for each in recipients)
        content = (trace + raw).replace(b"\r\n", b"\n")
        name = self._unique_name()
        temporary = self.path / "tmp" / name
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600
        )
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            final = self.path / "new" / name
            os.rename(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return final

    def _unique_name(self) -> str:
        with self._lock:
            count = next(self._counter)
        now = time.time()
        seconds = int(now)
        micro = int((now - seconds) * 1_000_000)
        return f"{seconds}.M{micro}P{os.getpid()}Q{count}.{self._host}"
