"""Real proxies in front of the interop suite's Postfix: microsocks, Dante and tinyproxy.

Debian 12's packages, installed with apt (they conflict with nothing and start no service:
``tinyproxy-bin`` is the binary without the package that runs it as a service), and run
in the foreground from one private directory with their own configuration and logs:

- microsocks (SOCKS5) with a user name and password, which it checks itself
  (``-u``/``-P``; Dante's username method would need a system account);
- Dante's ``danted`` (SOCKS4 and SOCKS5, no authentication), allowed to connect to
  127.0.0.1 and ``localhost`` only. Dante 1.4 has no SOCKS4a: it dials the placeholder
  address 0.0.0.1 instead of the name, so SOCKS4a is proved against the test kit's proxy;
- tinyproxy (HTTP CONNECT) with Basic credentials, CONNECT allowed to Postfix's ports only.

All three listen on :data:`PROXY_HOST` (127.0.0.2), an address on none of the names of
Postfix's certificate, so a client that checked the proxy's name instead of the server's
would fail. Each logs what it was asked (microsocks the destination as it received it, a
name or an address), which the tests read. They are stopped by PID.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from interop import _daemon, _debs
from interop._daemon import MAIL_GID, MAIL_UID, StartError
from interop.realservers import Servers

__all__ = ["PACKAGES", "PASSWORD", "PROXY_HOST", "USER", "Proxies", "start", "stop"]

PACKAGES: Final = ("microsocks", "dante-server", "tinyproxy-bin")
PROXY_HOST: Final = "127.0.0.2"
USER: Final = "relay-user"
PASSWORD: Final = "Pr0xy-pa55-n0t-for-logs"
STARTUP_BUDGET: Final = 20.0
STOP_BUDGET: Final = 10.0

_NAMES: Final = {"microsocks": "microsocks", "dante": "danted", "tinyproxy": "tinyproxy"}
"""Each proxy's process name, as ``_daemon.alive`` checks it."""


@dataclasses.dataclass(frozen=True)
class Proxies:
    """The running proxies: ports on :data:`PROXY_HOST`, PIDs, and their logs
    (``microsocks``, ``dante``, ``tinyproxy``)."""

    state_dir: str
    microsocks_port: int
    dante_port: int
    tinyproxy_port: int
    blocked_port: int
    """A Postfix-less port tinyproxy refuses CONNECT to (403) and Dante to (not allowed)."""
    pids: dict[str, int]
    logs: dict[str, str]
    startup_seconds: float

    def url(self, scheme: str, password: str | None = PASSWORD) -> str:
        """The URL of the proxy that speaks ``scheme`` (with the user where it has one)."""
        if scheme.startswith("socks5") and password is not None:
            return f"{scheme}://{USER}:{password}@{PROXY_HOST}:{self.microsocks_port}"
        if scheme.startswith("socks"):
            return f"{scheme}://{PROXY_HOST}:{self.dante_port}"
        login = f"{USER}:{password}@" if password is not None else ""
        return f"{scheme}://{login}{PROXY_HOST}:{self.tinyproxy_port}"

    def log_text(self) -> str:
        """Everything the three proxies have logged so far."""
        return "\n".join(
            Path(path).read_text(encoding="utf-8", errors="replace")
            for path in self.logs.values()
            if Path(path).exists()
        )


def _dante_conf(root: Path, port: int) -> str:
    rule = "    command: connect\n    protocol: tcp\n    log: error connect disconnect\n"
    return f"""\
# Private Dante for asmtp's interop tests (_proxies.py): SOCKS4/5 on loopback only.
logoutput: {root}/log/danted.log
internal: {PROXY_HOST} port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
    log: error connect disconnect
}}
socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.1/32
{rule}}}
socks pass {{
    from: 127.0.0.0/8 to: localhost
{rule}}}
"""


