"""DataEncoder: line endings normalised, dots stuffed, terminator added; in any chunking."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asmtp.protocol import DataEncoder, normalise_line_endings
from asmtp.protocol._body import LineEndingNormaliser

from ._helpers import split_at


def encode(*chunks: bytes) -> bytes:
    encoder = DataEncoder()
    return b"".join(encoder.encode(chunk) for chunk in chunks) + encoder.finish()


@pytest.mark.parametrize(
    ("body", "wire"),
    [
        pytest.param(b"", b".\r\n", id="empty"),
        pytest.param(b"hello", b"hello\r\n.\r\n", id="no-final-newline"),
        pytest.param(b"hello\r\n", b"hello\r\n.\r\n", id="crlf"),
        pytest.param(b".hidden\r\n", b"..hidden\r\n.\r\n", id="leading-dot"),
        pytest.param(b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n", id="lone-dot-line"),
        pytest.param(b".", b"..\r\n.\r\n", id="lone-dot-body"),
        pytest.param(b"..\r\n", b"...\r\n.\r\n", id="two-dots"),
        pytest.param(b"a\n..b\n", b"a\r\n...b\r\n.\r\n", id="dots-after-bare-lf"),
        pytest.param(b"a.b\r\n.", b"a.b\r\n..\r\n.\r\n", id="dot-mid-line-untouched"),
        pytest.param(b"a\nb", b"a\r\nb\r\n.\r\n", id="bare-lf"),
        pytest.param(b"a\rb", b"a\r\nb\r\n.\r\n", id="bare-cr"),
        pytest.param(b"a\r", b"a\r\n.\r\n", id="final-bare-cr"),
        pytest.param(b"\r\n", b"\r\n.\r\n", id="only-crlf"),
        pytest.param(b"\n", b"\r\n.\r\n", id="only-lf"),
        pytest.param(b"\r", b"\r\n.\r\n", id="only-cr"),
        pytest.param(b"\r\r\n", b"\r\n\r\n.\r\n", id="cr-then-crlf"),
        pytest.param(b"\n\r", b"\r\n\r\n.\r\n", id="lf-then-cr"),
        pytest.param(b"a\r\nb\nc\rd\r\n", b"a\r\nb\r\nc\r\nd\r\n.\r\n", id="mixed"),
        pytest.param(b"\r.\n.", b"\r\n..\r\n..\r\n.\r\n", id="dots-after-cr-and-lf"),
        pytest.param(bytes(range(128, 256)), bytes(range(128, 256)) + b"\r\n.\r\n", id="8-bit"),
        pytest.param(b"\x00\t\x7f", b"\x00\t\x7f\r\n.\r\n", id="controls"),
    ],
)
def test_body_is_encoded_byte_for_byte(body: bytes, wire: bytes) -> None:
    assert encode(body) == wire
    assert encode(*(body[i : i + 1] for i in range(len(body)))) == wire


SPLIT_INPUTS = [b"a\r\n.b", b"\r\n.\r\n", b".x\r\n..\r\n", b"a\r\rb\n\n.", b"x\r", b"\r.\r"]


@pytest.mark.parametrize(
    ("body", "cut"),
    [(body, cut) for body in SPLIT_INPUTS for cut in range(len(body) + 1)],
    ids=lambda value: repr(value),
)
def test_a_split_anywhere_gives_the_same_bytes(body: bytes, cut: int) -> None:
    assert encode(body[:cut], body[cut:]) == encode(body)


def test_empty_chunks_change_nothing() -> None:
    assert encode(b"", b"a\r", b"", b"", b"\n.", b"") == encode(b"a\r\n.")


def test_a_finished_encoder_refuses_more() -> None:
    encoder = DataEncoder()
    encoder.finish()
    with pytest.raises(RuntimeError):
        encoder.encode(b"more")
    with pytest.raises(RuntimeError):
        encoder.finish()


@pytest.mark.parametrize(
    ("data", "normalised"),
    [(b"", b""), (b"a\rb\nc\r\nd", b"a\r\nb\r\nc\r\nd"), (b"\r\r\n\n", b"\r\n\r\n\r\n")],
)
def test_normalise_line_endings_writes_every_ending_as_crlf(data: bytes, normalised: bytes) -> None:
    assert normalise_line_endings(data) == normalised


# Bodies rich in the bytes that matter, bodies already in CRLF form (the encoders' fast
# path, which only stuffs dots), plus arbitrary binary.
BODIES = st.one_of(
    st.lists(st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"..", b"a", b"\xff", b"\x00"])).map(
        b"".join
    ),
    st.lists(st.sampled_from([b".", b"\r\n", b"..", b"a", b"\r\n.", b"\xff"])).map(b"".join),
    st.binary(),
)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    body = draw(BODIES)
    cuts = draw(st.lists(st.integers(0, len(body))))
    return body, split_at(body, cuts)


def reference_normalise(data: bytes) -> bytes:
    return re.sub(rb"\r\n|\r|\n", b"\r\n", data)


def unstuff(wire: bytes) -> bytes:
    """An independent decoder: strip the terminator, split on CRLF, drop one leading dot."""
    assert wire.endswith(b".\r\n")
    content = wire[: -len(b".\r\n")]
    if not content:
        return b""
    assert content.endswith(b"\r\n")
    lines = content[: -len(b"\r\n")].split(b"\r\n")
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


@given(chunked())
def test_any_chunking_gives_the_one_piece_output(case: tuple[bytes, list[bytes]]) -> None:
    body, chunks = case
    assert encode(*chunks) == encode(body)


@given(chunked())
def test_output_has_no_bare_cr_or_lf_and_one_terminator_at_the_end(
    case: tuple[bytes, list[bytes]],
) -> None:
    wire = encode(*case[1])
    assert b"\r" not in wire.replace(b"\r\n", b"")
    assert b"\n" not in wire.replace(b"\r\n", b"")
    # The DATA command's own CRLF precedes the body, so an early ".\r\n" would end it too.
    on_the_wire = b"DATA\r\n" + wire
    assert on_the_wire.find(b"\r\n.\r\n") == len(on_the_wire) - len(b"\r\n.\r\n")


@given(chunked())
def test_unstuffing_gives_back_the_normalised_body(case: tuple[bytes, list[bytes]]) -> None:
    body, chunks = case
    expected = reference_normalise(body)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert unstuff(encode(*chunks)) == expected


@given(BODIES)
def test_normalise_line_endings_agrees_with_a_regex(body: bytes) -> None:
    assert normalise_line_endings(body) == reference_normalise(body)


def normalise_in_chunks(chunks: list[bytes]) -> bytes:
    normaliser = LineEndingNormaliser()
    return b"".join(normaliser.encode(chunk) for chunk in chunks) + normaliser.finish()


@pytest.mark.parametrize(
    ("chunks", "wire"),
    [
        ([b".a\n", b".\r", b"\n.."], b".a\r\n.\r\n.."),
        ([b"x\r", b""], b"x\r\n"),
        ([b"\r", b"\r", b"\n"], b"\r\n\r\n"),
        ([], b""),
    ],
)
def test_bdat_normaliser_fixes_line_endings_and_never_stuffs_dots(
    chunks: list[bytes], wire: bytes
) -> None:
    assert normalise_in_chunks(chunks) == wire


@given(chunked())
def test_bdat_normaliser_in_any_chunking_equals_normalising_the_whole(
    case: tuple[bytes, list[bytes]],
) -> None:
    body, chunks = case
    assert normalise_in_chunks(chunks) == reference_normalise(body)
