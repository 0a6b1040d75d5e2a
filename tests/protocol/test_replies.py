"""Reply parsing: ReplyReader and ClientConnection turn bytes into replies, in any chunking."""

from __future__ import annotations

import io
import smtplib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asmtp.protocol import ClientConnection, RemoteProtocolError, Reply, ReplyReader, State

from ._helpers import (
    GREETING,
    NEXT_REPLY_START,
    feed_three_ways,
    parse_bytewise,
    parse_whole,
    parse_with_next,
    raises_three_ways,
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"250 OK\r\n", [(250, (b"OK",))], id="single-line"),
        pytest.param(
            b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
            [(250, (b"mx.example", b"PIPELINING", b"SIZE 1000"))],
            id="multiline",
        ),
        pytest.param(b"250\r\n", [(250, (b"",))], id="code-only"),
        pytest.param(b"250 \r\n", [(250, (b"",))], id="code-and-space"),
        pytest.param(b"250-\r\n250\r\n", [(250, (b"", b""))], id="code-only-multiline"),
        pytest.param(b"250-a\n250 b\n", [(250, (b"a", b"b"))], id="bare-lf"),
        pytest.param(b"250-a\n250-b\r\n250 c\n", [(250, (b"a", b"b", b"c"))], id="mixed-endings"),
        pytest.param(b"250 a\rb\r\n", [(250, (b"a\rb",))], id="cr-inside-text"),
        pytest.param(b"250 caf\xc3\xa9 \xff\r\n", [(250, (b"caf\xc3\xa9 \xff",))], id="8-bit-text"),
        pytest.param(b"200 low\r\n599 high\r\n", [(200, (b"low",)), (599, (b"high",))], id="edges"),
        pytest.param(
            b"250 ok\r\n354 go ahead\r\n",
            [(250, (b"ok",)), (354, (b"go ahead",))],
            id="two-replies",
        ),
    ],
)
def test_well_formed_replies_parse_the_same_in_any_chunking(
    data: bytes, expected: list[tuple[int, tuple[bytes, ...]]]
) -> None:
    assert feed_three_ways(data) == expected


@pytest.mark.parametrize(
    ("data", "bad_line"),
    [
        pytest.param(b"25O nope\r\n", b"25O nope", id="non-digit-code"),
        pytest.param(b"abc\r\n", b"abc", id="letters"),
        pytest.param(b"100 low\r\n", b"100 low", id="code-100"),
        pytest.param(b"199 low\r\n", b"199 low", id="code-199"),
        pytest.param(b"600 high\r\n", b"600 high", id="code-600"),
        pytest.param(b"099 zero\r\n", b"099 zero", id="code-099"),
        pytest.param(b"25\r\n", b"25", id="two-digits"),
        pytest.param(b"\r\n", b"", id="empty-line"),
        pytest.param(b" 250 ok\r\n", b" 250 ok", id="leading-space"),
        pytest.param(b"250-a\r\n251 b\r\n", b"251 b", id="continuation-changes-code"),
        pytest.param(b"250-a\r\n550-b\r\n550 c\r\n", b"550-b", id="continuation-changes-class"),
        pytest.param(b"250Xfoo\r\n", b"250Xfoo", id="missing-separator"),
        pytest.param(b"250\tfoo\r\n", b"250\tfoo", id="tab-separator"),
        pytest.param(b"2500 ok\r\n", b"2500 ok", id="four-digits"),
    ],
)
def test_malformed_reply_raises_and_names_the_line(data: bytes, bad_line: bytes) -> None:
    raises_three_ways(data, shows=bad_line)


def test_malformed_reply_moves_the_connection_to_error() -> None:
    conn = ClientConnection()
    conn.receive_data(b"250Xfoo\r\n")
    with pytest.raises(RemoteProtocolError, match="250Xfoo"):
        conn.next_event()
    assert conn.state is State.ERROR


def line_of(length: int, ending: bytes = b"\r\n") -> bytes:
    """A reply line of exactly ``length`` bytes before its line ending."""
    return b"250 " + b"x" * (length - 4) + ending


LIMIT = 64


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("length", [LIMIT - 1, LIMIT])
def test_line_at_or_under_max_line_length_is_accepted(length: int, ending: bytes) -> None:
    [(code, lines)] = feed_three_ways(line_of(length, ending), max_line_length=LIMIT)
    assert (code, len(lines[0])) == (250, length - 4)


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_line_one_byte_over_max_line_length_raises(ending: bytes) -> None:
    raises_three_ways(line_of(LIMIT + 1, ending), max_line_length=LIMIT)


