"""Postfix's and Dovecot's configuration for the private instance of ``realservers.py``.

Templates only: the files each daemon reads, filled in with the state directory and ports.
The virtual users of ``example.test`` live here too, since both daemons' files list them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Final

from interop._daemon import HOST, MAIL_GID, MAIL_UID

__all__ = [
    "BUSY",
    "DOMAIN",
    "DOVECOT_AUTH_SERVICES",
    "POSTFIX_MASTER_CF",
    "USERS",
    "User",
    "dovecot_conf",
    "dovecot_users",
    "postfix_main_cf",
    "postfix_recipient_access",
    "postfix_vmailbox",
]

DOMAIN: Final = "example.test"


@dataclasses.dataclass(frozen=True)
class User:
    """A virtual user: address, password and Maildir."""

    name: str
    address: str
    password: str
    mailbox: str
    """Maildir path relative to the mail directory."""
    dovecot: bool = True
    """Known to Dovecot (LMTP and SASL); Dovecot 2.3's LMTP has no SMTPUTF8."""
    quota_rule: str = ""


USERS: Final = (
    User("user", f"user@{DOMAIN}", "interop-Passw0rd", f"{DOMAIN}/user/Maildir"),
    User(
        "small",
        f"small@{DOMAIN}",
        "interop-small-Passw0rd",
        f"{DOMAIN}/small/Maildir",
        quota_rule="*:storage=1",
    ),
    User("sender", f"sender@{DOMAIN}", "interop-sender-Passw0rd", f"{DOMAIN}/sender/Maildir"),
    User(
        "intl", f"jösé@{DOMAIN}", "interop-intl-Passw0rd", f"{DOMAIN}/jose/Maildir", dovecot=False
    ),
)
"""The virtual users of ``example.test``; the OAuth stack knows ``user`` and ``sender``."""


def postfix_main_cf(root: Path, sasl_socket: Path) -> str:
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
# BUSY answers 450 at RCPT, for ever: a recipient whose refusals are transient.
smtpd_recipient_restrictions = check_recipient_access texthash:{root}/postfix/recipient_access
smtpd_tls_security_level = may
smtpd_tls_cert_file = {root}/tls/server.pem
smtpd_tls_key_file = {root}/tls/server.key
smtpd_tls_session_cache_database =
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sasl_socket}
smtpd_sasl_auth_enable = no
"""


POSTFIX_MASTER_CF: Final = """\
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
{host}:{oauth_submission} inet n -      n       -       -       smtpd
  -o syslog_name=postfix/oauth
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_path={oauth_sasl_socket}
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
{host}:{dkim} inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/dkim
  -o smtpd_milters=unix:{dkim_milter_socket}
  -o milter_default_action=tempfail
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


def dovecot_conf(root: Path, lmtp_port: int, instance: str) -> str:
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
{DOVECOT_AUTH_SERVICES}"""


DOVECOT_AUTH_SERVICES: Final = """\
# Every client is 127.0.0.1: no per-IP penalty delaying the login after a failed one
# (a listener with mode 0 is not created, and auth then runs without penalties).
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
"""
"""Dovecot's auth for Postfix (a socket only postfix may use) and no per-IP penalty."""


def dovecot_users(root: Path) -> str:
    lines = []
    for user in USERS:
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


BUSY: Final = f"busy@{DOMAIN}"
"""An address Postfix refuses with ``450 4.2.1`` at RCPT: a transient refusal that lasts."""


def postfix_recipient_access() -> str:
    """Postfix's recipient access table: :data:`BUSY` gets a 4xx."""
    return f"{BUSY} 450 4.2.1 Mailbox busy, try again later\n"


def postfix_vmailbox() -> str:
    """Postfix's virtual mailbox table: every user's address and Maildir."""
    return "".join(f"{user.address} {user.mailbox}/\n" for user in USERS)
