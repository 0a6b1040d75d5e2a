"""CHUNKING (RFC 3030): a message body as BDAT chunks, the envelope pipelined before it.

With PIPELINING the envelope and the first chunk share one write, so a message that fits
one chunk costs one round trip. After a refused chunk no further chunk is sent
(RFC 3030 §4.2). BDAT never dot-stuffs; line endings are written as CRLF unless the caller
asked for BODY=BINARYMIME, whose bytes go out as given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from . import _source
from .errors import SMTPDataError
from .protocol import Bdat, LineEndingNormaliser, Param, Reply, command_line

if TYPE_CHECKING:
    from ._client import SMTP, SendmailResult

__all__ = ["send_chunked"]

# BDAT chunks written before their replies are read: bounds the replies queued unread.
_CHUNKS_IN_FLIGHT: Final = 32


async def send_chunked(
    smtp: SMTP,
    from_addr: str,
    recipients: list[str],
    source: _source.MessageSource,
    options: Sequence[Param],
    rcpt_options: Sequence[Param],
    *,
    pipelining: bool,
    verbatim: bool = False,
) -> SendmailResult:
    """CHUNKING (RFC 3030): the body as BDAT chunks, the last marked LAST.

    With PIPELINING the envelope and the first chunk share one write and replies are
    read as they are owed (one round trip for a message that fits one chunk); without
    it, lock-step. After a refused chunk no further chunk is sent (RFC 3030 §4.2).
    ``verbatim`` sends the bytes as given (BINARYMIME); otherwise line endings are
    written as CRLF.
    """
    conn = smtp._require()[0]
    refused: SendmailResult = {}
    if pipelining:
        commands = smtp._envelope(from_addr, recipients, options, rcpt_options)
        unsent = smtp._send_all(commands)
    else:
        for command in smtp._envelope(from_addr, recipients, options, rcpt_options):
            command_line(command)  # every argument checked before lock-step begins
        refused = await smtp._envelope_lockstep(from_addr, recipients, options, rcpt_options)
        commands, unsent = [], b""
    replies: list[Reply] = []
    normaliser: LineEndingNormaliser | _AsGiven = _AsGiven() if verbatim else LineEndingNormaliser()
    held: bytes | None = None
    completed = True
    smtp._mark_body_started()
    async with contextlib.aclosing(_source.chunks(source)) as chunks:
        async for chunk in chunks:
            piece = normaliser.encode(chunk)
            if not piece:
                continue  # a BDAT chunk must not be empty unless it is the LAST one
            if held is not None:
                await smtp._write(unsent + smtp._send(Bdat(held)))
                unsent = b""
                in_flight = _CHUNKS_IN_FLIGHT if pipelining else 0
                while conn.pending_count > in_flight:
                    replies.append(await smtp.getreply())
                if _chunking_refused(replies, len(commands)):
                    completed = False
                    break
            held = piece
    if completed:
        last = smtp._send(Bdat((held or b"") + normaliser.finish(), last=True))
        smtp._mark_end_sent()
        await smtp._write(unsent + last)
    replies += await smtp._read_pending(conn)
    if commands:
        refused = await smtp._judge_envelope(
            from_addr, recipients, replies[: len(commands)], abandon=[]
        )
    body_replies = replies[len(commands) :]
    refusal = next((r for r in body_replies if not r.is_positive and not _is_last(r)), None)
    if refusal is not None or not completed:
        reply = refusal or body_replies[-1]
        await smtp._after_failure(reply.code)
        raise SMTPDataError(reply.code, reply.message)
    return await smtp._finish([r for r in body_replies if _is_last(r)], recipients, refused)


def _chunking_refused(replies: list[Reply], envelope_count: int) -> bool:
    """MAIL refused, or any chunk refused: no further chunk may be sent (RFC 3030 §4.2)."""
    if envelope_count and replies and replies[0].code != 250:
        return True
    return any(not reply.is_positive for reply in replies[envelope_count:])


class _AsGiven:
    """The BDAT body writer for BINARYMIME: every byte as the caller gave it."""

    def encode(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


def _is_last(reply: Reply) -> bool:
    return isinstance(reply.command, Bdat) and reply.command.last