def test_continuation_line_over_max_line_length_raises() -> None:
    data = b"250-short\r\n" + line_of(LIMIT + 1)
    raises_three_ways(data, max_line_length=LIMIT)


def test_default_max_line_length_is_8192() -> None:
    assert ReplyReader().max_line_length == 8192
    assert parse_whole(line_of(8192)) == [(250, (b"x" * 8188,))]
    with pytest.raises(RemoteProtocolError, match="longer than 8192"):
        parse_whole(line_of(8193))


@pytest.mark.parametrize("complete_first", [b"", b"250 done\r\n"], ids=["alone", "after-a-reply"])
def test_buffer_stops_growing_past_the_line_limit(complete_first: bytes) -> None:
    reader = ReplyReader()
    reader.feed(complete_first)
    piece = b"x" * 4096
    high_water = 0
    errors = 0
    for _ in range(256):  # 1 MiB without a line ending
        try:
            reader.feed(piece)
        except RemoteProtocolError:
            errors += 1
        high_water = max(high_water, reader.buffered)
    assert errors >= 250
    assert high_water <= len(complete_first) + 8192 + 2


def test_connection_refuses_an_unterminated_line_over_the_limit() -> None:
    conn = ClientConnection(max_line_length=LIMIT)
    with pytest.raises(RemoteProtocolError, match="longer than 64 bytes"):
        conn.receive_data(b"220 " + b"x" * 100)
    assert conn.state is State.ERROR


def reply_with_lines(count: int) -> bytes:
    return b"250-line\r\n" * (count - 1) + b"250 last\r\n"


@pytest.mark.parametrize("count", [1, 4, 5])
def test_reply_with_at_most_max_reply_lines_is_accepted(count: int) -> None:
    [(_, lines)] = feed_three_ways(reply_with_lines(count), max_reply_lines=5)
    assert len(lines) == count


def test_reply_one_line_over_max_reply_lines_raises() -> None:
    raises_three_ways(reply_with_lines(6), max_reply_lines=5)


def reply_of_size(size: int) -> bytes:
    """A two-line reply of exactly ``size`` bytes including its CRLFs."""
    first = b"250-first\r\n"
    return first + b"250 " + b"y" * (size - len(first) - 6) + b"\r\n"


@pytest.mark.parametrize("size", [99, 100])
def test_reply_of_at_most_max_reply_bytes_is_accepted(size: int) -> None:
    [(code, _)] = feed_three_ways(reply_of_size(size), max_reply_bytes=100)
    assert code == 250


def test_reply_one_byte_over_max_reply_bytes_raises() -> None:
    raises_three_ways(reply_of_size(101), max_reply_bytes=100)


@pytest.mark.parametrize(("size", "fits"), [(99, True), (100, True), (101, False)])
def test_single_line_reply_is_held_to_max_reply_bytes(size: int, fits: bool) -> None:
    """A one-line reply within the line limit still counts against the reply's limit."""
    data = b"250 " + b"y" * (size - 6) + b"\r\n"
    if fits:
        assert feed_three_ways(data, max_reply_bytes=100) == [(250, (b"y" * (size - 6),))]
    else:
        raises_three_ways(data, max_reply_bytes=100)


@pytest.mark.parametrize(
    ("data", "limits", "error"),
    [
        pytest.param(
            b"250-a\r\n250-" + b"x" * 30 + b"\r\n250-b\r\n250 c\r\n",
            {"max_line_length": 20},
            "reply line longer than 20 bytes: b'250-" + "x" * 30 + "'",
            id="middle-line-length",
        ),
        pytest.param(
            reply_with_lines(9), {"max_reply_lines": 5}, "reply has more than 5 lines", id="lines"
        ),
        pytest.param(
            b"250-" + b"y" * 40 + b"\r\n250-" + b"y" * 40 + b"\r\n250 z\r\n",
            {"max_reply_bytes": 60},
            "reply is longer than 60 bytes",
            id="bytes",
        ),
        pytest.param(
            b"250-a\r\n250-b\r\n251-c\r\n250 d\r\n",
            {},
            "multiline reply changed its code from 250 to 251 in line b'251-c'",
            id="changed-code",
        ),
    ],
)
def test_a_multiline_reply_read_at_once_fails_as_it_does_line_by_line(
    data: bytes, limits: dict[str, int], error: str
) -> None:
    """The lines of a multiline reply that one read completes are taken together; a broken
    limit among them gives the error taking them one at a time gives, naming the same line."""
    messages = set()
    for way in (parse_whole, parse_with_next):
        with pytest.raises(RemoteProtocolError) as caught:
            way(data, **limits)
        messages.add(str(caught.value))
    assert messages == {error}


