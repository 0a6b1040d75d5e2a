"""What a server sends when no reply is owed: read it before the next command, never pair it.

The client reads only when it awaits a reply, so bytes sent while it is idle wait in the
transport or the core; paired with the next command they would shift every later reply
by one. A 421 (or 221) or a close is the server ending the session (RFC 5321 §3.8);
anything else is a protocol error.
"""

from __future__ import annotations

from collections.abc import Callable

from .._transport import Transport
from ..errors import SMTPServerDisconnected
from ..protocol import PEER_CLOSED, ClientConnection, RemoteProtocolError, Reply

__all__ = ["idle_and_clean", "take_unsolicited"]


def take_unsolicited(
    core: ClientConnection, transport: Transport, note: Callable[[Reply], None]
) -> None:
    """Read, without waiting, what arrived since the last reply.

    Raises :class:`SMTPServerDisconnected` (with the server's reply, if any) when it closed,
    and the core's :class:`~asmtp.protocol.RemoteProtocolError` for anything else, here or
    when the next command is sent.
    """
    data = transport.receive_nowait()
    if data is not None:
        core.receive_data(data)
    elif not core.buffered:
        return
    event = core.next_event()
    if event is PEER_CLOSED:
        raise SMTPServerDisconnected("the server closed the connection")
    if isinstance(event, Reply):  # a 421 or 221: any other reply raised in next_event()
        note(event)
        text = event.message.decode("utf-8", "replace")
        raise SMTPServerDisconnected(f"the server closed the connection: {event.code} {text}")


def idle_and_clean(
    core: ClientConnection, transport: Transport, note: Callable[[Reply], None]
) -> bool:
    """Whether nothing arrived while idle; if something did, the core is marked failed."""
    try:
        take_unsolicited(core, transport, note)
    except (RemoteProtocolError, SMTPServerDisconnected, OSError):
        core.fail()
        return False
    if core.buffered:  # the start of a reply nobody asked for
        core.fail()
        return False
    return True
