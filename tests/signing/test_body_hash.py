"""The incremental body hash equals dkimpy's canonicalization of the whole wire form.

RFC 6376 §3.4.3 (simple) and §3.4.4 (relaxed), after the line endings the wire carries
(every bare CR or LF as CRLF, a final CRLF): any body, split anywhere, hashes the same.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from dkim.canonicalization import Relaxed, Simple
from hypothesis import given, settings
from hypothesis import strategies as st

from asmtp._dkim._body import BodyHash, LineEndings

# Bodies rich in what canonicalization cares about: line endings, spaces, tabs, dots.
_PIECES = st.sampled_from([b"\r\n", b"\r", b"\n", b" ", b"\t", b"  \t ", b".", b"a", b"\xc3\xa9"])
BODIES = st.lists(st.one_of(_PIECES, st.binary(max_size=8)), max_size=40).map(b"".join)


def wire(body: bytes) -> bytes:
    """The body as sent: CRLF line endings, ending with CRLF when not empty."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", body)
    return data if not data or data.endswith(b"\r\n") else data + b"\r\n"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def incremental(body: bytes, cuts: list[int], *, relaxed: bool) -> bytes:
    endings, digest = LineEndings(), BodyHash(relaxed=relaxed)
    for piece in split(body, cuts):
        digest.update(endings.feed(piece))
    digest.update(endings.finish())
    return digest.digest()


@settings(max_examples=400, deadline=None)
@given(body=BODIES, cuts=st.lists(st.integers(0, 400), max_size=8), relaxed=st.booleans())
def test_any_split_hashes_as_dkimpy_canonicalizes_the_whole_body(
    body: bytes, cuts: list[int], relaxed: bool
) -> None:
    canonical = (Relaxed if relaxed else Simple).canonicalize_body(wire(body))
    assert incremental(body, cuts, relaxed=relaxed) == hashlib.sha256(canonical).digest()


@given(body=BODIES, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_line_endings_are_those_of_the_wire_whatever_the_split(
    body: bytes, cuts: list[int]
) -> None:
    endings = LineEndings()
    out = b"".join(endings.feed(piece) for piece in split(body, cuts)) + endings.finish()
    assert out == re.sub(rb"\r\n|\r|\n", b"\r\n", body)


@pytest.mark.parametrize(
    ("body", "relaxed", "canonical"),
    [
        # RFC 6376 §3.4.6's example: relaxed body of " C \r\nD \t E\r\n\r\n\r\n".
        (b" C \r\nD \t E\r\n\r\n\r\n", True, b" C\r\nD E\r\n"),
        (b" C \r\nD \t E\r\n\r\n\r\n", False, b" C \r\nD \t E\r\n"),
        (b"", True, b""),
        (b"", False, b"\r\n"),  # §3.4.3: an empty body is one CRLF
        (b"\r\n\r\n", True, b""),
        (b"\r\n\r\n", False, b"\r\n"),
        (b"last line  ", True, b"last line\r\n"),  # hashed with the CRLF it is sent with
    ],
)
def test_rfc_6376_examples(body: bytes, relaxed: bool, canonical: bytes) -> None:
    assert incremental(body, [], relaxed=relaxed) == hashlib.sha256(canonical).digest()
