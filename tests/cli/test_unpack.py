"""``asmtp unpack`` writes every part inside its directory, whatever the message claims."""

from __future__ import annotations

import base64
import os
import tempfile
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asmtp.cli._unpack import NAME_LIMIT, safe_name

from ._kit import invoke


def part(
    disposition: bytes | None, content: bytes, kind: bytes = b"application/octet-stream"
) -> bytes:
    head = b"Content-Type: " + kind + b"\r\nContent-Transfer-Encoding: base64\r\n"
    if disposition is not None:
        head += b"Content-Disposition: " + disposition + b"\r\n"
    return head + b"\r\n" + base64.encodebytes(content).replace(b"\n", b"\r\n")


def message(*parts: bytes) -> bytes:
    body = b"".join(b"--XyZ\r\n" + each + b"\r\n" for each in parts)
    return (
        b"From: a@example.org\r\nTo: b@example.com\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=XyZ\r\n\r\n" + body + b"--XyZ--\r\n"
    )


def attachment(name: bytes) -> bytes:
    return b'attachment; filename="' + name + b'"'


def unpack(raw: bytes, directory: Path) -> list[str]:
    result = invoke(["unpack", "-d", str(directory), "-"], stdin=raw)
    assert (result.code, result.stderr) == (0, ""), result.stderr
    return [line.rsplit("\t", 2)[0] for line in result.stdout.splitlines()]


def snapshot(root: Path, skip: Path) -> dict[str, bytes | str]:
    """Every entry under ``root`` outside ``skip``: file contents, link targets, dirs."""
    seen: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        if path.is_symlink():
            seen[str(path)] = "-> " + os.readlink(path)
        elif path.is_dir():
            seen[str(path)] = "dir"
        else:
            seen[str(path)] = path.read_bytes()
    return seen


def test_named_and_unnamed_parts(tmp_path: Path) -> None:
    raw = message(
        part(attachment(b"report.pdf"), b"%PDF-1.4", b"application/pdf"),
        part(None, b"plain text\n", b"text/plain"),
        part(b"attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt", b"utf-8 name"),
        part(b'attachment; filename="=?utf-8?q?caf=C3=A9.png?="', b"encoded word"),
        part(None, b"\x00\x01", b"application/x-unknown-kind"),
    )
    target = tmp_path / "new" / "nested"
    written = unpack(raw, target)
    assert written == [
        str(target / name)
        for name in (
            "report.pdf",
            "part-002.txt",
            "r\u00e9sum\u00e9.txt",
            "caf\u00e9.png",
            "part-005.bin",
        )
    ]
    assert (target / "report.pdf").read_bytes() == b"%PDF-1.4"
    assert (target / "part-002.txt").read_bytes() == b"plain text\n"
    assert (target / "part-005.bin").read_bytes() == b"\x00\x01"


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        (attachment(b"../../etc/passwd"), "passwd"),
        (attachment(b"/etc/passwd"), "passwd"),
        (attachment(b"..\\\\..\\\\windows\\\\win.ini"), "win.ini"),
        (attachment(b"C:\\\\evil.exe"), "evil.exe"),
        (attachment(b"C:evil.exe"), "evil.exe"),
        (attachment(b".."), "part-001.bin"),
        (attachment(b"...."), "part-001.bin"),
        (attachment(b"../.."), "part-001.bin"),
        (attachment(b".bashrc"), "bashrc"),
        (attachment(b"CON"), "_CON"),
        (attachment(b"nul.txt"), "_nul.txt"),
        (b"attachment; filename*=utf-8''%2e%2e%2f%2e%2e%2fy.txt", "y.txt"),
        (b"attachment; filename*=utf-8''a%00b%0d%0ac.txt", "abc.txt"),
        (b"attachment; filename*=utf-8''%E2%80%AEgnp.exe", "gnp.exe"),  # RIGHT-TO-LEFT OVERRIDE
        (attachment(b"=?utf-8?q?..=2F..=2Fx.txt?="), "x.txt"),
        (attachment(b"=?utf-8?b?" + base64.b64encode(b"/tmp/abs.txt") + b"?="), "abs.txt"),
        (b'attachment; filename*0="../"; filename*1="../z.txt"', "z.txt"),
    ],
)
def test_hostile_names_become_one_plain_name_inside_the_directory(
    tmp_path: Path, disposition: bytes, expected: str
) -> None:
    target = tmp_path / "out"
    before = snapshot(tmp_path, target)
    written = unpack(message(part(disposition, b"payload")), target)
    assert written == [str(target / expected)]
    assert [p.name for p in target.iterdir()] == [expected]
    assert (target / expected).read_bytes() == b"payload"
    assert snapshot(tmp_path, target) == before


