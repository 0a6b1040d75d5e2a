"""Fixtures of the proxy tests: a certificate for the mail server's name, a test proxy."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import NamedTuple

import pytest
import trustme

from support.proxy_server import TestProxy

from ._kit import MAIL_NAME, started_proxy


class MailTLS(NamedTuple):
    """A server context whose certificate names only MAIL_NAME and localhost (not the
    proxies' address 127.0.0.1), and a client context trusting only its CA."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture
def mail_tls(trustme_ca: trustme.CA) -> MailTLS:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme_ca.issue_cert(MAIL_NAME, "localhost").configure_cert(server)
    client = ssl.create_default_context()
    trustme_ca.configure_trust(client)
    return MailTLS(server, client)


@pytest.fixture
def proxy() -> Iterator[TestProxy]:
    """A started test proxy requiring the test credentials; stopped afterwards."""
    started = started_proxy()
    try:
        yield started
    finally:
        started.stop()
