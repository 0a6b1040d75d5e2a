"""LMTP (RFC 2033): local delivery with one reply per accepted recipient after the data.

The transaction is SMTP's (the transaction layer reads one reply per accepted recipient
when the session is LMTP); what differs here is the greeting (LHLO) and Unix socket paths
as hosts.
"""

from __future__ import annotations

import dataclasses

from .._dkim import DKIMSigner
from .._transport import Connector, PreConnected, Proxy, connect
from ..protocol._connection import DEFAULT_MAX_PENDING
from ..protocol._replies import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINES,
)
from ._settings import DEFAULT_TIMEOUT, LMTP_PORT
from ._smtp import SMTP

__all__ = ["LMTP", "LMTP_PORT"]


class LMTP(SMTP):
    """LMTP (RFC 2033) to a local delivery agent, as :class:`smtplib.LMTP`.

    A host starting with ``/`` is a Unix socket path. Unlike smtplib, ``sendmail`` reads
    the one reply per accepted recipient that LMTP sends after the data: recipients refused
    there join the refused dict, and :class:`SMTPRecipientsRefused` is raised when every
    recipient failed.
    """

    default_port = LMTP_PORT
    ehlo_msg = "lhlo"

    def __init__(
        self,
        host: str = "",
        port: int = LMTP_PORT,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        *,
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
        self._session.settings = dataclasses.replace(self._session.settings, lmtp=True)

    def _split_host(self, host: str | None, port: int) -> tuple[str, int]:
        target = host if host is not None else (self._session.host or "localhost")
        if target.startswith("/"):
            return target, 0
        return super()._split_host(host, port)
