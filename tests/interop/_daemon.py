"""What every private mail daemon of the interop suite needs: ports, files, probes, PIDs.

Postfix and Dovecot (``realservers.py``), Exim (``_exim.py``), OpenSMTPD (``_opensmtpd.py``)
and the OAuth stack (``_oauth.py``) all start from a short private directory, listen on
free loopback ports, are ready when every port greets, and are stopped by PID. Only the
standard library and trustme are imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

__all__ = [
    "HOST",
    "MAIL_GID",
    "MAIL_UID",
    "SOCKET_PATH_LIMIT",
    "Instance",
    "Listening",
    "Probe",
    "StartError",
    "Unavailable",
    "alive",
    "check_root",
    "free_ports",
    "logs_report",
    "make_maildir",
    "new_state_dir",
    "probe_tcp",
    "probe_unix",
    "read_pid",
    "run_daemonizing",
    "spawn",
    "status",
    "terminate",
    "wait_gone",
    "wait_until_ready",
    "write",
    "write_certificates",
]

HOST: Final = "127.0.0.1"
MAIL_UID: Final = 65534
"""Every daemon delivers as nobody:nogroup (Dovecot refuses uid 0; no system users needed)."""
MAIL_GID: Final = 65534
SOCKET_PATH_LIMIT: Final = 107

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Daemons :func:`spawn` started, by PID, kept so that :func:`terminate` can reap them."""

Probe = Callable[[], object]
"""A readiness check: returns when the service answers, raises :class:`OSError` if not."""


class Unavailable(RuntimeError):
    """The daemons cannot be installed or run here (not root, no apt, not Debian...)."""


class StartError(RuntimeError):
    """The daemons were installed but did not start; the message holds their logs."""


@dataclasses.dataclass(frozen=True)
class Instance:
    """What every started daemon offers the tests: its directory, users and CA."""

    state_dir: str
    host: str
    ca_file: str
    users: dict[str, dict[str, str]]
    """``name -> {"address", "password", "maildir"}``."""

    def address(self, name: str) -> str:
        return self.users[name]["address"]

    def password(self, name: str) -> str:
        return self.users[name]["password"]

    def maildir(self, name: str) -> Path:
        return Path(self.users[name]["maildir"])

    def client_context(self) -> ssl.SSLContext:
        """A client context that verifies against the throwaway CA only."""
        return ssl.create_default_context(cafile=self.ca_file)


@dataclasses.dataclass(frozen=True)
class Listening(Instance):
    """A daemon in the foreground with a plain (STARTTLS) port and an implicit-TLS port."""

    smtp_port: int
    smtps_port: int
    logs: dict[str, str]
    pid: int
    startup_seconds: float
    unpacked_seconds: float
    """Time spent fetching and unpacking its packages (0 when they were cached)."""


def check_root(what: str) -> None:
    """Raise :class:`Unavailable` unless this is Linux and we are root."""
    if not sys.platform.startswith("linux"):
        raise Unavailable(f"{what} needs Linux (Debian); this is {sys.platform}")
    if os.geteuid() != 0:
        raise Unavailable(
            f"{what} needs root: the daemons start as root and drop privileges "
            f"(running as uid {os.geteuid()})"
        )


