"""The smtplib-shaped client: a session over a transport, the mail transaction on top of it,
and ``SMTP``, ``SMTP_SSL``, ``LMTP`` and the one-shot functions as its public surface.

Layers, each importing only those below it: ``_checks``, ``_settings``, ``_url``,
``_deadlines``, ``_failures``, ``_advice``, ``_transcript``, ``_hostname``, the message
helpers (``_addresses``, ``_flatten``, ``_source``, ``_message``), ``_upload``, ``_progress``
and ``_hooks`` (the observer interface); ``_dial`` and ``_session`` (I/O, deadlines,
failure translation); ``_commands``, ``_tls``, ``_login`` (session commands); ``_envelope``,
``_observed`` and ``_transaction`` (one message), ``_overlap`` (several on one connection);
``_attributes``, ``_smtp``, ``_smtp_ssl``, ``_lmtp``, ``_open`` and ``_oneshot`` on top.
``docs/architecture.md`` walks one ``sendmail`` through them.
"""

from __future__ import annotations

from .._transport import Proxy
from ._commands import quit as quit_session
from ._envelope import Outgoing
from ._hooks import ConnectionWatch, Observer, Peer, SendWatch
from ._hooks import current as current_observer
from ._hooks import install as install_observer
from ._hooks import uninstall as uninstall_observer
from ._lmtp import LMTP, LMTP_PORT
from ._observed import observed
from ._oneshot import connect, send_message, sendmail
from ._open import client_settings, open_session
from ._overlap import Report, send_batch
from ._session import Session
from ._settings import DEFAULT_TIMEOUT, SMTP_SSL_PORT, ClientSettings, TLSMode
from ._smtp import SMTP
from ._smtp_ssl import SMTP_SSL
from ._transaction import send as send_one
from ._upload import OnProgress

__all__ = [
    "DEFAULT_TIMEOUT",
    "LMTP",
    "LMTP_PORT",
    "SMTP",
    "SMTP_SSL",
    "SMTP_SSL_PORT",
    "ClientSettings",
    "ConnectionWatch",
    "Observer",
    "OnProgress",
    "Outgoing",
    "Peer",
    "Proxy",
    "Report",
    "SendWatch",
    "Session",
    "TLSMode",
    "client_settings",
    "connect",
    "current_observer",
    "install_observer",
    "observed",
    "open_session",
    "quit_session",
    "send_batch",
    "send_message",
    "send_one",
    "sendmail",
    "uninstall_observer",
]
