"""A private Redis on loopback for the distributed campaign tests, and taskiq workers.

Debian's ``redis-server`` is installed on demand (root, apt-get, as the interop suite
installs Postfix) and run from a private directory: its own port, its data in an
append-only file synced at every write, so stopping and starting it again (as the
outage test does) keeps every key. Workers are ``taskiq worker`` processes on
:mod:`asmtp.campaign.distributed.app`, each in a process group of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
SERVER: Final = "/usr/bin/redis-server"
START_TIMEOUT: Final = 10.0


class RedisUnavailable(Exception):
    """redis-server is not installed and cannot be."""


def ensure_installed() -> None:
    """Install Debian's redis-server when it is missing (root with apt-get)."""
    if Path(SERVER).exists():
        return
    if not sys.platform.startswith("linux") or shutil.which("apt-get") is None:
        raise RedisUnavailable("redis-server is not installed and there is no apt-get here")
    if os.geteuid() != 0:
        raise RedisUnavailable("redis-server is not installed and installing needs root")
    from interop import _debs  # the suite's apt-get, locked against parallel installs

    _debs.install(["redis-server"], lambda line: None)
    if not Path(SERVER).exists():
        raise RedisUnavailable(f"apt-get installed redis-server but {SERVER} is missing")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """``redis-server`` on 127.0.0.1 with its data in ``directory``; :meth:`stop` and
    :meth:`start` again keep the data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        config = directory / "redis.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\ndaemonize no\n"
            'save ""\nappendonly yes\nappendfsync always\nlogfile redis.log\n',
            encoding="utf-8",
        )
        self.config = config

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and our config
            [SERVER, str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RedisUnavailable(f"redis-server did not start: see {self.directory}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Shut it down (SIGTERM: it writes what it holds and exits)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT)
        self.process = None


class Workers:
    """``taskiq worker`` processes for :mod:`asmtp.campaign.distributed.app`."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.environment = {**os.environ, **environment, "PYTHONPATH": path}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, log: Path, *, command: bool = False) -> subprocess.Popen[bytes]:
        """One more worker process (taskiq's manager with one child); its output to ``log``.

        ``command``: started as ``asmtp bulk worker`` (which runs taskiq's) instead of
        ``taskiq worker`` itself."""
        options = ["--log-level", "WARNING", "--shutdown-timeout", "10"]
        if command:
            argv = [
                *("-m", "asmtp", "bulk", "worker"),
                *("--redis", self.environment["ASMTP_REDIS_URL"]),
                *("--smtp", self.environment["ASMTP_SMTP_URL"]),
                *("--connections", self.environment["ASMTP_CONNECTIONS"], "--", *options),
            ]
        else:
            argv = [
                *("-m", "taskiq", "worker", "asmtp.campaign.distributed.app:broker"),
                *("--workers", "1", "--max-async-tasks", "2", *options),
            ]
        with log.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603 - our interpreter, our or taskiq's module
                [sys.executable, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environment,
                start_new_session=True,
            )
        self.processes.append(process)
        self.logs.append(log)
        return process

    def child(self, process: subprocess.Popen[bytes]) -> int | None:
        """The pid of the process that runs the jobs (taskiq's manager forks it)."""
        try:
            found = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
        except OSError:
            return None
        pids = [int(pid) for pid in found.split()]
        return pids[0] if pids else None

    def stop(self) -> None:
        """SIGTERM to each worker's group (manager and child); SIGKILL what is left."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
