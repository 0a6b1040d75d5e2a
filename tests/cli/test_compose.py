"""The composer: MIME structure, types, charsets, file names, and memory bounded by blocks."""

from __future__ import annotations

import base64
import email.policy
import io
import tracemalloc
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asmtp.cli import _compose
from asmtp.cli._compose import BLOCK, TEXT_SPOOL_MEMORY, Draft, compose, content_type

from ._kit import FILES, make_files

HEADERS = [("From", "Ada <ada@example.org>"), ("To", "bob@example.com"), ("Subject", "Files")]


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(EmailMessage, policy=email.policy.default).parsebytes(raw)


def composed(draft: Draft, *, utf8: bool = False) -> bytes:
    out = io.BytesIO()
    compose(draft, out, utf8=utf8)
    return out.getvalue()


def test_every_file_comes_back_byte_for_byte_with_its_type_and_charset(tmp_path: Path) -> None:
    directory = make_files(tmp_path / "files")
    paths = sorted(directory.iterdir())
    raw = composed(Draft(HEADERS, text="See attached.", attachments=paths))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line endings only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    message = parse(raw)
    assert message.get_content_type() == "multipart/mixed"
    parts = list(message.iter_parts())
    assert parts[0].get_content() == "See attached.\r\n"
    attached = {part.get_filename(): part for part in parts[1:]}
    assert list(attached) == [path.name for path in paths]
    for name, content in FILES.items():
        assert attached[name].get_payload(decode=True) == content, name
    kinds = {name: (p.get_content_type(), p.get_param("charset")) for name, p in attached.items()}
    assert kinds == {
        "a-notes.txt": ("text/plain", "us-ascii"),
        "b-caf\u00e9.txt": ("text/plain", "utf-8"),
        "c-latin1.txt": ("application/octet-stream", None),  # charset unknown
        "d-image.png": ("image/png", None),
        "e-archive.tar.gz": ("application/octet-stream", None),  # compressed
        "f-data.unknownext": ("application/octet-stream", None),
        "g-empty.bin": ("application/octet-stream", None),
        "h-crlf.txt": ("text/plain", "us-ascii"),
    }


def test_non_ascii_file_names_are_encoded_per_rfc_2231(tmp_path: Path) -> None:
    path = tmp_path / "r\u00e9sum\u00e9 \u65e5\u672c.pdf"
    path.write_bytes(b"%PDF-1.4")
    raw = composed(Draft(HEADERS, attachments=[path]))
    assert b"filename*=utf-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.pdf" in raw
    assert raw.isascii()
    (part,) = parse(raw).iter_attachments()
    assert part.get_filename() == path.name


def test_control_characters_in_a_local_file_name_cannot_break_the_header(tmp_path: Path) -> None:
    path = tmp_path / "evil\r\nX-Injected: yes.txt"
    path.write_bytes(b"x")
    (part,) = parse(composed(Draft(HEADERS, attachments=[path]))).iter_attachments()
    assert part.get_filename() == "evil__X-Injected: yes.txt"
    assert part["X-Injected"] is None


def test_text_and_html_become_an_alternative_and_the_text_gets_its_charset() -> None:
    message = parse(composed(Draft(HEADERS, text="Gr\u00fc\u00dfe", html="<p>Gr\u00fc\u00dfe</p>")))
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_param("charset") == "utf-8"
    assert plain.get_content() == "Gr\u00fc\u00dfe\r\n"
    assert html.get_content() == "<p>Gr\u00fc\u00dfe</p>\r\n"


def test_utf8_headers_for_addresses_that_are_not_ascii() -> None:
    headers = [("From", "J\u00f6rg <j\u00f6rg@b\u00fccher.example>"), ("To", "a@example.com")]
    raw = composed(Draft(headers, text="hi"), utf8=True)
    assert "From: J\u00f6rg <j\u00f6rg@b\u00fccher.example>\r\n".encode() in raw


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", "text/plain"),
        ("a.PDF", "application/pdf"),
        ("a.tar.gz", "application/octet-stream"),
        ("a.svgz", "application/octet-stream"),
        ("a.bz2", "application/octet-stream"),
        ("noextension", "application/octet-stream"),
    ],
)
def test_content_type(name: str, expected: str) -> None:
    assert content_type(name) == expected


def test_memory_stays_bounded_by_the_block_size_whatever_the_file_size(tmp_path: Path) -> None:
    """Each file is read once in blocks and encoded as it goes: peak memory is a few blocks
    plus a text file's in-memory spool, not the files (32 MiB here), nor their base64 text,
    nor the flattened message."""
    big = tmp_path / "big.bin"
    text = tmp_path / "big.txt"
    with big.open("wb") as out:
        for _ in range(24):
            out.write(bytes(range(256)) * 4096)
    text.write_bytes(b"a line of ASCII text\n" * 400_000)  # 8 MiB, through its spool
    with (tmp_path / "out.eml").open("wb") as out:
        tracemalloc.start()
        try:
            compose(Draft(HEADERS, text="big", attachments=[big, text]), out)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < TEXT_SPOOL_MEMORY * 2 + 4 * BLOCK, f"peak {peak} bytes"
    with (tmp_path / "out.eml").open("rb") as composed_file:
        message = BytesParser(EmailMessage, policy=email.policy.default).parse(composed_file)
    sizes = {p.get_filename(): len(p.get_payload(decode=True)) for p in message.iter_attachments()}
    assert sizes == {"big.bin": 24 * 1024 * 1024, "big.txt": 8_400_000}


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3 * 57 + 5), st.integers(1, 200))
def test_base64_of_any_content_read_in_any_block_size(content: bytes, step: int) -> None:
    """The encoder carries partial base64 groups across short reads."""

    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(min(step, size if size is not None and size >= 0 else step))

    out = io.BytesIO()
    _compose._encode(Trickle(content), out)
    lines = out.getvalue().split(b"\r\n")
    assert lines[-1] == b""
    assert all(len(line) <= 76 for line in lines)
    assert base64.b64decode(b"".join(lines)) == content
