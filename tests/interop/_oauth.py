"""OAuth 2.0 bearer tokens checked for real: a token introspection endpoint and a Dovecot
whose ``oauth2`` password database asks it, answering AUTH for Postfix's OAuth submission.

The chain a test exercises::

    asmtp --AUTH XOAUTH2/OAUTHBEARER--> Postfix (oauth_submission_port)
          --SASL socket--> Dovecot (passdb oauth2) --HTTP POST token=...--> introspection

:class:`Introspection` is the endpoint (RFC 7662 shaped): ``http.server`` on a thread on
127.0.0.1, answering ``{"active": true, "username": ...}`` for the tokens it issued and
``{"active": false}`` for anything else. The Dovecot is a second, auth-only instance
(``protocols = none``) whose socket is the path Postfix's OAuth service was configured
with (``Servers.oauth_sasl_socket``); it offers OAUTHBEARER and XOAUTH2 only.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Final

from interop import _daemon
from interop._daemon import HOST, StartError
from interop._postfix_dovecot import DOVECOT_AUTH_SERVICES

__all__ = ["Introspection", "OAuthStack", "start", "stop"]

DOVECOT: Final = "/usr/sbin/dovecot"
STARTUP_BUDGET: Final = 30.0
STOP_BUDGET: Final = 10.0
_BODY_LIMIT: Final = 64 * 1024


class Introspection:
    """A token introspection endpoint on loopback that knows the tokens it issued."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self.requests = 0
        """Introspection requests answered (proves Dovecot asked, not guessed)."""
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length", "0")), _BODY_LIMIT)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode("ascii", "replace"))
                answer = endpoint._introspect(form.get("token", [""])[0])
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None  # no access log: it would print to stderr

        self._server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="introspection", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/introspect"

    def issue(self, username: str) -> str:
        """A new random bearer token that introspects as active for ``username``."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = username
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def _introspect(self, token: str) -> dict[str, object]:
        with self._lock:
            self.requests += 1
            username = self._tokens.get(token)
        if username is None:
            return {"active": False}
        return {"active": True, "username": username, "scope": "mail", "token_type": "Bearer"}

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=STOP_BUDGET)


@dataclasses.dataclass
class OAuthStack:
    """The running endpoint and Dovecot; Postfix's ``oauth_submission_port`` uses them."""

    introspection: Introspection
    state_dir: str
    """Dovecot's configuration and logs."""
    base_dir: str
    config: str
    logs: dict[str, str]
    """``dovecot`` (its log_path), ``dovecot_stderr``."""
    startup_seconds: float


def _dovecot_conf(base_dir: Path, state_dir: Path, log: Path, oauth2_conf: Path) -> str:
    return f"""\
# Auth-only Dovecot for asmtp's OAuth interop tests (_oauth.py); loopback only.
instance_name = asmtp-oauth-{base_dir.parent.name}
base_dir = {base_dir}
state_dir = {state_dir}
protocols = none
listen = {HOST}
ssl = no
log_path = {log}
info_log_path = {log}
auth_verbose = yes
auth_mechanisms = oauthbearer xoauth2
# Postfix enforces TLS before AUTH; no per-IP penalty after a refused token in tests.
disable_plaintext_auth = no
auth_failure_delay = 0
passdb {{
  driver = oauth2
  mechanisms = oauthbearer xoauth2
  args = {oauth2_conf}
}}
userdb {{
  driver = static
  args = uid={_daemon.MAIL_UID} gid={_daemon.MAIL_GID} home=/nonexistent
}}
{DOVECOT_AUTH_SERVICES}"""


def _oauth2_conf(url: str) -> str:
    # RFC 7662 introspection by POST (token=...), trusting "active" and "username".
    return f"""\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def start(sasl_socket: str, log: Callable[[str], None] = print) -> OAuthStack:
    """Start the endpoint and a Dovecot serving OAuth on ``sasl_socket`` (in a new dir).

    ``sasl_socket``'s directory becomes Dovecot's ``base_dir``; the configuration and log
    go beside it. Raises :class:`StartError`, holding Dovecot's logs, when it does not
    come up in time.
    """
    _daemon.check_root("The OAuth stack's Dovecot")
    began = time.monotonic()
    base_dir = Path(sasl_socket).parent
    home = base_dir.with_name(base_dir.name + "-conf")
    home.mkdir(mode=0o755, exist_ok=True)
    introspection = Introspection()
    introspection.start()
    logs = {"dovecot": str(home / "dovecot.log"), "dovecot_stderr": str(home / "stderr.log")}
    oauth2_conf = home / "dovecot-oauth2.conf.ext"
    _daemon.write(oauth2_conf, _oauth2_conf(introspection.url))
    config = home / "dovecot.conf"
    _daemon.write(
        config, _dovecot_conf(base_dir, home / "state", Path(logs["dovecot"]), oauth2_conf)
    )
    stack = OAuthStack(introspection, str(home), str(base_dir), str(config), logs, 0.0)
    deadline = began + STARTUP_BUDGET
    try:
        _daemon.run_daemonizing(
            [DOVECOT, "-c", str(config)], Path(logs["dovecot_stderr"]), deadline
        )
        _daemon.wait_until_ready(
            {"oauth dovecot sasl socket": lambda: _daemon.probe_unix(sasl_socket, greets=False)},
            deadline,
            STARTUP_BUDGET,
        )
    except (StartError, OSError) as exc:
        report = _daemon.logs_report(logs)
        stop(stack)
        raise StartError(f"{exc}\n{report}") from exc
    stack.startup_seconds = round(time.monotonic() - began, 3)
    log(
        f"oauth stack started in {stack.startup_seconds:.2f} s; introspection at {introspection.url}"
    )
    return stack


def stop(stack: OAuthStack, log: Callable[[str], None] = print) -> None:
    """Stop the Dovecot (by the PID in its base_dir) and the endpoint."""
    pid = _daemon.read_pid(Path(stack.base_dir) / "master.pid")
    _daemon.terminate(pid, "dovecot", STOP_BUDGET, log)
    stack.introspection.close()
