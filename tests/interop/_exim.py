"""A private Exim 4 (Debian's ``exim4-daemon-heavy``) on loopback, for the interop tests.

Installing Exim's package would remove Postfix (both are the system's mail transport
agent), so the packages are unpacked privately (``_debs.unpacked``) and the binary runs
as ``exim4 -C DIR/exim.conf -bdf``: in the foreground, from its own configuration, spool
and log directories. Debian's binary looks its ``Debian-exim`` user up before reading any
configuration, so that system user is created as the package would.

With ``-C`` Exim gives up root when it re-executes itself to deliver, so the whole
instance runs as ``Debian-exim`` (``deliver_drop_privilege``) and delivers into Maildirs
that user owns. The listeners, on free 127.0.0.1 ports:

- ``smtp_port``: SIZE (``message_size_limit``), 8BITMIME, DSN, PIPELINING, CHUNKING,
  STARTTLS and SMTPUTF8; AUTH PLAIN, LOGIN and CRAM-MD5 once TLS is on.
- ``smtps_port``: the same behind implicit TLS (``tls_on_connect_ports``).

Unknown local parts are refused at RCPT (``verify = recipient``), and the DATA ACL refuses
any message carrying the :data:`REFUSE_HEADER` header after its data (or last BDAT).
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from interop import _daemon, _debs
from interop._daemon import HOST, StartError

__all__ = ["REFUSE_HEADER", "SIZE_LIMIT", "Exim", "start", "stop"]

PACKAGES: Final = ("exim4-daemon-heavy", "exim4-base")
USER: Final = "Debian-exim"
DOMAIN: Final = "example.test"
SIZE_LIMIT: Final = 1024 * 1024
"""``message_size_limit``: the SIZE Exim advertises and enforces."""
REFUSE_HEADER: Final = "X-Interop-Refuse"
"""A message with this header is refused by the DATA ACL."""
STARTUP_BUDGET: Final = 30.0
STOP_BUDGET: Final = 10.0

_MAILBOXES: Final = {
    # name: (local part, password, Maildir directory)
    "user": ("user", "exim-user-Passw0rd", "user"),
    "sender": ("sender", "exim-sender-Passw0rd", "sender"),
    "intl": ("jösé", "exim-intl-Passw0rd", "jose"),
}


@dataclasses.dataclass(frozen=True)
class Exim(_daemon.Listening):
    """A started Exim; ``users`` are user, sender and intl (a UTF-8 local part).

    ``logs``: ``main`` (mainlog), ``reject`` (rejectlog), ``panic`` (paniclog), ``stderr``.
    """


def _config(root: Path, binary: Path, smtp: int, smtps: int) -> str:
    return f"""\
# Private Exim instance for asmtp's interop tests (_exim.py); loopback only.
keep_environment =
# Where Exim re-executes itself from (e.g. to send a delivery report), not /usr/sbin.
exim_path = {binary}
exim_user = {USER}
exim_group = {USER}
deliver_drop_privilege = true
primary_hostname = mx.{DOMAIN}
qualify_domain = {DOMAIN}
domainlist local_domains = {DOMAIN}
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
pid_file_path = {root}/exim.pid
log_selector = +pipelining +smtp_connection +received_recipients +tls_cipher
local_interfaces = <; {HOST}.{smtp} ; {HOST}.{smtps}
tls_on_connect_ports = {smtps}
tls_advertise_hosts = *
tls_certificate = {root}/tls/server.pem
tls_privatekey = {root}/tls/server.key
# No DNS or ident lookups of 127.0.0.1.
host_lookup =
rfc1413_hosts =
message_size_limit = {SIZE_LIMIT}
dsn_advertise_hosts = *
chunking_advertise_hosts = *
pipelining_advertise_hosts = *
smtputf8_advertise_hosts = *
# Deliver every message at once: by default Exim only queues the 11th and later messages of
# one connection, for a queue runner this instance does not have, and a pool may carry them.
smtp_accept_queue_per_connection = 0
acl_smtp_rcpt = check_rcpt
acl_smtp_data = check_data

begin acl

check_rcpt:
  deny    !domains = +local_domains
          message = 5.7.1 relaying denied
  require verify = recipient
  accept

check_data:
  deny    condition = ${{if def:h_{REFUSE_HEADER}:}}
          message = 5.7.1 refused by the data ACL
  accept

begin routers

mailbox:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;{root}/exim/mailboxes
  transport = maildir

begin transports