def test_a_planted_symlink_is_never_followed_and_nothing_is_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    (target / "report.pdf").symlink_to(outside)
    (target / "notes.txt").write_bytes(b"mine")
    (target / "notes-1.txt").write_bytes(b"mine too")
    (target / "data.csv.gz").write_bytes(b"mine as well")
    raw = message(
        part(attachment(b"report.pdf"), b"attacker's bytes"),
        part(attachment(b"notes.txt"), b"new notes"),
        part(attachment(b"data.csv.gz"), b"gz"),
    )
    written = unpack(raw, target)
    assert written == [
        str(target / "report-1.pdf"),
        str(target / "notes-2.txt"),
        str(target / "data-1.csv.gz"),
    ]
    assert outside.read_bytes() == b"precious"
    assert (target / "notes.txt").read_bytes() == b"mine"
    assert (target / "notes-1.txt").read_bytes() == b"mine too"
    assert (target / "report-1.pdf").read_bytes() == b"attacker's bytes"


def test_long_names_are_shortened_keeping_the_extension(tmp_path: Path) -> None:
    name = "\u00e9" * 300 + ".pdf"
    raw = message(part(b"attachment; filename*=utf-8''" + urllib.parse.quote(name).encode(), b"x"))
    (written,) = unpack(raw, tmp_path / "out")
    kept = Path(written).name
    assert kept.endswith("\u00e9.pdf")
    assert len(kept.encode()) <= NAME_LIMIT


_HOSTILE = st.sampled_from(
    [
        "../",
        "..\\",
        "/",
        "\\",
        "C:",
        ":",
        "\x00",
        "\r\n",
        "\t",
        ".",
        "..",
        "~",
        "\u202e",
        " ",
        "%2f",
    ]
)
_NAMES = st.lists(st.one_of(_HOSTILE, st.text(max_size=12)), max_size=8).map("".join)
_ENCODINGS = st.sampled_from(["rfc2231", "encoded-word", "continuations"])


def _disposition(name: str, encoding: str) -> bytes:
    data = name.encode("utf-8", "surrogatepass")
    if encoding == "rfc2231":
        return b"attachment; filename*=utf-8''" + urllib.parse.quote_from_bytes(data).encode()
    if encoding == "encoded-word":
        return attachment(b"=?utf-8?b?" + base64.b64encode(data) + b"?=")
    quoted = urllib.parse.quote_from_bytes(data).encode()
    half = len(quoted) // 2
    while half and b"%" in quoted[max(0, half - 2) : half]:
        half -= 1  # do not split a %XX escape
    return b"attachment; filename*0*=utf-8''" + quoted[:half] + b"; filename*1*=" + quoted[half:]


@settings(
    max_examples=int(os.environ.get("UNPACK_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.tuples(_NAMES, _ENCODINGS, st.binary(max_size=64)), min_size=1, max_size=4))
def test_no_message_writes_outside_the_directory(parts: list[tuple[str, str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        target = root / "out"
        target.mkdir()
        (root / "outside.txt").write_bytes(b"precious")
        (target / "planted").symlink_to(root / "outside.txt")
        before = snapshot(root, target)
        raw = message(*(part(_disposition(name, how), content) for name, how, content in parts))
        written = unpack(raw, target)
        assert snapshot(root, target) == before
        assert len(written) == len(parts)
        for path, (_, _, content) in zip(written, parts, strict=True):
            made = Path(path)
            assert made.parent == target
            assert not made.is_symlink()
            assert made.read_bytes() == content
        assert (root / "outside.txt").read_bytes() == b"precious"


@given(st.text())
def test_safe_name_is_none_or_one_plain_component(raw: str) -> None:
    name = safe_name(raw)
    if name is not None:
        assert name not in ("", ".", "..")
        assert not any(ch in name for ch in "/\\:\x00\r\n")
        assert name.isprintable()
        assert not name.startswith(".")
        assert len(name.encode()) <= NAME_LIMIT + 1  # + the "_" before a device name
