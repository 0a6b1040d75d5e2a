"""Helpers shared by the TLS and AUTH tests: client names, contexts that must fail."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Final

import trustme

ME: Final = "client.test"
WAIT: Final = 5.0
"""Per-operation timeout of every client here: a hang fails fast."""
MESSAGE: Final = b"Subject: secure\r\n\r\nover TLS\r\n"


def verbs(commands: list[str]) -> list[str]:
    """``["EHLO", "STARTTLS", ...]`` from a RecordingHandler's commands."""
    return [command.split()[0] for command in commands]


def system_default_context() -> ssl.SSLContext | None:
    """``ssl.create_default_context()``: the system CAs, which never issued a trustme cert."""
    return ssl.create_default_context()


def other_ca_context() -> ssl.SSLContext | None:
    """A verifying context that trusts a different trustme CA."""
    context = ssl.create_default_context()
    trustme.CA().configure_trust(context)
    return context


def no_context() -> ssl.SSLContext | None:
    """``None``: asmtp's own default context."""
    return None


UNTRUSTED_CONTEXTS: Final[dict[str, Callable[[], ssl.SSLContext | None]]] = {
    "asmtp-default": no_context,
    "system-default": system_default_context,
    "other-ca": other_ca_context,
}
"""Client contexts (by id) that do not trust the test server's CA."""


def context_state(context: ssl.SSLContext) -> dict[str, object]:
    """The settings of ``context`` that a client could be tempted to change."""
    return {
        "options": context.options,
        "verify_mode": context.verify_mode,
        "verify_flags": context.verify_flags,
        "check_hostname": context.check_hostname,
        "minimum_version": context.minimum_version,
        "maximum_version": context.maximum_version,
        "protocol": context.protocol,
        "cert_store": context.cert_store_stats(),
        "ciphers": [cipher["name"] for cipher in context.get_ciphers()],
        "post_handshake_auth": context.post_handshake_auth,
        "sni_callback": context.sni_callback,
    }
