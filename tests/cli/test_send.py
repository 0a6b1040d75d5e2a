"""``asmtp send`` against the capture server: what arrives is what was asked for."""

from __future__ import annotations

import email.policy
import logging
import os
import pty
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from asmtp.testing import CaptureServer

from ._kit import FILES, environment, invoke, make_files


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer(chunking=True) as started:
        yield started


def to(server: CaptureServer) -> list[str]:
    return ["--host", server.host, "--port", str(server.port), "--tls", "none"]


def test_directory_mail_arrives_whole(server: CaptureServer, tmp_path: Path) -> None:
    directory = make_files(tmp_path / "files")
    result = invoke(
        [
            "send",
            *to(server),
            "-d",
            str(directory),
            "-s",
            "Ada Lovelace <ada@example.org>",
            "-r",
            "bob@example.com",
            "-r",
            "Carol <carol@example.com>",
            "--cc",
            "dave@example.com",
            "--bcc",
            "eve@example.com",
        ]
    )
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"accepted  {each}@example.com" for each in ("bob", "carol", "dave", "eve")
    ]
    (received,) = server.messages
    assert received.mail_from == "ada@example.org"
    assert received.rcpt_tos == tuple(f"{n}@example.com" for n in ("bob", "carol", "dave", "eve"))
    message = received.message
    assert message["Subject"] == f"Contents of directory {directory.absolute()}"
    assert message["To"] == "bob@example.com, Carol <carol@example.com>"
    assert message["Cc"] == "dave@example.com"
    assert b"eve@example.com" not in received.raw  # Bcc: envelope only
    assert message["Message-ID"].endswith("@example.org>")
    assert message["Date"] is not None
    assert received.attachment_names == sorted(FILES)
    assert received.attachments == FILES
    assert received.chunked  # the server offered CHUNKING: BDAT carried it


def test_body_from_option_file_or_standard_input(server: CaptureServer, tmp_path: Path) -> None:
    body_file = tmp_path / "body.txt"
    body_file.write_text("from a file \u2713\n", encoding="utf-8")
    common = ["send", *to(server), "-s", "a@example.org", "-r", "b@example.com"]
    assert invoke([*common, "--body", "from an option"]).code == 0
    assert invoke([*common, "--body-file", str(body_file)]).code == 0
    assert invoke(common, stdin=b"from standard input\n").code == 0
    assert invoke([*common, "--body-file", "-"], stdin=b"dash means stdin\n").code == 0
    texts = [m.text for m in server.messages]
    assert texts == [
        "from an option\n",
        "from a file \u2713\n",
        "from standard input\n",
        "dash means stdin\n",
    ]
    assert server.messages[1].message.get_content_charset() == "utf-8"
    assert all(m.subject is None for m in server.messages)


def test_html_alternative_and_attachments(server: CaptureServer, tmp_path: Path) -> None:
    html = tmp_path / "body.html"
    html.write_text("<p>Hello <b>Bob</b></p>", encoding="utf-8")
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 fake")
    result = invoke(
        [
            "send",
            *to(server),
            "-s",
            "a@example.org",
            "-r",
            "b@example.com",
            "--subject",
            "Report \u00e9t\u00e9",
            "--body",
            "Hello Bob",
            "--html",
            str(html),
            "-a",
            str(report),
        ]
    )
    assert result.code == 0, result.stderr
    received = server.messages[0]
    assert received.mime_tree() == (
        "multipart/mixed(multipart/alternative(text/plain, text/html), application/pdf)"
    )
    assert received.subject == "Report \u00e9t\u00e9"
    assert b"Subject: Report =?utf-8?b?w6l0w6k=?=\r\n" in received.raw  # RFC 2047
    assert received.attachments == {"report.pdf": b"%PDF-1.4 fake"}


