"""SMTP smuggling (CVE-2023-51764 class): no body can end the data early or hide a command.

A smuggling attack hides ``<LF>.<LF>`` (or ``<CR>.<CR>``, ``<LF>.<CR><LF>``...) in a body so
that a lenient server sees the data end there and reads the rest as new commands. The
encoder must emit no bare CR or LF at all, so every server, strict or lenient, sees the same
single end of data. Checked against an *independent* decoder written here (never asmtp's
own code), with arbitrary bodies cut into arbitrary chunks, through the bare
:class:`~asmtp.protocol.DataEncoder` and through a :class:`~asmtp.protocol.ClientConnection`,
plus one smoke test against a real server.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asmtp
from asmtp.protocol import (
    ClientConnection,
    Command,
    Data,
    DataEncoder,
    Ehlo,
    EndOfData,
    Mail,
    MessageData,
    Rcpt,
    Reply,
    State,
)
from support.aiosmtpd_server import RecordingHandler

from ._kit import client

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

PIECES: Final = [
    b"\r", b"\n", b".", b"a", b" ", b"\r\n", b"\n.\n", b"\r\n.\r", b"\n.\r\n", b"\r.\r",
    b".\r\n", b"\r\n.\r\n", b"..", b"MAIL FROM:<evil@x.test>", b"\x00", b"\xff",
]  # fmt: skip
BODIES: Final = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
    st.binary(max_size=200),
)
HYPOTHESIS: Final = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class SmugglingError(AssertionError):
    """The wire form would let some server see a different message."""


def strict_decode(wire: bytes) -> bytes:
    """Read DATA content the way RFC 5321 §4.5.2 says a server must.

    Lines end with CRLF only; the first line that is exactly ``.`` ends the data and must be
    the last thing on the wire; a leading dot is removed from every other line.
    """
    if not wire.endswith(b"\r\n"):
        raise SmugglingError(f"wire does not end with CRLF: {wire[-10:]!r}")
    lines = wire[:-2].split(b"\r\n")
    for number, line in enumerate(lines):
        if b"\r" in line or b"\n" in line:
            raise SmugglingError(f"bare CR or LF in line {number}: {line!r}")
    ends = [number for number, line in enumerate(lines) if line == b"."]
    if ends != [len(lines) - 1]:
        raise SmugglingError(f"end of data at lines {ends}, want only {len(lines) - 1}")
    content = [line[1:] if line.startswith(b".") else line for line in lines[:-1]]
    return b"".join(line + b"\r\n" for line in content)


def lenient_ends(wire: bytes) -> list[int]:
    """Where a lenient server (any of CR, LF, CRLF as a line end) would see the data end."""
    pattern = re.compile(rb"(?:\A|\r\n|\r|\n)\.(?=\r\n|\r|\n)")
    return [match.end() for match in pattern.finditer(wire)]


def normalised(body: bytes) -> bytes:
    """What the server should store: every line ending CRLF, a final one added if missing."""
    text = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return text if not text or text.endswith(b"\r\n") else text + b"\r\n"


def check_wire(body: bytes, wire: bytes) -> None:
    assert strict_decode(wire) == normalised(body)
    # Every lenient reading sees exactly one end of data, and it is the real one.
    assert lenient_ends(wire) == [len(wire) - 2]


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b".",
        b"\r",
        b"a\n.\nMAIL FROM:<evil@x.test>\n",
        b"a\r\n.\rRCPT TO:<evil@x.test>",
        b"a\n.\r\nDATA\r\n",
        b"a\r.\rb\r\n.\r\n",
        b"..\r\n.\r\n..",
    ],
)
def test_decoder_sees_one_end_for_known_smuggling_payloads(body: bytes) -> None:
    encoder = DataEncoder()
    check_wire(body, encoder.encode(body) + encoder.finish())


def test_the_independent_decoder_catches_a_smuggling_wire() -> None:
    """The checker is not vacuous: an unencoded payload fails it."""
    with pytest.raises(SmugglingError):
        strict_decode(b"a\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n")
    with pytest.raises(SmugglingError):
        strict_decode(b"a\r\n.\r\nb\r\n.\r\n")
    assert lenient_ends(b"a\r.\rb\r\n.\r\n") == [3, 8]


@HYPOTHESIS
@given(body=BODIES, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_data_encoder_never_lets_a_body_smuggle(body: bytes, cuts: list[int]) -> None:
    encoder = DataEncoder()
    wire = b"".join(encoder.encode(chunk) for chunk in cut(body, cuts)) + encoder.finish()
    check_wire(body, wire)


def _connection_in_body() -> ClientConnection:
    conn = ClientConnection()
    conn.receive_data(b"220 mx.test\r\n")
    assert isinstance(conn.next_event(), Reply)
    steps: list[tuple[Command, bytes]] = [
        (Ehlo(b"client.test"), b"250 mx.test\r\n"),
        (Mail(b"a@x.test"), b"250 ok\r\n"),
        (Rcpt(b"b@x.test"), b"250 ok\r\n"),
        (Data(), b"354 go\r\n"),
    ]
    for command, reply in steps:
        conn.send(command)
        conn.receive_data(reply)
        assert isinstance(conn.next_event(), Reply)
    assert conn.state is State.BODY
    return conn


@HYPOTHESIS
@given(body=BODIES, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_client_connection_never_lets_a_body_smuggle(body: bytes, cuts: list[int]) -> None:
    conn = _connection_in_body()
    wire = b"".join(conn.send(MessageData(chunk)) for chunk in cut(body, cuts))
    wire += conn.send(EndOfData())
    check_wire(body, wire)
    assert conn.state is State.READY
    conn.receive_data(b"250 queued\r\n")
    reply = conn.next_event()
    assert isinstance(reply, Reply)
    assert isinstance(reply.command, EndOfData)


@pytest.mark.anyio
async def test_smuggling_payload_is_one_message_to_a_real_server(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd reads the wire as a server does: one delivery, no extra MAIL."""
    payload = (
        b"Subject: hi\r\n\r\nbefore\n.\nMAIL FROM:<evil@x.test>\nRCPT TO:<victim@x.test>\n"
        b"DATA\n\r.\rsmuggled\r\n.\r\nQUIT\r\n"
    )
    server = smtpd_server_factory(RecordingHandler())
    async with client(server.port) as smtp:
        assert await smtp.sendmail("a@x.test", "b@x.test", payload) == {}
        assert await smtp.noop() == (250, b"2.0.0 OK")
    (delivery,) = server.handler.wait_for_deliveries(1)
    assert delivery.content == normalised(payload)
    assert delivery.rcpt_tos == ("b@x.test",)
    assert [c.split(" ")[0] for c in server.handler.commands] == [
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "NOOP",
        "QUIT",
    ]
    assert not smtp.is_connected
    assert isinstance(smtp, asmtp.SMTP)
