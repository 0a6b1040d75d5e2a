"""A private OpenSMTPD 7.4 (Debian's bookworm-backports ``opensmtpd``) on loopback, for the
interop tests.

Debian 12's own OpenSMTPD, 6.8, is built against OpenSSL 3 and cannot complete any TLS
handshake (its privilege-separated key signing fails; fixed in 7.x), so the package
comes from bookworm-backports, built for Debian 12 against the same libraries. Installing
it would remove Postfix, so it is fetched through a private apt configuration and
unpacked privately (``_debs.unpacked`` with :data:`_debs.BOOKWORM_BACKPORTS`).

OpenSMTPD compiles in every path it uses besides its configuration: the spool
``/var/spool/smtpd``, the control socket ``/var/run/smtpd.sock``, the chroot
``/var/lib/opensmtpd/empty`` and its helpers in ``/usr/libexec/opensmtpd`` (7.x delivers
to a Maildir through ``mail.maildir`` there). Each instance therefore runs in a mount
namespace of its own (``unshare --mount``) in which private directories are bound over
``/var/spool``, ``/run``, ``/var/lib`` and ``/usr/libexec``: the system's directories are
never written, and parallel instances do not meet. Its two users (``opensmtpd``,
``opensmtpq``) are created as the package's maintainer script would; it refuses a private
key that others can read, so the key is 0600. ``smtpd -d`` stays in the foreground and
logs to a file.

The listeners, on free 127.0.0.1 ports:

- ``smtp_port``: 8BITMIME, SIZE, DSN, ENHANCEDSTATUSCODES, STARTTLS (no PIPELINING, no
  CHUNKING, no SMTPUTF8), and once TLS is on AUTH PLAIN and LOGIN against a credentials
  table, optional (``auth-optional``); delivers into the Maildirs of the virtual users of
  ``example.test`` and refuses anyone else at RCPT.
- ``smtps_port``: implicit TLS, AUTH required before MAIL (``auth``).

Limits (:data:`SIZE_LIMIT`, :data:`MAX_RCPT`, :data:`MAX_MAILS`) are OpenSMTPD's
``smtp max-message-size`` and ``smtp limit``.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from interop import _daemon, _debs
from interop._daemon import HOST, MAIL_GID, MAIL_UID, StartError, Unavailable

__all__ = ["MAX_MAILS", "MAX_RCPT", "SIZE_LIMIT", "OpenSMTPD", "start", "stop"]

PACKAGES: Final = ("opensmtpd",)
SUITE: Final = _debs.BOOKWORM_BACKPORTS
CACHE_NAME: Final = f"opensmtpd-{SUITE.name}"
"""Its directory in the package cache (apart from the 6.8 that older checkouts unpack)."""
MAJOR: Final = 7
"""The major version whose TLS works with OpenSSL 3."""
SYSTEM_USERS: Final = ("opensmtpd", "opensmtpq")
CHROOT: Final = "/var/lib/opensmtpd/empty"
DOMAIN: Final = "example.test"
SIZE_LIMIT: Final = 1024 * 1024
MAX_RCPT: Final = 5
MAX_MAILS: Final = 10
STARTUP_BUDGET: Final = 30.0
STOP_BUDGET: Final = 10.0

_MAILBOXES: Final = ("user", "sender", "r1", "r2", "r3", "r4", "r5")
"""Local parts of ``example.test``; r1 to r5 make room for more than MAX_RCPT recipients."""
_PASSWORD: Final = "opensmtpd-user-Passw0rd"

_NAMES: Final = ("smtpd", "unshare", "sh")
"""The names its process has: unshare, then sh doing the binds, then smtpd."""

# (private directory, system directory it hides inside the namespace)
_BINDS: Final = (("run", "/run"), ("spool", "/var/spool"), ("lib", "/var/lib"))


@dataclasses.dataclass(frozen=True)
class OpenSMTPD(_daemon.Listening):
    """A started OpenSMTPD; ``users`` are user, sender and r1 to r5.

    ``logs``: ``smtpd``, its log (``smtpd -d`` writes it to stderr).
    """

    version: str
    """What ``smtpd -h`` says, e.g. ``OpenSMTPD 7.4.0-portable``."""


def _config(root: Path, smtp: int, smtps: int) -> str:
    pki = f"mx.{DOMAIN}"
    return f"""\
