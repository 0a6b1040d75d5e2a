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
  users of ``example.test`` (no system users), refusing unknown users at RCPT.
- ``trace_port``: the same MX with verbose logging of each session (``debug_peer_list``),
  whose reads, commands and replies show PIPELINING and CHUNKING at work.
- ``submission_port``: STARTTLS required, then AUTH through Dovecot's SASL socket.
- ``submissions_port``: the same behind implicit TLS.
- ``lmtp_port`` and ``lmtp_socket``: Dovecot LMTP into the same Maildirs; unknown users are
  refused at RCPT, and ``small@example.test`` has a 1 KiB quota, so a larger message is
  refused for it after DATA while other recipients get it.

Certificates come from a throwaway trustme CA whose PEM (``ca_file``) clients trust. Only
the standard library and trustme are imported.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

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

HOST: Final = "127.0.0.1"
DOMAIN: Final = "example.test"
PACKAGES: Final = ("postfix", "dovecot-core", "dovecot-lmtpd")
STATE_FILE: Final = "state.json"
STARTUP_BUDGET: Final = 30.0
"""Seconds ``start`` may take, from the first file written to the last greeting read."""
STOP_BUDGET: Final = 10.0
MAIL_UID: Final = 65534
"""Both daemons deliver as nobody:nogroup (Dovecot refuses uid 0; no system users needed)."""
MAIL_GID: Final = 65534
SOCKET_PATH_LIMIT: Final = 107
POSTFIX: Final = "/usr/sbin/postfix"
DOVECOT: Final = "/usr/sbin/dovecot"
DOVECOT_LMTP: Final = "/usr/lib/dovecot/lmtp"


@dataclasses.dataclass(frozen=True)
class _User:
    name: str
    address: str
    password: str
    mailbox: str
    """Maildir path relative to the mail directory."""
    dovecot: bool = True
    """Known to Dovecot (LMTP and SASL); Dovecot 2.3's LMTP has no SMTPUTF8."""
    quota_rule: str = ""


_USERS: Final = (
    _User("user", f"user@{DOMAIN}", "interop-Passw0rd", f"{DOMAIN}/user/Maildir"),
    _User(
        "small",
        f"small@{DOMAIN}",
        "interop-small-Passw0rd",
        f"{DOMAIN}/small/Maildir",
        quota_rule="*:storage=1",
    ),
    _User("sender", f"sender@{DOMAIN}", "interop-sender-Passw0rd", f"{DOMAIN}/sender/Maildir"),
    _User(
        "intl", f"jösé@{DOMAIN}", "interop-intl-Passw0rd", f"{DOMAIN}/jose/Maildir", dovecot=False
    ),
)


class Unavailable(RuntimeError):
    """The daemons cannot be installed or run here (not root, no apt, not Debian...)."""


class StartError(RuntimeError):
    """The daemons were installed but did not start; the message holds their logs."""


@dataclasses.dataclass(frozen=True)
class Servers:
    """What a started instance offers; saved as ``state.json`` in its state directory."""

    state_dir: str
    host: str
    domain: str
    smtp_port: int
    trace_port: int
    """The MX again, logging each session verbosely (every command, reply and read)."""
    submission_port: int
    submissions_port: int
    lmtp_port: int
    lmtp_socket: str
    ca_file: str
    users: dict[str, dict[str, str]]
    """``name -> {"address", "password", "maildir"}`` (``name``: user, small, sender, intl)."""
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

    def address(self, name: str) -> str:
        return self.users[name]["address"]

    def password(self, name: str) -> str:
        return self.users[name]["password"]

    def maildir(self, name: str) -> Path:
        return Path(self.users[name]["maildir"])

    def client_context(self) -> ssl.SSLContext:
        """A client context that verifies against the throwaway CA only."""
        return ssl.create_default_context(cafile=self.ca_file)

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
    if not sys.platform.startswith("linux"):
        raise Unavailable(f"needs Linux (Debian) with Postfix and Dovecot; this is {sys.platform}")
    if need_root and os.geteuid() != 0:
        raise Unavailable(
            "needs root: Postfix's master and Dovecot start as root and drop privileges "
            f"(running as uid {os.geteuid()})"
        )


