"""Running the ``asmtp`` command in-process (click's runner) or as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from click.testing import CliRunner

from asmtp.cli._app import cli

ROOT: Final = Path(__file__).resolve().parents[2]
TIMEOUT: Final = 60.0

FILES: Final[dict[str, bytes]] = {
    "a-notes.txt": b"plain ASCII notes\nsecond line\n",
    "b-caf\u00e9.txt": "caf\u00e9 cr\u00e8me, UTF-8 text\n".encode(),
    "c-latin1.txt": "d\u00e9j\u00e0 vu in Latin-1\n".encode("latin-1"),
    "d-image.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40,
    "e-archive.tar.gz": b"\x1f\x8b\x08\x00" + bytes(range(255, -1, -1)) * 3,
    "f-data.unknownext": b"\x00\x01\x02 no known type\r\n\r\n.\r\n",
    "g-empty.bin": b"",
    "h-crlf.txt": b"line\r\nwith CRLF\r\n.\r\nand a lone dot above\r\n",
}
"""A directory's worth of files covering the charsets and types the composer handles."""


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.splitlines()


def invoke(
    args: Sequence[str],
    *,
    stdin: bytes | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Result:
    """Run ``asmtp ARGS`` in this process through click's runner (the real command group).

    ``env`` sets variables for the run (``None`` unsets one)."""
    runner = CliRunner()
    # Exceptions are not caught: a traceback is a bug, and must fail the test as one.
    result = runner.invoke(
        cli, list(args), input=stdin, env=dict(env or {}), prog_name="asmtp", catch_exceptions=False
    )
    return Result(result.exit_code, result.stdout, result.stderr)


def environment(**extra: str) -> dict[str, str]:
    """This environment, with this tree first on the path and ``extra`` variables."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def run(
    args: Sequence[str],
    *,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """Run ``python -m asmtp ARGS`` as a process of its own."""
    done = subprocess.run(  # noqa: S603 - our interpreter and our module
        [sys.executable, "-m", "asmtp", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=environment(**(env or {})),
        cwd=cwd,
        timeout=TIMEOUT,
        check=False,
    )
    return Result(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def make_files(directory: Path, files: Mapping[str, bytes] = FILES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return directory