def new_state_dir(prefix: str) -> Path:
    """A fresh, short, traversable directory under /tmp (Unix socket paths hold 107 bytes)."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o755)  # the daemons' unprivileged users must traverse it
    return root


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (all held at once, so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def read_pid(path: Path) -> int:
    try:
        return int(path.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def make_maildir(path: Path, mail_root: Path, uid: int = MAIL_UID, gid: int = MAIL_GID) -> None:
    """Create ``path``/{tmp,new,cur} and any missing parents below ``mail_root``, owned by uid."""
    for directory in [*reversed(path.relative_to(mail_root).parents), path.relative_to(mail_root)]:
        target = mail_root / directory
        target.mkdir(exist_ok=True)
        os.chown(target, uid, gid)
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(mode=0o700, exist_ok=True)
        os.chown(path / sub, uid, gid)


def write_certificates(tls: Path, *, names: tuple[str, ...]) -> Path:
    """A throwaway CA (``ca.pem``) and a server chain and key for ``names``; returns the CA."""
    import trustme  # the one third-party import, only needed here

    ca = trustme.CA(organization_name="asmtp interop throwaway CA")
    cert = ca.issue_cert(HOST, "localhost", *names)
    ca.cert_pem.write_to_path(str(tls / "ca.pem"))
    with (tls / "server.pem").open("wb") as chain:
        for pem in cert.cert_chain_pems:
            chain.write(pem.bytes())
    key = tls / "server.key"
    key.touch(mode=0o600)  # OpenSMTPD refuses a key readable by others
    cert.private_key_pem.write_to_path(str(key))
    return tls / "ca.pem"


def _popen(argv: Sequence[str], output: Path) -> subprocess.Popen[bytes]:
    # Output to a file, never a pipe: Dovecot keeps the launching process's stderr open,
    # and a pipe would never reach end of file.
    with output.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - the callers' fixed argument lists
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def spawn(argv: Sequence[str], output: Path) -> int:
    """Start a daemon that stays in the foreground, its output going to ``output``; its PID."""
    process = _popen(argv, output)
    _CHILDREN[process.pid] = process
    return process.pid


def run_daemonizing(argv: Sequence[str], output: Path, deadline: float) -> None:
    """Run a daemon that forks into the background; :class:`StartError` unless it exits 0."""
    process = _popen(argv, output)
    try:
        code = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise StartError(f"{argv[0]} did not daemonise in time") from None
    if code != 0:
        raise StartError(f"{' '.join(argv)} exited with status {code}")


# -- readiness ------------------------------------------------------------------------------


def _greeting(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """Read a complete 220 greeting, say QUIT and return the greeting."""
    data = b""
    while not data.endswith(b"\r\n") or data.rsplit(b"\r\n", 2)[-2][3:4] == b"-":
        more = sock.recv(4096)
        if not more:
            raise ConnectionError(f"closed after {data!r}")
        data += more
    if not data.startswith(b"220"):
        raise ConnectionError(f"greeting {data!r}")
    sock.sendall(b"QUIT\r\n")
    with contextlib.suppress(OSError):
        sock.recv(4096)
    return data


def probe_tcp(port: int, context: ssl.SSLContext | None = None) -> bytes:
    """The greeting on ``port`` (through TLS when ``context`` is given)."""
    with socket.create_connection((HOST, port), timeout=2.0) as raw:
        if context is None:
            return _greeting(raw)
        with context.wrap_socket(raw, server_hostname=HOST) as tls:
            return _greeting(tls)


def probe_unix(path: str, *, greets: bool = True) -> bytes:
    """The greeting on the Unix socket ``path``; with ``greets=False`` only connect."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        sock.connect(path)
        return _greeting(sock) if greets else b""


def wait_until_ready(
    probes: Mapping[str, Probe],
    deadline: float,
    budget: float,
    *,
    running: Callable[[], bool] = lambda: True,
) -> None:
    """Poll each probe until it succeeds; :class:`StartError` once ``deadline`` passes or
    as soon as ``running()`` says the daemon has exited."""
    for name, probe in probes.items():
        while True:
            try:
                probe()
                break
            except (OSError, ConnectionError) as exc:
                if not running():
                    raise StartError(f"exited before {name} answered: {exc!r}") from exc
                if time.monotonic() > deadline:
                    raise StartError(f"{name} not answering after {budget:.0f} s: {exc!r}") from exc
                time.sleep(0.05)


def status(probes: Mapping[str, Probe]) -> dict[str, str]:
    """Each service's state: ``"ok"`` or why not."""
    return {name: _state_of(probe) for name, probe in probes.items()}


def _state_of(probe: Probe) -> str:
    try:
        probe()
    except (OSError, ConnectionError) as exc:
        return f"down: {exc!r}"
    return "ok"


def logs_report(logs: Mapping[str, str], lines: int = 40) -> str:
    """The last ``lines`` lines of each log, for a start-up failure's message."""
    parts = []
    for name, path in logs.items():
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            text = f"(unreadable: {exc})"
        tail = "\n".join(text.splitlines()[-lines:])
        parts.append(f"--- {name}: {path} (last {lines} lines)\n{tail}")
    return "\n".join(parts)


# -- stopping -------------------------------------------------------------------------------


def alive(pid: int, name: str) -> bool:
    """Whether ``pid`` is running and is ``name``'s process (guards against a reused pid)."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    # "pid (comm) state ...": a zombie has exited, whoever is to reap it.
    comm, _, rest = stat.partition(" (")[2].rpartition(") ")
    return name in comm and not rest.startswith(("Z", "X"))


def wait_gone(pid: int, name: str, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while alive(pid, name):
        if time.monotonic() > until:
            return False
        time.sleep(0.02)
    return True


def terminate(pid: int, name: str, seconds: float, log: Callable[[str], None]) -> None:
    """SIGTERM the process ``pid`` if it is ``name``'s; SIGKILL it after ``seconds``."""
    if alive(pid, name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, name, seconds):
            log(f"{name} {pid} did not stop; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=seconds)  # reap it: no zombie, no ResourceWarning
