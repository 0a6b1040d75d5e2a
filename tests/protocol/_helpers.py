"""Helpers for the pure protocol tests: reply fixtures fed three ways, scripted exchanges.

Nothing here opens a socket or starts an event loop: every test drives the core with byte
strings and checks the exact bytes it produces.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import pytest

from asmtp.protocol import (
    NEED_DATA,
    PEER_CLOSED,
    Auth,
    Bdat,
    ClientConnection,
    Command,
    Data,
    Ehlo,
    Lhlo,
    Mail,
    Quit,
    Rcpt,
    RemoteProtocolError,
    Reply,
    ReplyReader,
    StartTLS,
    State,
)

Parsed = tuple[int, tuple[bytes, ...]]
"""What :meth:`ReplyReader.next_reply` returns for a complete reply."""

NEXT_REPLY_START = b"250-next"
"""The first bytes of a following reply, fed right after a fixture."""

GREETING = b"220 mx.example ESMTP\r\n"


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at every offset in ``cuts`` (empty pieces included)."""
    bounds = [0, *sorted(cuts), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


def drain(reader: ReplyReader) -> list[Parsed]:
    """Every complete reply the reader holds."""
    replies: list[Parsed] = []
    while (parsed := reader.next_reply()) is not None:
        replies.append(parsed)
    return replies


def parse_whole(data: bytes, **limits: int) -> list[Parsed]:
    """Feed ``data`` in one piece."""
    reader = ReplyReader(**limits)
    reader.feed(data)
    replies = drain(reader)
    assert not reader.in_reply, "a complete fixture left bytes behind"
    return replies


def parse_bytewise(data: bytes, **limits: int) -> list[Parsed]:
    """Feed ``data`` one byte at a time, asking for replies after every byte."""
    reader = ReplyReader(**limits)
    replies: list[Parsed] = []
    for index in range(len(data)):
        reader.feed(data[index : index + 1])
        replies += drain(reader)
    assert not reader.in_reply, "a complete fixture left bytes behind"
    return replies


def parse_with_next(data: bytes, **limits: int) -> list[Parsed]:
    """Feed ``data`` followed by the first bytes of another reply, in one piece."""
    reader = ReplyReader(**limits)
    reader.feed(data + NEXT_REPLY_START)
    replies = drain(reader)
    assert reader.in_reply, "the next reply's first bytes were lost"
    return replies


WAYS: Sequence[Callable[..., list[Parsed]]] = (parse_whole, parse_bytewise, parse_with_next)


def feed_three_ways(data: bytes, **limits: int) -> list[Parsed]:
    """Parse a reply fixture whole, one byte at a time and followed by the next reply's
    first bytes; assert the three agree and return the replies."""
    whole = parse_whole(data, **limits)
    assert parse_bytewise(data, **limits) == whole
    assert parse_with_next(data, **limits) == whole
    return whole


def raises_three_ways(data: bytes, *, shows: bytes | None = None, **limits: int) -> None:
    """Assert each of the three ways raises :class:`RemoteProtocolError`.

    ``shows``: bytes the error message must quote (the offending line).
    """
    for way in WAYS:
        with pytest.raises(RemoteProtocolError) as caught:
            way(data, **limits)
        if shows is not None:
            assert repr(shows) in str(caught.value), (way.__name__, str(caught.value))


def ehlo_reply(*keywords: str, code: int = 250) -> bytes:
    """A positive EHLO/LHLO reply advertising ``keywords``."""
    lines = [b"mx.example greets client.example"] + [k.encode("ascii") for k in keywords]
    return multiline(code, *lines)


def multiline(code: int, *lines: bytes) -> bytes:
    """A reply with ``lines`` of text, CRLF-terminated, the last one with a space."""
    *head, last = lines
    return b"".join(b"%d-%s\r\n" % (code, line) for line in head) + b"%d %s\r\n" % (code, last)


class Script:
    """Drives a :class:`ClientConnection` through exchanges, asserting the exact bytes sent.

    Each step is (commands, bytes we must send, bytes the server answers); the replies the
    answer produced are returned so that tests can check what they answer.
    """

    def __init__(self, *, lmtp: bool = False, **limits: int) -> None:
        self.conn = ClientConnection(lmtp=lmtp, **limits)

    def state(self) -> State:
        """The connection's state (a call, so that type checkers do not narrow it)."""
        return self.conn.state

    def features(self) -> dict[str, str] | None:
        """The connection's extensions as a plain dict, or ``None`` when it has none."""
        extensions = self.conn.extensions
        return None if extensions is None else dict(extensions)

    def send(self, *commands: Command) -> bytes:
        return b"".join(self.conn.send(command) for command in commands)

    def receive(self, data: bytes) -> list[Reply]:
        """Feed ``data`` and collect every reply it completes."""
        self.conn.receive_data(data)
        replies: list[Reply] = []
        while True:
            event = self.conn.next_event()
            if not isinstance(event, Reply):
                assert event is (PEER_CLOSED if data == b"" else NEED_DATA)
                return replies
            replies.append(event)

    def step(self, *commands: Command, sends: bytes, answers: bytes = b"") -> list[Reply]:
        """Send ``commands``, assert they produced exactly ``sends``, then feed ``answers``."""
        assert self.send(*commands) == sends
        return self.receive(answers) if answers else []

    def play(self, steps: Iterable[tuple[Sequence[Command], bytes, bytes]]) -> list[Reply]:
        """Run every (commands, sends, answers) step; return all the replies."""
        replies: list[Reply] = []
        for commands, sends, answers in steps:
            replies += self.step(*commands, sends=sends, answers=answers)
        return replies


def greeted(*keywords: str, lmtp: bool = False, **limits: int) -> Script:
    """A script past the greeting and a positive EHLO (LHLO for LMTP) advertising ``keywords``."""
    script = Script(lmtp=lmtp, **limits)
    [greeting] = script.receive(GREETING)
    assert greeting.code == 220
    if lmtp:
        script.step(Lhlo(b"client.example"), sends=b"LHLO client.example\r\n")
    else:
        script.step(Ehlo(b"client.example"), sends=b"EHLO client.example\r\n")
    [reply] = script.receive(ehlo_reply(*keywords))
    assert reply.code == 250
    return script


_IN_RCPT: list[tuple[Command, bytes]] = [
    (Mail(b"a@x"), b"250 ok\r\n"),
    (Rcpt(b"b@y"), b"250 ok\r\n"),
]
_PATHS: dict[State, list[tuple[Command, bytes]]] = {
    State.READY: [],
    State.MAIL: _IN_RCPT[:1],
    State.RCPT: _IN_RCPT,
    State.DATA_REQUESTED: [*_IN_RCPT, (Data(), b"")],
    State.BODY: [*_IN_RCPT, (Data(), b"354 go ahead\r\n")],
    State.BDAT: [*_IN_RCPT, (Bdat(b"chunk"), b""), (Bdat(b"more"), b"250 ok\r\n")],
    State.AUTH: [(Auth(b"LOGIN"), b"")],
    State.AUTH_CHALLENGE: [(Auth(b"LOGIN"), b"334 VXNlcm5hbWU6\r\n")],
    State.STARTTLS_REQUESTED: [(StartTLS(), b"")],
    State.TLS_HANDSHAKE: [(StartTLS(), b"220 go ahead\r\n")],
    State.CLOSED: [(Quit(), b"")],
}


def script_at(state: State, *keywords: str, lmtp: bool = False) -> Script:
    """A script whose connection reached ``state`` by an ordinary conversation.

    Every command on the way is answered except the last, when ``state`` awaits a reply.
    BDAT needs CHUNKING, so it is added to ``keywords`` for that state.
    """
    if state in (State.AWAIT_GREETING, State.GREETED, State.ERROR):
        script = Script(lmtp=lmtp)
        if state is State.GREETED:
            script.receive(GREETING)
        elif state is State.ERROR:
            with pytest.raises(RemoteProtocolError):
                script.receive(b"bad greeting\r\n")
    else:
        if state is State.BDAT and "CHUNKING" not in keywords:
            keywords = (*keywords, "CHUNKING")
        script = greeted(*keywords, lmtp=lmtp)
        for command, answer in _PATHS[state]:
            script.conn.send(command)
            if answer:
                script.receive(answer)
    assert script.conn.state is state
    return script
