"""SMTP_SSL: SMTP over TLS from the first byte (RFC 8314), with a context of its own."""

from __future__ import annotations

import dataclasses
import ssl

from .._dkim import DKIMSigner
from .._transport import Connector, PreConnected, Proxy, connect, new_ssl_context
from ..protocol._connection import DEFAULT_MAX_PENDING
from ..protocol._replies import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINES,
)
from ._settings import DEFAULT_TIMEOUT, SMTP_SSL_PORT
from ._smtp import SMTP

__all__ = ["SMTP_SSL"]


class SMTP_SSL(SMTP):
    """SMTP over TLS from the first byte (RFC 8314, port 465), as :class:`smtplib.SMTP_SSL`.

    Unlike smtplib, the default ``context`` verifies the certificate chain and the host
    name (TLS 1.2 at least). A handshake or verification failure raises
    :class:`ssl.SSLError` from ``connect()``.
    """

    default_port = SMTP_SSL_PORT

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        local_hostname: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        source_address: tuple[str, int] | None = None,
        context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_reply_lines: int = DEFAULT_MAX_REPLY_LINES,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        max_pending: int = DEFAULT_MAX_PENDING,
        connector: Connector = connect,
        proxy: str | Proxy | None = None,
        sock: PreConnected | None = None,
        dkim: DKIMSigner | None = None,
    ) -> None:
        super().__init__(
            host,
            port,
            local_hostname,
            timeout,
            source_address,
            max_line_length=max_line_length,
            max_reply_lines=max_reply_lines,
            max_reply_bytes=max_reply_bytes,
            max_pending=max_pending,
            connector=connector,
            proxy=proxy,
            sock=sock,
            dkim=dkim,
        )
        self._session.settings = dataclasses.replace(
            self._session.settings,
            implicit_tls=True,
            context=context,
            server_hostname=server_hostname,
        )

    @property
    def context(self) -> ssl.SSLContext:
        """The TLS context: the one given, else this client's own default context.

        The default is made when first read (it loads the CA store), so changing it affects
        this client alone; a client whose context is never read uses one shared default
        that no caller can reach.
        """
        session = self._session
        if session.settings.context is None:
            session.settings = dataclasses.replace(session.settings, context=new_ssl_context())
        assert session.settings.context is not None  # noqa: S101 - set just above
        return session.settings.context

    @context.setter
    def context(self, context: ssl.SSLContext) -> None:
        self._session.settings = dataclasses.replace(self._session.settings, context=context)

    @property
    def server_hostname(self) -> str | None:
        """The name the certificate must match (default: the host)."""
        return self._session.settings.server_hostname
