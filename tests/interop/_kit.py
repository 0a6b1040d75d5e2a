"""Helpers for the interop tests: unique messages, Maildir polling, body and log comparison."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Final

import anyio

ME: Final = "client.interop.test"
"""The local hostname every client says in EHLO/LHLO (no DNS lookup of our own name)."""

TIMEOUT: Final = 10.0
"""Per-step timeout of the clients: a hang fails fast."""

DELIVERY_WAIT: Final = 30.0
"""Seconds a delivered message may take to appear (the MTAs deliver asynchronously; a
loaded 2-core machine was seen to need more than 10 s for 24 messages through Exim)."""

_HEAD_BYTES: Final = 64 * 1024


BODIES: Final = {
    "leading-dots": b".starts with a dot\r\n..two dots\r\n. dot space\r\n.\tdot tab\r\n",
    "lone-dot": b"before\r\n.\r\nafter the lone dot\r\n",
    "bare-lf": b"line one\nline two\n.\nlone dot above, bare LF\n..dots\n",
    "mixed-endings": b"crlf\r\nbare lf\nbare cr\rend\r\n",
    "no-final-newline": b"first line\r\nthe last line has no line ending",
    "dot-at-end-no-newline": b"first\r\n.",
    "long-lines": b"x" * 990 + b"\r\n." + b"y" * 989 + b"\r\n" + b"z" * 998 + b"\r\n",
    "empty": b"",
    "blank-lines": b"\r\n\r\n.\r\n\r\n",
}
"""Bodies that stress transparency: dots, line endings, long lines (``name -> body``)."""


def token() -> str:
    """A marker unique to one test run, put in the Subject to find the delivered copy."""
    return uuid.uuid4().hex


def message(
    marker: str,
    body: bytes,
    *,
    to: str = "user@example.test",
    sender: str = "sender@example.test",
    headers: bytes = b"",
) -> bytes:
    """A message with CRLF headers naming ``marker`` and ``body`` unchanged after them."""
    return (
        b"From: " + sender.encode() + b"\r\n"
        b"To: " + to.encode() + b"\r\n"
        b"Subject: interop " + marker.encode() + b"\r\n"
        b"Message-ID: <" + marker.encode() + b"@client.interop.test>\r\n" + headers + b"\r\n" + body
    )


def _header_block(data: bytes) -> bytes:
    normalised = data.replace(b"\r\n", b"\n")
    end = normalised.find(b"\n\n")
    return normalised if end < 0 else normalised[:end]


def _find(maildir: Path, marker: bytes, anywhere: bool) -> bytes | None:
    for sub in ("new", "cur"):
        for path in sorted((maildir / sub).iterdir()):
            data = path.read_bytes() if anywhere else None
            if data is not None:
                if marker in data:
                    return data
                continue
            with path.open("rb") as file:
                head = file.read(_HEAD_BYTES)
                if marker in _header_block(head):
                    return head + file.read()
    return None


async def delivered(
    maildir: Path, marker: str, *, anywhere: bool = False, wait: float = DELIVERY_WAIT
) -> bytes:
    """The message stored in ``maildir`` whose header block holds ``marker``, polling.

    ``anywhere``: the marker may be anywhere in the message (a delivery report's body).
    """
    with anyio.fail_after(wait):
        while True:
            found = await anyio.to_thread.run_sync(_find, maildir, marker.encode(), anywhere)
            if found is not None:
                return found
            await anyio.sleep(0.05)


async def absent(maildir: Path, marker: str, *, settle: float = 0.3) -> bool:
    """True if no message holding ``marker`` is in ``maildir`` (after letting it settle)."""
    await anyio.sleep(settle)
    return await anyio.to_thread.run_sync(_find, maildir, marker.encode(), True) is None


def body_after_headers(data: bytes) -> bytes:
    """The bytes after the header block, line endings normalised to LF."""
    normalised = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    _, separator, body = normalised.partition(b"\n\n")
    assert separator, f"no header/body separator in {normalised[:200]!r}"
    return body


def expected_body(sent: bytes) -> bytes:
    """What a store with LF line endings holds after the headers of ``sent``.

    CRLF, bare CR and bare LF are all one line ending (asmtp sends each as CRLF), and a
    body without a final line ending gets one (SMTP cannot end a message mid-line).
    """
    body = body_after_headers(sent)
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return body


def headers_of(data: bytes) -> bytes:
    """The header block of a stored message (LF line endings)."""
    return _header_block(data)


# -- Postfix's verbose session log (the trace port) -----------------------------------------

_LINE: Final = re.compile(r"postfix/trace/smtpd\[(?P<pid>\d+)\]: (?P<text>.*)$")
_READ: Final = re.compile(r"vstream_buf_get_ready: fd (?P<fd>\d+) got (?P<n>\d+)$")


def _session(lines: list[str], helo_name: str) -> list[str] | None:
    """The trace smtpd's log text for the session that said ``EHLO helo_name``.

    That smtpd process's lines from the read that carried the EHLO to its ``disconnect``
    line; None until the disconnect line is written.
    """
    parsed = [(m["pid"], m["text"]) for m in map(_LINE.search, lines) if m is not None]
    for index, (pid, text) in enumerate(parsed):
        if text.lower() != f"< unknown[127.0.0.1]: ehlo {helo_name}".lower():
            continue
        before = [t for i, (p, t) in enumerate(parsed) if p == pid and i <= index]
        after = [t for i, (p, t) in enumerate(parsed) if p == pid and i > index]
        begin = max(i for i, t in enumerate(before) if _READ.search(t))
        end = next((i for i, t in enumerate(after) if t.startswith("disconnect from")), None)
        return None if end is None else before[begin:] + after[: end + 1]
    return None


async def trace_session(
    log_file: str | Path, helo_name: str, *, wait: float = DELIVERY_WAIT
) -> list[str]:
    """The trace port's log of the finished session whose EHLO named ``helo_name``."""
    with anyio.fail_after(wait):
        while True:
            text = await anyio.Path(log_file).read_text(encoding="utf-8", errors="replace")
            session = _session(text.splitlines(), helo_name)
            if session is not None:
                return session
            await anyio.sleep(0.05)


def commands(session: list[str]) -> list[str]:
    """The command lines smtpd received in the session, in order."""
    return [t.partition(": ")[2] for t in session if t.startswith("< unknown[127.0.0.1]: ")]


def client_reads_before(session: list[str], verb: str) -> int:
    """How many reads of the client socket smtpd made after EHLO up to command ``verb``.

    The client socket is the one whose read carried the EHLO (the session's first line).
    Without pipelining every command after EHLO costs a read of its own.
    """
    first = _READ.search(session[0])
    assert first is not None
    received = [i for i, t in enumerate(session) if t.startswith("< unknown[127.0.0.1]: ")]
    ehlo, target = (
        received[0],
        next(i for i in received if session[i].partition(": ")[2].upper().startswith(verb)),
    )
    return sum(
        1
        for t in session[ehlo:target]
        if (m := _READ.search(t)) is not None and m["fd"] == first["fd"]
    )


def client_reads_between(session: list[str], start: tuple[str, int], end: tuple[str, int]) -> int:
    """Reads of the client socket after the ``n``-th command ``start`` up to the ``n``-th ``end``.

    Each is ``(verb, n)`` with ``n`` counted from 1; the read that carried ``end`` counts.
    """
    first = _READ.search(session[0])
    assert first is not None

    def index(verb: str, n: int) -> int:
        found = [
            i
            for i, t in enumerate(session)
            if t.startswith("< unknown[127.0.0.1]: ")
            and t.partition(": ")[2].upper().startswith(verb)
        ]
        return found[n - 1]

    return sum(
        1
        for t in session[index(*start) + 1 : index(*end)]
        if (m := _READ.search(t)) is not None and m["fd"] == first["fd"]
    )


def command_counts(session: list[str]) -> str:
    """The disconnect line's command counts, e.g. ``ehlo=1 mail=1 rcpt=1 bdat=1 quit=1 ...``."""
    return session[-1].partition("]")[2].strip()


def log_count(log_file: str | Path, needle: str) -> int:
    """How many lines of ``log_file`` contain ``needle`` (0 while it does not exist)."""
    try:
        text = Path(log_file).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return 0
    return sum(needle in line for line in text.splitlines())


async def log_grows(
    log_file: str | Path, needle: str, before: int, *, wait: float = DELIVERY_WAIT
) -> None:
    """Wait until more than ``before`` lines of ``log_file`` contain ``needle``."""
    with anyio.fail_after(wait):
        while True:
            if await anyio.to_thread.run_sync(log_count, log_file, needle) > before:
                return
            await anyio.sleep(0.05)


async def read_logs(*paths: str | Path) -> list[bytes]:
    """The contents of the log files among ``paths`` that exist."""
    return [await p.read_bytes() for p in map(anyio.Path, paths) if await p.exists()]