def _tinyproxy_conf(root: Path, port: int, allowed: list[int]) -> str:
    connect_ports = "".join(f"ConnectPort {each}\n" for each in allowed)
    return f"""\
# Private tinyproxy for asmtp's interop tests (_proxies.py): CONNECT to Postfix only.
User nobody
Group nogroup
Port {port}
Listen {PROXY_HOST}
Timeout 30
LogFile "{root}/log/tinyproxy.log"
LogLevel Info
MaxClients 20
Allow 127.0.0.0/8
BasicAuth {USER} {PASSWORD}
DisableViaHeader Yes
{connect_ports}"""


def _probe(port: int) -> Callable[[], object]:
    def probe() -> object:
        with socket.create_connection((PROXY_HOST, port), timeout=2.0):
            return b""

    return probe


def start(servers: Servers, log: Callable[[str], None] = print) -> Proxies:
    """Install the proxies if missing and start them in front of ``servers``' Postfix.

    Raises :class:`~interop._daemon.Unavailable` when this host cannot run them and
    :class:`StartError`, holding their logs, when they do not come up in time.
    """
    _daemon.check_root("The proxies")
    installed = _debs.install(PACKAGES, log)
    if installed:
        log(f"installed {' '.join(installed)}")
    began = time.monotonic()
    root = _daemon.new_state_dir("asmtp-px-")
    (root / "etc").mkdir()
    (root / "log").mkdir(mode=0o755)
    micro, dante, tiny, blocked = _daemon.free_ports(4)
    logs = {name: str(root / "log" / f"{name}.log") for name in _NAMES}
    for path in logs.values():
        Path(path).touch(mode=0o644)
    os.chown(logs["tinyproxy"], MAIL_UID, MAIL_GID)  # it writes its log as nobody
    _daemon.write(root / "etc" / "danted.conf", _dante_conf(root, dante))
    allowed = [servers.smtp_port, servers.submission_port, servers.submissions_port]
    _daemon.write(root / "etc" / "tinyproxy.conf", _tinyproxy_conf(root, tiny, allowed))
    argv = {
        "microsocks": [
            "/usr/bin/microsocks",
            *("-i", PROXY_HOST, "-p", str(micro), "-u", USER, "-P", PASSWORD),
        ],
        "dante": [
            "/usr/sbin/danted",
            *("-f", str(root / "etc" / "danted.conf"), "-p", str(root / "danted.pid")),
        ],
        "tinyproxy": ["/usr/bin/tinyproxy", "-d", "-c", str(root / "etc" / "tinyproxy.conf")],
    }
    pids: dict[str, int] = {}
    proxies = Proxies(
        state_dir=str(root),
        microsocks_port=micro,
        dante_port=dante,
        tinyproxy_port=tiny,
        blocked_port=blocked,
        pids=pids,
        logs=logs,
        startup_seconds=0.0,
    )
    # microsocks logs to stdout, the others to their own files (their stdout: start-up errors).
    for name, command in argv.items():
        output = logs[name] if name == "microsocks" else str(root / "log" / f"{name}.out")
        pids[name] = _daemon.spawn(command, Path(output))
    ports = {"microsocks": micro, "dante": dante, "tinyproxy": tiny}
    probes = {f"{name} on {PROXY_HOST}:{port}": _probe(port) for name, port in ports.items()}
    try:
        _daemon.wait_until_ready(
            probes,
            began + STARTUP_BUDGET,
            STARTUP_BUDGET,
            running=lambda: all(_daemon.alive(pid, _NAMES[n]) for n, pid in pids.items()),
        )
    except StartError as exc:
        outputs = {f"{name}.out": str(root / "log" / f"{name}.out") for name in ports}
        report = _daemon.logs_report({**logs, **outputs})
        stop(proxies, log)
        raise StartError(f"{exc}\n{report}") from exc
    proxies = dataclasses.replace(proxies, startup_seconds=round(time.monotonic() - began, 3))
    log(f"proxies started in {proxies.startup_seconds:.2f} s on {PROXY_HOST}: {ports}")
    return proxies


def stop(proxies: Proxies, log: Callable[[str], None] = print) -> None:
    """SIGTERM each proxy this instance started (Dante's children exit with their parent)."""
    for name, pid in proxies.pids.items():
        _daemon.terminate(pid, _NAMES[name], STOP_BUDGET, log)
