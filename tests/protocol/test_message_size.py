"""RFC 1870's SIZE for a body, and the core sparing a second check of the body it sized."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asmtp.protocol import (
    Data,
    DataEncoder,
    EndOfData,
    Mail,
    MessageData,
    Rcpt,
    Rset,
    State,
    crlf_size,
    normalise_line_endings,
)

from ._helpers import greeted, script_at

_LINE_BYTES = st.binary(max_size=200) | st.lists(
    st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\n\r"]), max_size=40
).map(b"".join)


@given(_LINE_BYTES)
def test_crlf_size_is_the_length_of_the_normalised_bytes(data: bytes) -> None:
    assert crlf_size(data) == len(re.sub(rb"\r\n|\r|\n", b"\r\n", data))
    assert crlf_size(data) == len(normalise_line_endings(data))
    assert crlf_size(bytearray(data)) == crlf_size(data)


@pytest.mark.parametrize(
    ("data", "size"),
    [(b"", 0), (b"a\r\nb\r\n", 6), (b"a\nb\n", 6), (b"a\rb", 4), (b"\n\r", 4), (b"\r\r\n", 4)],
)
def test_crlf_size_counts_each_bare_ending_as_two_bytes(data: bytes, size: int) -> None:
    assert crlf_size(data) == size


def test_a_chunk_said_to_be_all_crlf_after_a_held_cr_is_still_checked() -> None:
    """The held CR makes the next chunk's first byte part of a line ending: the promise
    covers the chunk as given, not what follows the CR, so the encoder checks it."""
    encoder = DataEncoder()
    wire = encoder.encode(b"a\r") + encoder.encode(b"b\r\n", crlf_only=True) + encoder.finish()
    assert wire == b"a\r\nb\r\n.\r\n"


@given(_LINE_BYTES)
def test_a_sized_body_goes_out_exactly_as_an_unsized_one(body: bytes) -> None:
    """message_size() then the same object as the message: the same wire bytes as without."""
    plain = script_at(State.BODY)
    sized = script_at(State.BODY)
    assert sized.conn.message_size(body) == crlf_size(body)
    assert sized.send(MessageData(body), EndOfData()) == plain.send(MessageData(body), EndOfData())


def test_only_the_sized_object_is_spared_the_check() -> None:
    """Another body sent after one was sized (all CRLF) still has its bare LFs fixed."""
    script = script_at(State.BODY)
    assert script.conn.message_size(b"line\r\n") == 6
    assert script.send(MessageData(b"bare\n.dot\n")) == b"bare\r\n..dot\r\n"


@pytest.mark.parametrize("end", ["sent", "reset", "mail-refused", "failed"])
def test_the_core_holds_no_sized_body_once_its_transaction_is_over(end: str) -> None:
    """The body message_size() remembers is let go when it is sent, at RSET, when the
    server refuses the MAIL and when the connection fails: no message outlives its send."""
    body = bytes(bytearray(b"x" * 100 + b"\r\n"))  # an object of the test's own
    before = sys.getrefcount(body)
    script = greeted("PIPELINING")
    script.conn.message_size(body)
    assert sys.getrefcount(body) == before + 1
    if end == "sent":
        script.send(Mail(b"a@x"), Rcpt(b"b@y"), Data())
        script.receive(b"250 ok\r\n250 ok\r\n354 go\r\n")
        script.send(MessageData(body), EndOfData())
    elif end == "reset":
        script.send(Rset())
    elif end == "failed":
        script.send(Mail(b"a@x"))
        script.conn.fail()
    else:
        script.send(Mail(b"a@x"), Rcpt(b"b@y"))
        script.receive(b"550 no\r\n503 no\r\n")
        assert script.state() is State.READY
    assert sys.getrefcount(body) == before
