"""asmtp.protocol: a sans-IO SMTP and LMTP client core.

Bytes in, replies out, in the spirit of h11: drive a :class:`ClientConnection` from any I/O
library. It imports nothing that performs I/O (no asyncio, anyio, trio, socket, ssl)::

    conn = ClientConnection()
    conn.receive_data(b"220 mx.example ESMTP\\r\\n")
    greeting = conn.next_event()              # Reply(220, ...)
    wire = conn.send(Ehlo(b"client.example"))  # b"EHLO client.example\\r\\n"
"""

from __future__ import annotations

from ._body import (
    BdatEncoder,
    DataEncoder,
    LineEndingNormaliser,
    crlf_size,
    normalise_line_endings,
)
from ._commands import command_line
from ._connection import ClientConnection
from ._errors import BadArgument, LocalProtocolError, ProtocolError, RemoteProtocolError
from ._events import (
    NEED_DATA,
    PEER_CLOSED,
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    MessageData,
    Noop,
    Quit,
    Raw,
    Rcpt,
    Reply,
    Rset,
    Sentinel,
    StartTLS,
    Vrfy,
)
from ._extensions import Extensions
from ._params import (
    Body,
    EnvId,
    Notify,
    Orcpt,
    Param,
    Ret,
    Size,
    SmtpUtf8,
    body_type,
    param_bytes,
    xtext,
)
from ._replies import ReplyReader
from ._state import TRANSITIONS, State

__all__ = [
    "NEED_DATA",
    "PEER_CLOSED",
    "TRANSITIONS",
    "Auth",
    "AuthResponse",
    "BadArgument",
    "Bdat",
    "BdatEncoder",
    "Body",
    "ClientConnection",
    "Command",
    "Data",
    "DataEncoder",
    "Ehlo",
    "EndOfData",
    "EnvId",
    "Expn",
    "Extensions",
    "Helo",
    "Help",
    "Lhlo",
    "LineEndingNormaliser",
    "LocalProtocolError",
    "Mail",
    "MessageData",
    "Noop",
    "Notify",
    "Orcpt",
    "Param",
    "ProtocolError",
    "Quit",
    "Raw",
    "Rcpt",
    "RemoteProtocolError",
    "Reply",
    "ReplyReader",
    "Ret",
    "Rset",
    "Sentinel",
    "Size",
    "SmtpUtf8",
    "StartTLS",
    "State",
    "Vrfy",
    "body_type",
    "command_line",
    "crlf_size",
    "normalise_line_endings",
    "param_bytes",
    "xtext",
]
