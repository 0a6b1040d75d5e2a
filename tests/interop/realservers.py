#!/usr/bin/env python3
"""A private Postfix and Dovecot on loopback, for asmtp's interop tests.

Runs as a script::

    python tests/interop/realservers.py install          # root, Debian: apt-get what is missing
    python tests/interop/realservers.py start [--dir DIR] # prints the state file's path
    python tests/interop/realservers.py status --dir DIR
    python tests/interop/realservers.py stop --dir DIR

or as a module (the pytest fixture in ``conftest.py``): :func:`install`, :func:`start`,
:func:`stop`, :func:`load`.

Everything lives in one short private state directory (Unix socket paths hold 107 bytes):
Postfix runs as ``postfix -c DIR/postfix`` with its own ``main.cf``, ``master.cf``, queue and
data directories; Dovecot as ``dovecot -c DIR/dovecot/dovecot.conf`` with its own
``base_dir``. ``/etc/postfix`` and ``/etc/dovecot`` are never read for configuration nor
written. Servers listen on 127.0.0.1 only, on free ports picked at start:

- ``smtp_port``: Postfix smtpd as an MX: STARTTLS offered, PIPELINING, SIZE, 8BITMIME,
  SMTPUTF8, DSN, ENHANCEDSTATUSCODES, CHUNKING; delivers to the Maildirs of the virtual
  users of ``example.test`` (no system users), refusing unknown users at RCPT (550)
  and ``busy@example.test`` with a transient 450.
- ``trace_port``: the same MX with verbose logging of each session (``debug_peer_list``),
  whose reads, commands and replies show PIPELINING and CHUNKING at work.
- ``submission_port``: STARTTLS required, then AUTH through Dovecot's SASL socket.
- ``submissions_port``: the same behind implicit TLS.
- ``lmtp_port`` and ``lmtp_socket``: Dovecot LMTP into the same Maildirs; unknown users are
  refused at RCPT, and ``small@example.test`` has a 1 KiB quota, so a larger message is
  refused for it after DATA while other recipients get it.
- ``oauth_submission_port``: submission again, its AUTH answered through
  ``oauth_sasl_socket`` by the OAuth stack's own Dovecot, which ``_oauth.py`` starts.
- ``dkim_port``: the MX again, each message passed to the OpenDKIM milter on
  ``dkim_milter_socket`` (started by ``_opendkim.py``), which adds its verdict as an
  Authentication-Results field; without the milter the port answers 451, never delivers
  unverified.

Certificates come from a throwaway trustme CA whose PEM (``ca_file``) clients trust. The
configuration files are ``_postfix_dovecot.py``'s templates; ports, probes and PIDs are
handled by ``_daemon.py``. Only the standard library and trustme are imported.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

if __name__ == "__main__" and not __package__:
    # Run as a script: make the `interop` package (this file's parent) importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interop import _daemon, _debs
from interop._daemon import HOST, MAIL_GID, MAIL_UID, StartError, Unavailable
from interop._postfix_dovecot import (
    DOMAIN,
    POSTFIX_MASTER_CF,
    USERS,
    dovecot_conf,
    dovecot_users,
    postfix_main_cf,
    postfix_recipient_access,
    postfix_vmailbox,
)

__all__ = [
    "PACKAGES",
    "Servers",
    "StartError",
    "Unavailable",
    "check_environment",
    "install",
    "load",
    "missing_packages",
    "start",
    "status",
    "stop",
]

PACKAGES: Final = ("postfix", "dovecot-core", "dovecot-lmtpd")
STATE_FILE: Final = "state.json"
STARTUP_BUDGET: Final = 30.0
"""Seconds ``start`` may take, from the first file written to the last greeting read."""
STOP_BUDGET: Final = 10.0
POSTFIX: Final = "/usr/sbin/postfix"
DOVECOT: Final = "/usr/sbin/dovecot"
DOVECOT_LMTP: Final = "/usr/lib/dovecot/lmtp"


@dataclasses.dataclass(frozen=True)
class Servers(_daemon.Instance):
    """What a started instance offers; saved as ``state.json`` in its state directory.

    ``users`` are user, small, sender and intl.
    """

    domain: str
    smtp_port: int
    trace_port: int
    """The MX again, logging each session verbosely (every command, reply and read)."""
    submission_port: int
    submissions_port: int
    lmtp_port: int
    lmtp_socket: str
    oauth_submission_port: int
    """Submission whose SASL socket is ``oauth_sasl_socket`` (served by ``_oauth.py``)."""
    oauth_sasl_socket: str
    dkim_port: int
    dkim_milter_socket: str
    """Where Postfix's ``dkim_port`` finds the OpenDKIM milter (``_opendkim.py``)."""
    logs: dict[str, str]
    """``postfix`` (maillog_file), ``dovecot`` (log_path), ``dovecot_stderr``, ``postfix_start``."""
    postfix_config_dir: str
    postfix_master_pid: int
    dovecot_config: str
    dovecot_base_dir: str
    dovecot_master_pid: int
    startup_seconds: float

    @property
    def state_file(self) -> Path:
        return Path(self.state_dir) / STATE_FILE

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False) + "\n"