def test_output_writes_the_message_and_sends_nothing(server: CaptureServer, tmp_path: Path) -> None:
    directory = make_files(tmp_path / "files")
    output = tmp_path / "out.eml"
    args = ["send", "-d", str(directory), "-s", "a@example.org", "-r", "b@example.com"]
    result = invoke([*args, "-o", str(output)])
    assert (result.code, result.stdout, result.stderr) == (0, "", "")
    written = output.read_bytes()
    assert b"\n" not in written.replace(b"\r\n", b"")
    message = BytesParser(EmailMessage, policy=email.policy.default).parsebytes(written)
    assert {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()} == (
        FILES
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers
    to_stdout = invoke([*args, "-o", "-"])
    assert to_stdout.code == 0
    assert 'Content-Disposition: attachment; filename="a-notes.txt"' in to_stdout.stdout
    assert server.messages == []


EXISTING = (
    b"From: Ada <ada@example.org>\r\n"
    b"To: bob@example.com, Carol <carol@example.com>\r\n"
    b"Cc: dave@example.com\r\n"
    b"Bcc: eve@example.com,\r\n"
    b" frank@example.com\r\n"
    b"Subject: as it is\r\n"
    b"\r\n"
    b"Body line\r\n"
    b".leading dot\r\n"
)


def test_message_is_sent_as_it_is_with_its_envelope_from_the_headers(
    server: CaptureServer, tmp_path: Path
) -> None:
    path = tmp_path / "message.eml"
    path.write_bytes(EXISTING)
    result = invoke(["send", *to(server), "--message", str(path)])
    assert result.code == 0, result.stderr
    (received,) = server.messages
    assert received.mail_from == "ada@example.org"
    assert received.rcpt_tos == (
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
        "eve@example.com",
        "frank@example.com",
    )
    # Unchanged but for the Bcc field, continuation line included (as sendmail -t does).
    assert received.raw == EXISTING.replace(b"Bcc: eve@example.com,\r\n frank@example.com\r\n", b"")


def test_message_from_standard_input_with_the_envelope_given(server: CaptureServer) -> None:
    result = invoke(
        ["send", *to(server), "--message", "-", "-s", "bounce@example.org", "-r", "x@example.com"],
        stdin=EXISTING,
    )
    assert result.code == 0, result.stderr
    (received,) = server.messages
    assert (received.mail_from, received.rcpt_tos) == ("bounce@example.org", ("x@example.com",))


def test_resent_headers_give_the_envelope_of_a_resent_message(server: CaptureServer) -> None:
    resent = (
        b"Resent-Date: Mon, 1 Dec 2025 10:00:00 +0000\r\nResent-From: fwd@example.org\r\n"
        b"Resent-To: new@example.com\r\n" + EXISTING
    )
    assert invoke(["send", *to(server), "--message", "-"], stdin=resent).code == 0
    (received,) = server.messages
    assert (received.mail_from, received.rcpt_tos) == ("fwd@example.org", ("new@example.com",))


def test_lmtp_reports_each_recipient(unix_socket_path: Path) -> None:
    with CaptureServer(lmtp=True, unix_path=unix_socket_path) as server:
        server.refuse_after_data("full@*")
        result = invoke(
            [
                "send",
                "--lmtp",
                str(unix_socket_path),
                "-s",
                "a@example.org",
                "-r",
                "ok@example.com",
                "-r",
                "full@example.com",
                "--body",
                "hi",
            ]
        )
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "accepted  ok@example.com",
        "refused   full@example.com: 552 5.2.2 Mailbox full",
    ]
    assert server.messages[0].rcpt_tos == ("ok@example.com",)


