"""LMTP (RFC 2033): local delivery with one reply per accepted recipient after the data.

The transaction is SMTP's; what differs is the greeting (LHLO), Unix socket paths as
hosts, and how the replies to the end of the data are judged.
"""

from __future__ import annotations

from typing import Final

from ._client import DEFAULT_TIMEOUT, SMTP, SendmailResult
from ._transport import Transport, connect_unix
from .errors import SMTPRecipientsRefused
from .protocol import Reply

__all__ = ["LMTP", "LMTP_PORT"]

LMTP_PORT: Final = 2003


class LMTP(SMTP):
    """LMTP (RFC 2033) to a local delivery agent, as :class:`smtplib.LMTP`.

    A host starting with ``/`` is a Unix socket path. Unlike smtplib, ``sendmail`` reads
    the one reply per accepted recipient that LMTP sends after the data: recipients refused
    there join the refused dict, and :class:`SMTPRecipientsRefused` is raised when every
    recipient failed.
    """

    default_port = LMTP_PORT
    ehlo_msg = "lhlo"
    _lmtp = True

    def __init__(
        self,
        host: str = "",
        port: int = LMTP_PORT,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        **limits: int,
    ) -> None:
        super().__init__(host, port, local_hostname, timeout, source_address, **limits)

    def _split_host(self, host: str | None, port: int) -> tuple[str, int]:
        target = host if host is not None else (self._host or "localhost")
        if target.startswith("/"):
            return target, 0
        return super()._split_host(host, port)

    async def _open_transport(self, host: str, port: int) -> Transport:
        if host.startswith("/"):
            return await connect_unix(host)
        return await super()._open_transport(host, port)

    def _tls_hostname(self) -> str | None:
        return None if self._host.startswith("/") else super()._tls_hostname()

    async def _finish(
        self,
        replies: list[Reply],
        recipients: list[str],
        refused: SendmailResult,
        *,
        reset: bool = True,
    ) -> SendmailResult:
        """RFC 2033 §4.2: one reply per accepted recipient, in RCPT order (never RSET)."""
        accepted = [each for each in recipients if each not in refused]
        delivered = [
            each for each, reply in zip(accepted, replies, strict=False) if reply.is_positive
        ]
        self._mark_finished(bool(delivered))
        for each, reply in zip(accepted, replies, strict=False):
            if reply.code not in (250, 251):
                refused[each] = (reply.code, reply.message)
        if len(replies) < len(accepted):
            # The server closed (421) before answering for everyone: not delivered as far
            # as we can tell, so report those recipients as refused with the last reply.
            last = replies[-1]
            for each in accepted[len(replies) :]:
                refused[each] = (last.code, last.message)
        if any(reply.code == 421 for reply in replies):
            await self.close()
        if len(refused) == len(recipients):
            raise SMTPRecipientsRefused(refused)
        return refused