# Private OpenSMTPD instance for asmtp's interop tests (_opensmtpd.py); loopback only.
pki {pki} cert "{root}/tls/server.pem"
pki {pki} key "{root}/tls/server.key"
table credentials file:{root}/etc/credentials
table recipients file:{root}/etc/recipients
table virtuals file:{root}/etc/virtuals
smtp max-message-size {SIZE_LIMIT}
smtp limit max-rcpt {MAX_RCPT}
smtp limit max-mails {MAX_MAILS}
listen on {HOST} port {smtp} tls pki {pki} auth-optional <credentials> hostname {pki}
listen on {HOST} port {smtps} smtps pki {pki} auth <credentials> hostname {pki}
action "deliver" maildir "{root}/mail/%{{rcpt.user}}/Maildir" virtual <virtuals>
match from any for rcpt-to <recipients> action "deliver"
"""


def _encrypt(tree: Path, password: str) -> str:
    """The crypt(3) hash of ``password``, as the package's ``encrypt`` helper makes it."""
    return subprocess.run(  # noqa: S603 - fixed argument list
        [str(tree / "usr" / "libexec" / "opensmtpd" / "encrypt")],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _version(tree: Path) -> str:
    """``OpenSMTPD X.Y.Z-portable``; :class:`StartError` unless it is :data:`MAJOR`.x."""
    usage = subprocess.run(  # noqa: S603 - fixed argument list
        [str(tree / "usr" / "sbin" / "smtpd"), "-h"], capture_output=True, text=True, check=False
    )
    found = re.search(r"OpenSMTPD (\d+)\.\S+", usage.stdout + usage.stderr)
    if found is None or int(found[1]) != MAJOR:
        raise StartError(
            f"{tree}/usr/sbin/smtpd is not OpenSMTPD {MAJOR}.x: {usage.stderr.strip()!r}"
        )
    return found[0]


def _namespace_argv(root: Path, tree: Path, config: Path) -> list[str]:
    """``smtpd -d -f config`` in a new mount namespace with the private directories bound."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise Unavailable("OpenSMTPD needs unshare(1) (util-linux) for its private paths")
    binds = [(root / "ns" / private, system) for private, system in _BINDS]
    binds.append((tree / "usr" / "libexec", "/usr/libexec"))
    mounts = " && ".join(
        f"mount --bind {shlex.quote(str(private))} {shlex.quote(system)}"
        for private, system in binds
    )
    smtpd = shlex.join([str(tree / "usr" / "sbin" / "smtpd"), "-d", "-f", str(config)])
    # --propagation private: the binds stay inside the namespace and vanish with it.
    return [unshare, "--mount", "--propagation", "private", "sh", "-c", f"{mounts} && exec {smtpd}"]


def start(log: Callable[[str], None] = print) -> OpenSMTPD:
    """Unpack OpenSMTPD if needed and start it from a new private directory.

    Raises :class:`Unavailable` when this host cannot run it and :class:`StartError`,
    holding its log, when it does not come up in time.
    """
    _daemon.check_root("OpenSMTPD")
    began = time.monotonic()
    tree, fetched = _debs.unpacked(PACKAGES, CACHE_NAME, log, suite=SUITE)
    unpacked_seconds = time.monotonic() - began if fetched else 0.0
    version = _version(tree)
    for name in SYSTEM_USERS:
        _debs.ensure_system_user(name, CHROOT)

    began = time.monotonic()
    root = _daemon.new_state_dir("asmtp-os-")
    smtp, smtps = _daemon.free_ports(2)
    for name in ("etc", "tls", "log", "mail", "ns", *(f"ns/{p}" for p, _ in _BINDS)):
        (root / name).mkdir(mode=0o755)
    (root / "ns" / "lib" / "opensmtpd" / "empty").mkdir(parents=True, mode=0o755)
    ca_file = _daemon.write_certificates(root / "tls", names=(f"mx.{DOMAIN}",))
    addresses = [f"{local}@{DOMAIN}" for local in _MAILBOXES]
    _daemon.write(
        root / "etc" / "credentials",
        f"user@{DOMAIN} {_encrypt(tree, _PASSWORD)}\n",
        mode=0o640,
    )
    # A list of the addresses to match at RCPT; a mapping of them to the delivering user.
    _daemon.write(root / "etc" / "recipients", "".join(f"{a}\n" for a in addresses))
    _daemon.write(root / "etc" / "virtuals", "".join(f"{a} nobody\n" for a in addresses))
    config = root / "etc" / "smtpd.conf"
    _daemon.write(config, _config(root, smtp, smtps))
    users = {}
    for local in _MAILBOXES:
        maildir = root / "mail" / local / "Maildir"
        _daemon.make_maildir(maildir, root / "mail", MAIL_UID, MAIL_GID)
        users[local] = {
            "address": f"{local}@{DOMAIN}",
            "password": _PASSWORD,
            "maildir": str(maildir),
        }

    logs = {"smtpd": str(root / "log" / "smtpd.log")}
    pid = _daemon.spawn(_namespace_argv(root, tree, config), Path(logs["smtpd"]))
    server = OpenSMTPD(
        state_dir=str(root),
        host=HOST,
        ca_file=str(ca_file),
        users=users,
        smtp_port=smtp,
        smtps_port=smtps,
        logs=logs,
        pid=pid,
        startup_seconds=0.0,
        unpacked_seconds=round(unpacked_seconds, 3),
        version=version,
    )
    probes = {
        "opensmtpd smtp": lambda: _daemon.probe_tcp(smtp),
        "opensmtpd smtps": lambda: _daemon.probe_tcp(smtps, server.client_context()),
    }
    try:
        _daemon.wait_until_ready(
            probes,
            began + STARTUP_BUDGET,
            STARTUP_BUDGET,
            running=lambda: any(_daemon.alive(pid, name) for name in _NAMES),
        )
    except StartError as exc:
        report = _daemon.logs_report(logs)
        stop(server)
        raise StartError(f"{exc}\n{report}") from exc
    server = dataclasses.replace(server, startup_seconds=round(time.monotonic() - began, 3))
    log(
        f"{version} started in {server.startup_seconds:.2f} s on ports {smtp} and {smtps}"
        + (f" (fetched and unpacked in {unpacked_seconds:.2f} s)" if fetched else "")
    )
    return server


def stop(server: OpenSMTPD, log: Callable[[str], None] = print) -> None:
    """Stop the parent smtpd; its privilege-separated children exit with it."""
    for name in _NAMES:
        if _daemon.alive(server.pid, name):
            _daemon.terminate(server.pid, name, STOP_BUDGET, log)
            return
