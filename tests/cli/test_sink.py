"""``asmtp sink`` as a real process: Maildir delivery, signals, LMTP, STARTTLS; and the whole
directory round trip ``send -d`` -> sink's Maildir -> ``unpack``, byte for byte."""

from __future__ import annotations

import email.policy
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Final

import pytest
from testing._wire import Wire

from ._kit import FILES, environment, make_files, run

WAIT: Final = 15.0


class Sink:
    """``python -m asmtp sink ARGS`` with its standard output read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter and our module
            [sys.executable, "-m", "asmtp", "sink", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=environment(),
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.banner = [self.expect("asmtp sink: listening on")]
        self.address = self.banner[0].split("listening on ")[1].split(" (")[0]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, start: str) -> str:
        """The next line starting with ``start`` (earlier lines are dropped)."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.process.kill()
                raise AssertionError(f"no line starting {start!r} within {WAIT} s") from None
            if line.startswith(start):
                return line

    @property
    def port(self) -> str:
        return self.address.rsplit(":", 1)[1]

    def stop(self, how: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        """Send ``how``; the exit code and standard error."""
        self.process.send_signal(how)
        code = self.process.wait(WAIT)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def sinks() -> Iterator[list[Sink]]:
    started: list[Sink] = []
    yield started
    for sink in started:
        sink.kill()


def start(sinks: list[Sink], *args: str) -> Sink:
    sink = Sink(*args)
    sinks.append(sink)
    return sink


def stored(maildir: Path) -> list[Path]:
    assert list((maildir / "tmp").iterdir()) == []  # nothing half-written
    return sorted((maildir / "new").iterdir())


def test_directory_mail_round_trip(sinks: list[Sink], tmp_path: Path) -> None:
    files = make_files(tmp_path / "files")
    maildir = tmp_path / "Maildir"
    sink = start(sinks, "--listen", "127.0.0.1:0", "--maildir", str(maildir), "--chunking")
    assert sink.expect("asmtp sink: storing messages in the Maildir") == (
        f"asmtp sink: storing messages in the Maildir {maildir}"
    )
    sent = run(
        [
            *(
                "send",
                "--host",
                "127.0.0.1",
                "--port",
                sink.port,
                "--tls",
                "none",
                "-d",
                str(files),
            ),
            *("-s", "ada@example.org", "-r", "bob@example.com", "--bcc", "eve@example.com"),
        ]
    )
    assert (sent.code, sent.stderr) == (0, ""), sent.stderr
    summary = sink.expect("")  # the next line
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d from=<ada@example\.org> to=<bob@example\.com>,<eve@example\.com> "
        rf"subject='Contents of directory {re.escape(str(files))}' size=\d+ "
        r"mime=multipart/mixed\((text/plain|image/png|application/octet-stream)(, \S+)+\) "
        r"-> new/\S+",
        summary,
    ), summary
    code, errors = sink.stop(signal.SIGTERM)
    assert (code, errors) == (0, "")
    assert sink.expect("asmtp sink: stopped") == "asmtp sink: stopped; 1 message(s) received"

    (path,) = stored(maildir)
    assert summary.endswith(f"-> new/{path.name}")
    data = path.read_bytes()
    assert data.startswith(
        b"Return-Path: <ada@example.org>\nDelivered-To: bob@example.com\n"
        b"Delivered-To: eve@example.com\nFrom: ada@example.org\n"
    )
    assert b"\r\n" not in data  # Maildir convention: LF line endings
    message = BytesParser(EmailMessage, policy=email.policy.default).parsebytes(data)
    assert message["Bcc"] is None
    attached = {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()}
    assert attached == FILES

    out = tmp_path / "unpacked"
    unpacked = run(["unpack", "-d", str(out), str(path)])
    assert (unpacked.code, unpacked.stderr) == (0, "")
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    for name, content in FILES.items():
        assert (out / name).read_bytes() == content, name


def test_stopping_mid_message_leaves_nothing_half_written(
    sinks: list[Sink], tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    sink = start(sinks, "--listen", "127.0.0.1:0", "--maildir", str(maildir))
    wire = Wire("127.0.0.1", int(sink.port))
    try:
        assert wire.reply().startswith(b"220")
        for line in (b"EHLO c.test", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.com>"):
            assert wire.command(line).startswith(b"250")
        assert wire.command(b"DATA").startswith(b"354")
        wire.send(b"Subject: never finished\r\n\r\nhalf a bo")
        code, errors = sink.stop(signal.SIGINT)
        assert (code, errors) == (0, "")
        assert wire.closed()
    finally:
        wire.close()
    assert sink.expect("asmtp sink: stopped") == "asmtp sink: stopped; 0 message(s) received"
    assert stored(maildir) == []


def test_lmtp_sink_on_a_unix_socket_answers_per_recipient(
    sinks: list[Sink], tmp_path: Path, unix_socket_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    sink = start(
        sinks,
        "--lmtp",
        "--listen",
        str(unix_socket_path),
        "--maildir",
        str(maildir),
        "--refuse-after-data",
        "full@*",
        "-q",
    )
    assert sink.address == f"{unix_socket_path}"
    sent = run(
        [
            *("send", "--lmtp", str(unix_socket_path), "-s", "a@example.org", "--body", "hi"),
            *("-r", "ok@example.com", "-r", "full@example.com"),
        ]
    )
    assert sent.code == 1
    assert sent.stdout.splitlines() == [
        "accepted  ok@example.com",
        "refused   full@example.com: 552 5.2.2 Mailbox full",
    ]
    assert sink.stop()[0] == 0
    (path,) = stored(maildir)
    assert b"Delivered-To: ok@example.com\n" in path.read_bytes()
    assert b"Delivered-To: full@example.com" not in path.read_bytes()
    assert not unix_socket_path.exists()


def test_tls_sink_prints_the_ca_to_trust(sinks: list[Sink]) -> None:
    sink = start(sinks, "--listen", "127.0.0.1:0", "--tls", "--no-maildir", "--refuse", "x@*")
    assert sink.banner[0].endswith("(SMTP, STARTTLS)")
    ca_file = sink.expect("asmtp sink: clients must trust the CA certificate ").rsplit(" ", 1)[1]
    base = ["send", "--host", "localhost", "--port", sink.port, "-s", "a@example.org"]
    trusted = run(
        [*base, "--cafile", ca_file, "-r", "b@example.com", "-r", "x@example.com", "--body", "hi"]
    )
    assert trusted.code == 1  # x@ refused by --refuse
    assert trusted.stdout.splitlines() == [
        "accepted  b@example.com",
        "refused   x@example.com: 550 5.1.1 No such user here",
    ]
    untrusted = run([*base, "-r", "b@example.com", "--body", "hi"])
    assert untrusted.code == 3
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    assert sink.stop()[0] == 0
    assert not Path(ca_file).exists()


def test_default_maildir_is_a_new_temporary_directory_kept_after_exit(sinks: list[Sink]) -> None:
    sink = start(sinks, "--listen", "127.0.0.1:0")
    line = sink.expect("asmtp sink: storing messages in the Maildir ")
    maildir = Path(line.rsplit(" ", 1)[1])
    assert maildir.name.startswith("asmtp-sink-")
    sent = run(
        [
            *("send", "--host", "127.0.0.1", "--port", sink.port, "--tls", "none"),
            *("-s", "a@example.org", "-r", "b@example.com", "--body", "kept"),
        ]
    )
    assert sent.code == 0
    assert sink.stop()[0] == 0
    try:
        (path,) = stored(maildir)
        assert path.read_bytes().endswith(b"\n\nkept\n")
    finally:
        shutil.rmtree(maildir)