maildir:
  driver = appendfile
  directory = {root}/mail/$local_part_data/Maildir
  maildir_format
  user = {USER}
  mode = 0600

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${{if eq{{$auth3}}{{${{lookup{{$auth2}}lsearch{{{root}/exim/passwords}}}}}}}}
  server_set_id = $auth2
  server_advertise_condition = ${{if def:tls_in_cipher}}

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = <| Username: | Password:
  server_condition = ${{if eq{{$auth2}}{{${{lookup{{$auth1}}lsearch{{{root}/exim/passwords}}}}}}}}
  server_set_id = $auth1
  server_advertise_condition = ${{if def:tls_in_cipher}}

cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = ${{lookup{{$auth1}}lsearch{{{root}/exim/passwords}}{{$value}}fail}}
  server_set_id = $auth1
  server_advertise_condition = ${{if def:tls_in_cipher}}
"""


def start(log: Callable[[str], None] = print) -> Exim:
    """Unpack Exim if needed and start it from a new private directory.

    Raises :class:`_daemon.Unavailable` when this host cannot run it and
    :class:`StartError`, holding its logs, when it does not come up in time.
    """
    _daemon.check_root("Exim")
    began = time.monotonic()
    tree, fetched = _debs.unpacked(PACKAGES, "exim4", log)
    unpacked_seconds = time.monotonic() - began if fetched else 0.0
    _debs.ensure_system_user(USER, "/var/spool/exim4")
    account = pwd.getpwnam(USER)

    began = time.monotonic()
    root = _daemon.new_state_dir("asmtp-ex-")
    smtp, smtps = _daemon.free_ports(2)
    for name in ("exim", "tls", "spool", "log", "mail"):
        (root / name).mkdir(mode=0o750)
    for name in ("spool", "log", "mail"):
        (root / name).chmod(0o755)
        os.chown(root / name, account.pw_uid, account.pw_gid)
    ca_file = _daemon.write_certificates(root / "tls", names=(f"mx.{DOMAIN}",))
    os.chown(root / "tls", 0, account.pw_gid)
    os.chown(root / "tls" / "server.key", 0, account.pw_gid)
    (root / "tls" / "server.key").chmod(0o640)
    _daemon.write(
        root / "exim" / "mailboxes",
        "".join(f"{local}: {box}\n" for local, _, box in _MAILBOXES.values()),
    )
    _daemon.write(
        root / "exim" / "passwords",
        "".join(f"{local}@{DOMAIN}: {password}\n" for local, password, _ in _MAILBOXES.values()),
        mode=0o640,
    )
    binary = tree / "usr" / "sbin" / "exim4"
    config = root / "exim" / "exim.conf"
    _daemon.write(config, _config(root, binary, smtp, smtps), mode=0o640)
    for path in (root / "exim", root / "exim" / "passwords", config):
        os.chown(path, 0, account.pw_gid)
    users = {}
    for name, (local, password, box) in _MAILBOXES.items():
        maildir = root / "mail" / box / "Maildir"
        _daemon.make_maildir(maildir, root / "mail", account.pw_uid, account.pw_gid)
        users[name] = {
            "address": f"{local}@{DOMAIN}",
            "password": password,
            "maildir": str(maildir),
        }

    logs = {
        "main": str(root / "log" / "mainlog"),
        "reject": str(root / "log" / "rejectlog"),
        "panic": str(root / "log" / "paniclog"),
        "stderr": str(root / "log" / "stderr.log"),
    }
    pid = _daemon.spawn([str(binary), "-C", str(config), "-bdf"], Path(logs["stderr"]))
    exim = Exim(
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
    )
    context = exim.client_context()
    probes = {
        "exim smtp": lambda: _daemon.probe_tcp(smtp),
        "exim smtps": lambda: _daemon.probe_tcp(smtps, context),
    }
    try:
        _daemon.wait_until_ready(
            probes,
            began + STARTUP_BUDGET,
            STARTUP_BUDGET,
            running=lambda: _daemon.alive(pid, "exim4"),
        )
    except StartError as exc:
        report = _daemon.logs_report(logs)
        stop(exim)
        raise StartError(f"{exc}\n{report}") from exc
    exim = dataclasses.replace(exim, startup_seconds=round(time.monotonic() - began, 3))
    log(f"exim started in {exim.startup_seconds:.2f} s on ports {smtp} and {smtps}")
    return exim


def stop(exim: Exim, log: Callable[[str], None] = print) -> None:
    """Stop the daemon of ``exim`` (deliveries it forked finish on their own)."""
    _daemon.terminate(exim.pid, "exim4", STOP_BUDGET, log)