def load(path: str | os.PathLike[str]) -> Servers:
    """The :class:`Servers` saved in a state file (or in ``DIR/state.json`` for a directory)."""
    target = Path(path)
    if target.is_dir():
        target = target / STATE_FILE
    fields: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    names = {field.name for field in dataclasses.fields(Servers)}
    if missing := names - fields.keys():
        raise StartError(f"{target} lacks {sorted(missing)}: written by another version?")
    return Servers(**{key: value for key, value in fields.items() if key in names})


# -- installing -----------------------------------------------------------------------------


def check_environment(*, need_root: bool = True) -> None:
    """Raise :class:`Unavailable` with the reason when this host cannot run the daemons."""
    if need_root:
        _daemon.check_root("Postfix and Dovecot")
    elif not sys.platform.startswith("linux"):
        raise Unavailable(f"needs Linux (Debian) with Postfix and Dovecot; this is {sys.platform}")


def missing_packages() -> list[str]:
    """The Debian packages among :data:`PACKAGES` not installed (all of them without dpkg)."""
    if shutil.which("dpkg-query") is None:
        binaries = {"postfix": POSTFIX, "dovecot-core": DOVECOT, "dovecot-lmtpd": DOVECOT_LMTP}
        return [name for name in PACKAGES if not Path(binaries[name]).exists()]
    return _debs.missing(PACKAGES)