@pytest.mark.parametrize("how", ["environment", "file"])
def test_starttls_and_login_with_a_private_ca(how: str, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("s3cret pass\n", encoding="utf-8")
    with CaptureServer(starttls=True, auth=("ada", "s3cret pass"), auth_require_tls=True) as server:
        source = (
            (["--password-file", str(password_file)], {})
            if how == "file"
            else ([], {"ASMTP_PASSWORD": "s3cret pass"})
        )
        result = invoke(
            [
                "send",
                "--host",
                "localhost",
                "--port",
                str(server.port),
                "--cafile",
                str(server.ca_file),
                "--user",
                "ada",
                *source[0],
                "-s",
                "ada@example.org",
                "-r",
                "b@example.com",
                "--body",
                "hi",
                "-v",
            ],
            env=source[1],
        )
        assert result.code == 0, result.stderr
        (received,) = server.messages
    assert (received.tls, received.username) == (True, "ada")
    transcript = result.stderr
    assert "send: b'STARTTLS'" in transcript
    assert "AUTH" in transcript
    assert "s3cret" not in transcript  # redacted by the library
    assert "czNjcmV0" not in transcript  # nor its base64


def test_lmtp_over_tcp_with_starttls_and_login() -> None:
    with CaptureServer(
        lmtp=True, starttls=True, auth=("ada", "pw"), auth_require_tls=True
    ) as server:
        result = invoke(
            [
                *("send", "--lmtp", f"localhost:{server.port}", "--cafile", str(server.ca_file)),
                *("--user", "ada", "-s", "a@example.org", "-r", "b@example.com", "--body", "hi"),
            ],
            env={"ASMTP_PASSWORD": "pw"},
        )
        assert (result.code, result.stdout) == (0, "accepted  b@example.com\n"), result.stderr
        (received,) = server.messages
    assert (received.lmtp, received.tls, received.username) == (True, True, "ada")


def test_implicit_tls() -> None:
    with CaptureServer(implicit_tls=True) as server:
        result = invoke(
            [
                "send",
                "--host",
                "127.0.0.1",
                "--port",
                str(server.port),
                "--tls",
                "implicit",
                "--cafile",
                str(server.ca_file),
                "-s",
                "a@example.org",
                "-r",
                "b@example.com",
                "--body",
                "hi",
            ]
        )
        assert result.code == 0, result.stderr
        assert server.messages[0].tls


def test_certificates_are_verified_by_default() -> None:
    with CaptureServer(starttls=True) as server:
        result = invoke(
            [
                *("send", "--host", "127.0.0.1", "--port", str(server.port)),
                *("-s", "a@example.org", "-r", "b@example.com", "--body", "hi"),
            ]
        )
    assert result.code == 3
    assert "TLS failed: CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert server.messages == []
    assert ssl.OPENSSL_VERSION  # the failure came from OpenSSL's verification


_ON_THE_TERMINAL = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes this session's terminal\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'asmtp', *sys.argv[1:]])\n"
)


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is POSIX")
def test_the_password_is_asked_on_the_terminal_without_echo() -> None:
    """No ASMTP_PASSWORD, no --password-file, a terminal: asked, and not echoed."""
    env = environment()
    env.pop("ASMTP_PASSWORD", None)
    with CaptureServer(auth=("ada", "typed-secret")) as server:
        args = [*to(server), "--user", "ada", "-s", "a@example.org", "-r", "b@example.com"]
        terminal, child_side = pty.openpty()
        child = subprocess.Popen(  # noqa: S603 - our interpreter and our module
            [sys.executable, "-c", _ON_THE_TERMINAL, "send", *args, "--body", "hi"],
            stdin=child_side,
            stdout=child_side,
            stderr=child_side,
            env=env,
            start_new_session=True,
        )
        os.close(child_side)
        seen = b""
        deadline = time.monotonic() + 30
        while b"Password for ada: " not in seen and time.monotonic() < deadline:
            seen += os.read(terminal, 1024)
        os.write(terminal, b"typed-secret\n")
        while time.monotonic() < deadline:
            try:
                chunk = os.read(terminal, 1024)
            except OSError:  # EIO: the child has closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        code = child.wait(30)
        os.close(terminal)
        assert server.messages[0].username == "ada"
    assert code == 0, seen
    assert b"typed-secret" not in seen  # not echoed
    assert seen.endswith(b"accepted  b@example.com\r\n")


# -- --url: the server, its TLS policy and the credentials in one string --------------------


def test_url_with_starttls_and_percent_encoded_credentials() -> None:
    with CaptureServer(starttls=True, auth=("ada@example.org", "p@ss:w/rd")) as server:
        url = f"smtp+starttls://ada%40example.org:p%40ss%3Aw%2Frd@localhost:{server.port}"
        result = invoke(
            [
                *("send", "--url", url, "--cafile", str(server.ca_file)),
                *("-s", "ada@example.org", "-r", "b@example.com", "--body", "hi", "-v"),
            ],
            env={"ASMTP_PASSWORD": None},
        )
        assert (result.code, result.stdout) == (0, "accepted  b@example.com\n"), result.stderr
        (received,) = server.messages
    assert (received.tls, received.username) == (True, "ada@example.org")
    assert "p@ss" not in result.stderr and "p%40ss" not in result.stderr


def test_url_with_a_user_and_no_password_takes_it_as_user_does() -> None:
    with CaptureServer(starttls=True, auth=("ada", "from env")) as server:
        result = invoke(
            [
                *("send", "--url", f"smtp://ada@localhost:{server.port}?tls=starttls"),
                *("--cafile", str(server.ca_file), "-s", "a@example.org", "-r", "b@example.com"),
                *("--body", "hi"),
            ],
            env={"ASMTP_PASSWORD": "from env"},
        )
        assert result.code == 0, result.stderr
        assert server.messages[0].username == "ada"


def test_url_to_an_lmtp_unix_socket(unix_socket_path: Path) -> None:
    with CaptureServer(lmtp=True, unix_path=unix_socket_path) as server:
        url = "lmtp://" + str(unix_socket_path)
        result = invoke(
            ["send", "--url", url, "-s", "a@example.org", "-r", "b@x.test", "--body", "hi"]
        )
        assert (result.code, result.stdout) == (0, "accepted  b@x.test\n"), result.stderr
        assert server.messages[0].lmtp


def test_verbose_leaves_the_asmtp_logger_as_it_found_it() -> None:
    """The command may run inside another program (or a test run): -v must not leak."""
    logger = logging.getLogger("asmtp")
    before = (logger.level, list(logger.handlers))
    with CaptureServer() as server:
        result = invoke(
            ["send", *to(server), "-s", "a@example.org", "-r", "b@x.test", "--body", "hi", "-v"]
        )
    assert result.code == 0, result.stderr
    assert "send: b'MAIL FROM:<a@example.org>" in result.stderr
    assert (logger.level, logger.handlers) == before