def missing_packages() -> list[str]:
    """The Debian packages among :data:`PACKAGES` not installed (all of them without dpkg)."""
    if shutil.which("dpkg-query") is None:
        binaries = {"postfix": POSTFIX, "dovecot-core": DOVECOT, "dovecot-lmtpd": DOVECOT_LMTP}
        return [name for name in PACKAGES if not Path(binaries[name]).exists()]
    missing = []
    for name in PACKAGES:
        result = subprocess.run(  # noqa: S603 - fixed argument list
            ["dpkg-query", "-W", "-f=${db:Status-Status}", name],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        if result.stdout.strip() != "installed":
            missing.append(name)
    return missing


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
    apt_get = shutil.which("apt-get")
    debconf = shutil.which("debconf-set-selections")
    if apt_get is None or debconf is None:
        raise Unavailable(
            f"{' '.join(missing)} not installed and there is no apt-get/debconf here "
            "(the installer supports Debian and Ubuntu); install them with your package manager"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # No main.cf from the package: our instance brings its own with `postfix -c`.
    preseed = subprocess.run(  # noqa: S603 - fixed argument list
        [debconf],
        input="postfix postfix/main_mailer_type select No configuration\n",
        text=True,
        check=False,
        env=env,
    )
    if preseed.returncode != 0:
        raise StartError(f"debconf-set-selections failed with exit status {preseed.returncode}")
    for argv in (
        [apt_get, "update", "-q"],
        [apt_get, "install", "-y", "-q", "--no-install-recommends", *missing],
    ):
        log("+ " + " ".join(argv))
        result = subprocess.run(argv, env=env, check=False)  # noqa: S603
        if result.returncode != 0:
            raise StartError(f"{' '.join(argv)} failed with exit status {result.returncode}")
    still = missing_packages()
    if still:
        raise StartError(f"apt-get finished but these are still not installed: {' '.join(still)}")
    return missing


# -- starting -------------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (all held at once, so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _postfix_main_cf(root: Path, sasl_socket: Path) -> str:
    return f"""\
# Private Postfix instance for asmtp's interop tests (realservers.py); loopback only.
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{DOMAIN}
mydomain = {DOMAIN}
myorigin = $mydomain
mydestination =
inet_interfaces = {HOST}
inet_protocols = ipv4
# Every client is 127.0.0.1: no relaying for "my" networks, no header rewriting.
mynetworks =
local_header_rewrite_clients =
relay_domains =
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {root}/log/postfix.log
maillog_file_prefixes = {root}
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
in_flow_delay = 0
bounce_queue_lifetime = 0
smtputf8_enable = yes
message_size_limit = 52428800
mailbox_size_limit = 0
virtual_mailbox_limit = 0
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = texthash:{root}/postfix/vmailbox
virtual_uid_maps = static:{MAIL_UID}
virtual_gid_maps = static:{MAIL_GID}
smtpd_banner = $myhostname ESMTP asmtp-interop
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_tls_security_level = may
smtpd_tls_cert_file = {root}/tls/server.pem
smtpd_tls_key_file = {root}/tls/server.key
smtpd_tls_session_cache_database =
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sasl_socket}
smtpd_sasl_auth_enable = no
"""


_POSTFIX_MASTER_CF: Final = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{host}:{smtp} inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/mx
{host}:{trace} inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/trace
  -o debug_peer_list={host}
  -o debug_peer_level=4
{host}:{submission} inet n      -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
{host}:{submissions} inet n     -       n       -       -       smtpd
  -o syslog_name=postfix/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _dovecot_conf(root: Path, lmtp_port: int, instance: str) -> str:
    return f"""\
# Private Dovecot instance for asmtp's interop tests (realservers.py); loopback only.
instance_name = {instance}
base_dir = {root}/dv
state_dir = {root}/dv-state
protocols = lmtp
listen = {HOST}
ssl = no
hostname = lmtp.{DOMAIN}
postmaster_address = postmaster@{DOMAIN}
log_path = {root}/log/dovecot.log
info_log_path = {root}/log/dovecot.log
auth_verbose = yes
auth_mechanisms = plain login cram-md5 scram-sha-256
# Postfix enforces TLS before AUTH; no per-IP penalty after a wrong password in tests.
disable_plaintext_auth = no
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_plugins = quota
lmtp_rcpt_check_quota = no

passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/dovecot/users
}}
userdb {{
  driver = passwd-file
  args = {root}/dovecot/users
}}
plugin {{
  quota = maildir:User quota
}}
service lmtp {{
  inet_listener lmtp {{
    address = {HOST}
    port = {lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
# Every client is 127.0.0.1: no per-IP penalty delaying the login after a failed one
# (a listener with mode 0 is not created, and auth then runs without penalties).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""


def _dovecot_users(root: Path) -> str:
    lines = []
    for user in _USERS:
        if not user.dovecot:
            continue
        home = root / "mail" / Path(user.mailbox).parent
        # nodelay: answer a wrong password at once and record no per-IP penalty (every
        # client is 127.0.0.1; the penalty would delay the next login by seconds).
        extra = "nodelay=y" + (f" userdb_quota_rule={user.quota_rule}" if user.quota_rule else "")
        # user:password:uid:gid:gecos:home:shell:extra_fields. The password is stored in
        # plain text so that every mechanism works (CRAM-MD5 and SCRAM-SHA-256 included).
        lines.append(
            f"{user.address}:{{PLAIN}}{user.password}:{MAIL_UID}:{MAIL_GID}::{home}::{extra}"
        )
    return "\n".join(lines) + "\n"


def _make_maildir(path: Path, mail_root: Path) -> None:
    """Create ``path``/{tmp,new,cur} and any missing parents below ``mail_root``, as nobody."""
    for directory in [*reversed(path.relative_to(mail_root).parents), path.relative_to(mail_root)]:
        target = mail_root / directory
        target.mkdir(exist_ok=True)
        os.chown(target, MAIL_UID, MAIL_GID)
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(mode=0o700, exist_ok=True)
        os.chown(path / sub, MAIL_UID, MAIL_GID)


def _write_certificates(tls: Path) -> Path:
    import trustme  # the one third-party import, only needed here

    ca = trustme.CA(organization_name="asmtp interop throwaway CA")
    cert = ca.issue_cert(HOST, "localhost", f"mx.{DOMAIN}")
    ca.cert_pem.write_to_path(str(tls / "ca.pem"))
    with (tls / "server.pem").open("wb") as chain:
        for pem in cert.cert_chain_pems:
            chain.write(pem.bytes())
    key = tls / "server.key"
    key.touch(mode=0o600)
    cert.private_key_pem.write_to_path(str(key))
    return tls / "ca.pem"


def _state_dir(requested: str | os.PathLike[str] | None) -> Path:
    if requested is None:
        return Path(tempfile.mkdtemp(prefix="asmtp-rs-", dir="/tmp"))
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
    if longest > SOCKET_PATH_LIMIT - 8:
        raise StartError(
            f"state directory {root} is too long for Unix socket paths (limit "
            f"{SOCKET_PATH_LIMIT} bytes); use a short one such as /tmp/asmtp-rs"
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
    smtp, trace, submission, submissions, lmtp = _free_ports(5)

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
    _write(postfix_dir / "main.cf", _postfix_main_cf(root, sasl_socket))
    _write(
        postfix_dir / "master.cf",
        _POSTFIX_MASTER_CF.format(
            host=HOST, smtp=smtp, trace=trace, submission=submission, submissions=submissions
        ),
    )
    _write(
        postfix_dir / "vmailbox",
        "".join(f"{user.address} {user.mailbox}/\n" for user in _USERS),
    )
    # Postfix re-reads a configuration file or table modified less than a second or two
    # before it was read (it may have been half written). These are complete and closed,
    # so date them back instead of sleeping.
    backdated = time.time() - 10
    for name in ("main.cf", "master.cf", "vmailbox"):
        os.utime(postfix_dir / name, (backdated, backdated))

    ca_file = _write_certificates(tls)
    users_file = dovecot_dir / "users"
    _write(users_file, _dovecot_users(root), mode=0o640)
    shutil.chown(users_file, "root", "dovecot")
    dovecot_conf = dovecot_dir / "dovecot.conf"
    _write(dovecot_conf, _dovecot_conf(root, lmtp, instance=root.name))
    for user in _USERS:
        _make_maildir(mail / user.mailbox, mail)

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
        ca_file=str(ca_file),
        users={
            user.name: {
                "address": user.address,
                "password": user.password,
                "maildir": str(mail / user.mailbox),
            }
            for user in _USERS
        },
        logs={
            "postfix": str(logs / "postfix.log"),
            "postfix_start": str(logs / "postfix-start.log"),
            "dovecot": str(logs / "dovecot.log"),
            "dovecot_stderr": str(logs / "dovecot-stderr.log"),
        },
        postfix_config_dir=str(postfix_dir),
        postfix_master_pid=0,
        dovecot_config=str(dovecot_conf),
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
        report = _logs_report(servers)
        stop(servers)
        if isinstance(exc, StartError | OSError | subprocess.SubprocessError):
            raise StartError(f"{exc}\n{report}") from exc
        raise
    servers = dataclasses.replace(
        servers,
        postfix_master_pid=_read_pid(root / "queue" / "pid" / "master.pid"),
        dovecot_master_pid=_read_pid(root / "dv" / "master.pid"),
        startup_seconds=round(time.monotonic() - began, 3),
    )
    _write(servers.state_file, servers.to_json())
    log(f"started in {servers.startup_seconds:.2f} s; state: {servers.state_file}")
    return servers


def _start_dovecot(servers: Servers, deadline: float) -> None:
    # Dovecot keeps the launching process's stderr open: never leave it on a pipe.
    with open(servers.logs["dovecot_stderr"], "wb") as output:
        process = subprocess.Popen(  # noqa: S603 - fixed argument list
            [DOVECOT, "-c", servers.dovecot_config],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        code = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise StartError("dovecot did not daemonise in time") from None
    if code != 0:
        raise StartError(f"dovecot -c {servers.dovecot_config} exited with status {code}")


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


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 0


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


def _probe_tcp(port: int, context: ssl.SSLContext | None = None) -> bytes:
    with socket.create_connection((HOST, port), timeout=2.0) as raw:
        if context is None:
            return _greeting(raw)
        with context.wrap_socket(raw, server_hostname=HOST) as tls:
            return _greeting(tls)


def _probe_unix(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        sock.connect(path)
        return _greeting(sock)


def _probes(servers: Servers) -> dict[str, Callable[[], object]]:
    context = servers.client_context()
    sasl = Path(servers.dovecot_base_dir) / "auth-postfix"

    def sasl_socket() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(sasl))

    return {
        "postfix smtp": lambda: _probe_tcp(servers.smtp_port),
        "postfix smtp trace": lambda: _probe_tcp(servers.trace_port),
        "postfix submission": lambda: _probe_tcp(servers.submission_port),
        "postfix submissions": lambda: _probe_tcp(servers.submissions_port, context),
        "dovecot lmtp tcp": lambda: _probe_tcp(servers.lmtp_port),
        "dovecot lmtp unix": lambda: _probe_unix(servers.lmtp_socket),
        "dovecot sasl socket": sasl_socket,
    }


def _wait_until_ready(servers: Servers, deadline: float) -> None:
    for name, probe in _probes(servers).items():
        while True:
            try:
                probe()
                break
            except (OSError, ConnectionError) as exc:
                if time.monotonic() > deadline:
                    raise StartError(
                        f"{name} not answering after {STARTUP_BUDGET:.0f} s: {exc!r}"
                    ) from exc
                time.sleep(0.05)


def status(servers: Servers) -> dict[str, str]:
    """Each service's state: ``"ok"`` or why not."""
    return {name: _state_of(probe) for name, probe in _probes(servers).items()}


def _state_of(probe: Callable[[], object]) -> str:
    try:
        probe()
    except (OSError, ConnectionError) as exc:
        return f"down: {exc!r}"
    return "ok"


def _logs_report(servers: Servers, lines: int = 40) -> str:
    parts = []
    for name, path in servers.logs.items():
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            text = f"(unreadable: {exc})"
        tail = "\n".join(text.splitlines()[-lines:])
        parts.append(f"--- {name}: {path} (last {lines} lines)\n{tail}")
    return "\n".join(parts)


# -- stopping -------------------------------------------------------------------------------


def _alive(pid: int, name: str) -> bool:
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


def _wait_gone(pid: int, name: str, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while _alive(pid, name):
        if time.monotonic() > until:
            return False
        time.sleep(0.02)
    return True


def stop(servers: Servers, log: Callable[[str], None] = print) -> None:
    """Stop the Postfix and Dovecot of ``servers``, waiting until their masters exit.

    Touches only this instance: ``postfix -c <its config> stop`` and SIGTERM to the Dovecot
    master whose pid is in its ``base_dir``. The state directory is left in place.
    """
    root = Path(servers.state_dir)
    postfix_pid = _read_pid(root / "queue" / "pid" / "master.pid") or servers.postfix_master_pid
    if _alive(postfix_pid, "master"):
        subprocess.run(  # noqa: S603 - fixed argument list
            [POSTFIX, "-c", servers.postfix_config_dir, "stop"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=STOP_BUDGET,
            check=False,
        )
        if not _wait_gone(postfix_pid, "master", STOP_BUDGET):
            log(f"postfix master {postfix_pid} did not stop; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(postfix_pid, signal.SIGKILL)
    dovecot_pid = _read_pid(Path(servers.dovecot_base_dir) / "master.pid")
    dovecot_pid = dovecot_pid or servers.dovecot_master_pid
    if _alive(dovecot_pid, "dovecot"):
        os.kill(dovecot_pid, signal.SIGTERM)
        if not _wait_gone(dovecot_pid, "dovecot", STOP_BUDGET):
            log(f"dovecot master {dovecot_pid} did not stop; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(dovecot_pid, signal.SIGKILL)


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