@pytest.mark.parametrize(
    ("conn", "data"),
    [
        (ClientConnection(max_line_length=LIMIT), GREETING.replace(b"ESMTP", b"E" * LIMIT)),
        (ClientConnection(max_reply_lines=2), reply_with_lines(3)),
        (ClientConnection(max_reply_bytes=100), reply_of_size(101)),
    ],
    ids=["line-length", "reply-lines", "reply-bytes"],
)
def test_connection_passes_each_limit_to_its_reader(conn: ClientConnection, data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(data)
        conn.next_event()
    assert conn.state is State.ERROR


def test_reader_keeps_the_next_replys_bytes_for_later() -> None:
    reader = ReplyReader()
    reader.feed(b"250 one\r\n" + NEXT_REPLY_START)
    assert reader.next_reply() == (250, (b"one",))
    assert reader.next_reply() is None
    assert reader.in_reply
    reader.feed(b"\r\n250 end\r\n")
    assert reader.next_reply() == (250, (b"next", b"end"))
    assert not reader.in_reply


def test_a_read_of_many_replies_is_taken_in_order_and_untaken_bytes_stay_exact() -> None:
    """One read can bring a whole pipelined group's replies (more than the reader splits
    off at once): each comes out in turn, and what is left reads back byte for byte."""
    replies = [
        b"250 2.1.5 rcpt %d\r\n" % n if n % 3 else b"250 2.1.5 rcpt %d\n" % n for n in range(300)
    ]
    rest = b"354 go\r\n250-par"
    reader = ReplyReader()
    reader.feed(b"".join(replies) + rest)
    for taken in range(300):
        untaken = b"".join(replies[taken:]) + rest
        assert (reader.buffered, reader.unconsumed) == (len(untaken), untaken)
        assert reader.next_reply() == (250, (b"2.1.5 rcpt %d" % taken,))
    assert reader.next_reply() == (354, (b"go",))
    assert reader.next_reply() is None
    assert (reader.buffered, reader.unconsumed, reader.in_reply) == (7, b"250-par", True)


def test_greeting_arrives_one_byte_at_a_time() -> None:
    conn = ClientConnection()
    events = []
    for index in range(len(GREETING)):
        conn.receive_data(GREETING[index : index + 1])
        events.append(conn.next_event())
    assert events[-1] == Reply(220, (b"mx.example ESMTP",))
    assert all(not isinstance(event, Reply) for event in events[:-1])
    assert parse_bytewise(GREETING) == [(220, (b"mx.example ESMTP",))]


class _OfflineSMTP(smtplib.SMTP):
    """smtplib's own reply reader, fed from bytes instead of a socket."""

    def __init__(self, wire: bytes) -> None:
        super().__init__(local_hostname="client.example")
        self.file = io.BytesIO(wire)


_TEXT = st.binary(max_size=30).filter(lambda text: b"\n" not in text)


@given(code=st.integers(200, 599), texts=st.lists(_TEXT, min_size=1, max_size=4))
def test_reply_message_equals_smtplib_getreply(code: int, texts: list[bytes]) -> None:
    wire = b"".join(
        b"%d%s%s\r\n" % (code, b" " if i == len(texts) - 1 else b"-", text)
        for i, text in enumerate(texts)
    )
    [(parsed_code, lines)] = parse_whole(wire)
    assert (parsed_code, Reply(parsed_code, lines).message) == _OfflineSMTP(wire).getreply()


@pytest.mark.parametrize(
    ("first_line", "expected"),
    [
        (b"2.1.0 Sender ok", (2, 1, 0)),
        (b"5.7.1 Relaying denied", (5, 7, 1)),
        (b"4.4.5", (4, 4, 5)),
        (b"3.0.0 not a class", None),
        (b"2.1 too short", None),
        (b"Sender ok", None),
        (b"", None),
    ],
)
def test_enhanced_status_is_read_from_the_first_line(
    first_line: bytes, expected: tuple[int, int, int] | None
) -> None:
    assert Reply(250, (first_line, b"2.0.0 second")).enhanced_status == expected