def install(log: Callable[[str], None] = print) -> list[str]:
    """apt-get the packages that are missing (after ``apt-get update``); returns their names.

    Raises :class:`Unavailable` when something is missing and this is not a root Debian
    host with apt-get, and :class:`StartError` when apt-get fails.
    """
    check_environment(need_root=False)
    missing = missing_packages()
    if not missing:
        log(f"already installed: {' '.join(PACKAGES)}")
        return []
    if os.geteuid() != 0:
        raise Unavailable(
            f"{' '.join(missing)} not installed, and installing needs root "
            f"(running as uid {os.geteuid()}); as root run: "
            f"python {Path(__file__).as_posix()} install"
        )
    debconf = shutil.which("debconf-set-selections")
    if debconf is None:
        raise Unavailable(
            f"{' '.join(missing)} not installed and there is no debconf here "
            "(the installer supports Debian and Ubuntu); install them with your package manager"
        )

    def preseed() -> None:
        # No main.cf from the package: our instance brings its own with `postfix -c`.
        result = subprocess.run(  # noqa: S603 - fixed argument list
            [debconf],
            input="postfix postfix/main_mailer_type select No configuration\n",
            text=True,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if result.returncode != 0:
            raise StartError(f"debconf-set-selections failed with exit status {result.returncode}")

    return _debs.install(PACKAGES, log, before=preseed)


# -- starting -------------------------------------------------------------------------------


def _state_dir(requested: str | os.PathLike[str] | None) -> Path:
    if requested is None:
        return _daemon.new_state_dir("asmtp-rs-")
    root = Path(requested).absolute()
    root.mkdir(parents=True, exist_ok=True)
    if (root / STATE_FILE).exists() or any(root.iterdir()):
        raise StartError(f"{root} is not empty; give a new or empty --dir (or stop it first)")
    return root


def _check_socket_paths(root: Path) -> None:
    # Dovecot's deepest sockets (login/, token-login/) and Postfix's queue sockets.
    longest = max(
        len(str(root / "dv" / "token-login" / "tokenlogin")),
        len(str(root / "queue/private/proxywrite")),
    )
    if longest > _daemon.SOCKET_PATH_LIMIT - 8:
        raise StartError(
            f"state directory {root} is too long for Unix socket paths (limit "
            f"{_daemon.SOCKET_PATH_LIMIT} bytes); use a short one such as /tmp/asmtp-rs"
        )


def start(
    state_dir: str | os.PathLike[str] | None = None, log: Callable[[str], None] = print
) -> Servers:
    """Start Postfix and Dovecot from a new private state directory; returns what they offer.

    Raises :class:`Unavailable` when this host cannot run them (not root, not installed)
    and :class:`StartError`, holding the daemons' logs, when they do not come up within
    :data:`STARTUP_BUDGET` seconds; whatever had started is stopped again first.
    """
    check_environment()
    missing = missing_packages()
    if missing:
        raise Unavailable(
            f"not installed: {' '.join(missing)}; as root run: "
            f"python {Path(__file__).as_posix()} install"
        )
    began = time.monotonic()
    root = _state_dir(state_dir)
    root.chmod(0o755)  # postfix (SASL socket) and nobody (Maildirs) must traverse it
    _check_socket_paths(root)
    smtp, trace, submission, submissions, lmtp, oauth_submission, dkim = _daemon.free_ports(7)

    postfix_dir, dovecot_dir, mail, logs, tls = (
        root / name for name in ("postfix", "dovecot", "mail", "log", "tls")
    )
    for directory in (postfix_dir, dovecot_dir, root / "queue", logs, tls):
        directory.mkdir(mode=0o755)
    tls.chmod(0o700)
    (root / "data").mkdir(mode=0o700)
    shutil.chown(root / "data", "postfix", "postfix")
    mail.mkdir(mode=0o755)
    os.chown(mail, MAIL_UID, MAIL_GID)

    sasl_socket = root / "dv" / "auth-postfix"
    oauth_sasl_socket = root / "oa" / "auth-postfix"  # the OAuth stack's Dovecot (_oauth.py)
    dkim_milter_socket = root / "dk" / "milter"  # OpenDKIM (_opendkim.py)
    _daemon.write(postfix_dir / "main.cf", postfix_main_cf(root, sasl_socket))
    _daemon.write(
        postfix_dir / "master.cf",
        POSTFIX_MASTER_CF.format(
            host=HOST,
            smtp=smtp,
            trace=trace,
            submission=submission,
            submissions=submissions,
            oauth_submission=oauth_submission,
            oauth_sasl_socket=oauth_sasl_socket,
            dkim=dkim,
            dkim_milter_socket=dkim_milter_socket,
        ),
    )
    _daemon.write(postfix_dir / "vmailbox", postfix_vmailbox())
    _daemon.write(postfix_dir / "recipient_access", postfix_recipient_access())
    # Postfix re-reads a configuration file or table modified less than a second or two
    # before it was read (it may have been half written). These are complete and closed,
    # so date them back instead of sleeping.
    backdated = time.time() - 10
    for name in ("main.cf", "master.cf", "vmailbox", "recipient_access"):
        os.utime(postfix_dir / name, (backdated, backdated))

    ca_file = _daemon.write_certificates(tls, names=(f"mx.{DOMAIN}",))
    users_file = dovecot_dir / "users"
    _daemon.write(users_file, dovecot_users(root), mode=0o640)
    shutil.chown(users_file, "root", "dovecot")
    dovecot_file = dovecot_dir / "dovecot.conf"
    _daemon.write(dovecot_file, dovecot_conf(root, lmtp, instance=root.name))
    for user in USERS:
        _daemon.make_maildir(mail / user.mailbox, mail)

    servers = Servers(
        state_dir=str(root),
        host=HOST,
        domain=DOMAIN,
        smtp_port=smtp,
        trace_port=trace,
        submission_port=submission,
        submissions_port=submissions,
        lmtp_port=lmtp,
        lmtp_socket=str(root / "dv" / "lmtp"),
        oauth_submission_port=oauth_submission,
        oauth_sasl_socket=str(oauth_sasl_socket),
        dkim_port=dkim,
        dkim_milter_socket=str(dkim_milter_socket),
        ca_file=str(ca_file),
        users={
            user.name: {
                "address": user.address,
                "password": user.password,
                "maildir": str(mail / user.mailbox),
            }
            for user in USERS
        },
        logs={
            "postfix": str(logs / "postfix.log"),
            "postfix_start": str(logs / "postfix-start.log"),
            "dovecot": str(logs / "dovecot.log"),
            "dovecot_stderr": str(logs / "dovecot-stderr.log"),
        },
        postfix_config_dir=str(postfix_dir),
        postfix_master_pid=0,
        dovecot_config=str(dovecot_file),
        dovecot_base_dir=str(root / "dv"),
        dovecot_master_pid=0,
        startup_seconds=0.0,
    )
    deadline = began + STARTUP_BUDGET
    try:
        _start_dovecot(servers, deadline)
        _start_postfix(servers, deadline)
        _wait_until_ready(servers, deadline)
    except BaseException as exc:
        report = _daemon.logs_report(servers.logs)
        stop(servers)
        if isinstance(exc, StartError | OSError | subprocess.SubprocessError):
            raise StartError(f"{exc}\n{report}") from exc
        raise
    servers = dataclasses.replace(
        servers,
        postfix_master_pid=_daemon.read_pid(root / "queue" / "pid" / "master.pid"),
        dovecot_master_pid=_daemon.read_pid(root / "dv" / "master.pid"),
        startup_seconds=round(time.monotonic() - began, 3),
    )
    _daemon.write(servers.state_file, servers.to_json())
    log(f"started in {servers.startup_seconds:.2f} s; state: {servers.state_file}")
    return servers


def _start_dovecot(servers: Servers, deadline: float) -> None:
    _daemon.run_daemonizing(
        [DOVECOT, "-c", servers.dovecot_config], Path(servers.logs["dovecot_stderr"]), deadline
    )


def _start_postfix(servers: Servers, deadline: float) -> None:
    with open(servers.logs["postfix_start"], "wb") as output:
        try:
            result = subprocess.run(  # noqa: S603 - fixed argument list
                [POSTFIX, "-c", servers.postfix_config_dir, "start"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=max(deadline - time.monotonic(), 0.1),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StartError("postfix start did not finish in time") from None
    if result.returncode != 0:
        raise StartError(
            f"postfix -c {servers.postfix_config_dir} start exited with {result.returncode}"
        )


# -- readiness ------------------------------------------------------------------------------


def _probes(servers: Servers) -> dict[str, _daemon.Probe]:
    context = servers.client_context()
    sasl = str(Path(servers.dovecot_base_dir) / "auth-postfix")
    return {
        "postfix smtp": lambda: _daemon.probe_tcp(servers.smtp_port),
        "postfix smtp trace": lambda: _daemon.probe_tcp(servers.trace_port),
        "postfix submission": lambda: _daemon.probe_tcp(servers.submission_port),
        "postfix smtp dkim": lambda: _daemon.probe_tcp(servers.dkim_port),
        "postfix submissions": lambda: _daemon.probe_tcp(servers.submissions_port, context),
        "dovecot lmtp tcp": lambda: _daemon.probe_tcp(servers.lmtp_port),
        "dovecot lmtp unix": lambda: _daemon.probe_unix(servers.lmtp_socket),
        "dovecot sasl socket": lambda: _daemon.probe_unix(sasl, greets=False),
    }


def _wait_until_ready(servers: Servers, deadline: float) -> None:
    _daemon.wait_until_ready(_probes(servers), deadline, STARTUP_BUDGET)


def status(servers: Servers) -> dict[str, str]:
    """Each service's state: ``"ok"`` or why not."""
    return _daemon.status(_probes(servers))


# -- stopping -------------------------------------------------------------------------------


def stop(servers: Servers, log: Callable[[str], None] = print) -> None:
    """Stop the Postfix and Dovecot of ``servers``, waiting until their masters exit.

    Touches only this instance: ``postfix -c <its config> stop`` and SIGTERM to the Dovecot
    master whose pid is in its ``base_dir``. The state directory is left in place.
    """
    root = Path(servers.state_dir)
    postfix_pid = _daemon.read_pid(root / "queue" / "pid" / "master.pid")
    postfix_pid = postfix_pid or servers.postfix_master_pid
    if _daemon.alive(postfix_pid, "master"):
        subprocess.run(  # noqa: S603 - fixed argument list
            [POSTFIX, "-c", servers.postfix_config_dir, "stop"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=STOP_BUDGET,
            check=False,
        )
        _daemon.terminate(postfix_pid, "master", STOP_BUDGET, log)
    dovecot_pid = _daemon.read_pid(Path(servers.dovecot_base_dir) / "master.pid")
    _daemon.terminate(dovecot_pid or servers.dovecot_master_pid, "dovecot", STOP_BUDGET, log)


@contextlib.contextmanager
def running(state_dir: str | os.PathLike[str] | None = None) -> Iterator[Servers]:
    """Start the servers for the duration of a ``with`` block."""
    servers = start(state_dir)
    try:
        yield servers
    finally:
        stop(servers)


# -- command line ---------------------------------------------------------------------------


def _state_from(args: argparse.Namespace) -> Servers:
    where = args.dir or os.environ.get("ASMTP_INTEROP_STATE")
    if not where:
        raise SystemExit("give --dir DIR (the state directory `start` printed)")
    return load(where)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=("install", "start", "stop", "status"))
    parser.add_argument(
        "--dir",
        help="state directory (start: new or empty, default a fresh /tmp/asmtp-rs-*; "
        "stop/status: the one start used; default $ASMTP_INTEROP_STATE)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            began = time.monotonic()
            installed = install()
            if installed:
                print(f"installed {' '.join(installed)} in {time.monotonic() - began:.1f} s")
        elif args.command == "start":
            servers = start(args.dir)
            print(servers.to_json(), end="")
            print(f"export ASMTP_INTEROP_STATE={servers.state_file}")
        elif args.command == "stop":
            servers = _state_from(args)
            stop(servers)
            print(f"stopped; files left in {servers.state_dir}")
        else:
            servers = _state_from(args)
            report = status(servers)
            for name, state in report.items():
                print(f"{name:22} {state}")
            return 0 if all(state == "ok" for state in report.values()) else 1
    except Unavailable as exc:
        print(f"cannot run the real servers here: {exc}", file=sys.stderr)
        return 2
    except StartError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
