"""Bad input ends with one line on stderr and the documented exit code, never a traceback.

Most cases run in-process through click's runner on the real command group (which raises
any unexpected exception into the test); a few run ``python -m asmtp`` as a process, as a
user's shell would.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from asmtp.testing import CaptureServer

from ._kit import Result, free_port, invoke, run

OK, REFUSED, USAGE, CONNECTION = 0, 1, 2, 3


def one_line(result: Result, code: int, pattern: str) -> None:
    """Exit ``code`` with exactly one stderr line, matching ``pattern``."""
    assert result.code == code, (result.stdout, result.stderr)
    assert len(result.error_lines) == 1, result.stderr
    assert re.search(pattern, result.error_lines[0]), result.error_lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer() as started:
        yield started


def send_to(server: CaptureServer, *args: str) -> list[str]:
    return ["send", "--host", server.host, "--port", str(server.port), "--tls", "none", *args]


BASIC = ["-s", "a@example.org", "-r", "b@example.com", "--body", "hi"]


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["send", "-r", "b@example.com"], r"^asmtp send: missing the sender: give -s/--sender"),
        (["send", "-s", "a@example.org"], r"^asmtp send: missing a recipient: give -r"),
        (
            ["send", "-s", "not an address", "-r", "b@example.com"],
            r"^asmtp send: -s/--sender: not one address of the form user@domain: 'not an address'",
        ),
        (
            ["send", "-s", "a@example.org", "-r", "b@example.com, c@example.com"],
            r"-r/--recipient: not one address",
        ),
        (
            ["send", "-s", "a@example.org", "-r", "b@example.com", "-d", "/no/such/directory"],
            r"^asmtp send: Invalid value for '-d' / '--directory': Directory '/no/such/directory' "
            r"does not exist\. \(see 'asmtp send --help'\)$",
        ),
        (
            ["send", "-s", "a@example.org", "-r", "b@example.com", "-a", "/no/such/file"],
            r"Invalid value for '-a' / '--attach': File '/no/such/file' does not exist",
        ),
        (
            ["send", "-s", "a@example.org", "-r", "b@example.com", "-a", "/"],
            r"Invalid value for '-a' / '--attach': File '/' is a directory",
        ),
        (
            ["send", *BASIC, "--password-file", "/etc/hostname"],
            r"--password-file needs --user",
        ),
        (["send", *BASIC, "--lmtp", "localhost"], r"--lmtp: expected HOST:PORT, got 'localhost'"),
        (["send", *BASIC, "--lmtp", "h:24", "--host", "x"], r"--lmtp names the server"),
        (["send", *BASIC, "--url", "smtp://h", "--port", "25"], r"--url names the server"),
        (
            ["send", *BASIC, "--url", "smtps://ada:hunter2@h", "--tls", "none"],
            r"^asmtp send: the url means tls='implicit'; it contradicts tls='none'$",
        ),
        (
            ["send", *BASIC, "--url", "smtp://ada:hun#ter2@h"],
            r"^asmtp send: url is not a valid URL: percent-encode '@', ':', '/', '\?' and '#'",
        ),
        (["send", *BASIC, "--url", "imap://h"], r"^asmtp send: url must start with one of smtp://"),
        (["send", *BASIC, "--port", "99999"], r"Invalid value for '--port'"),
        (["send", *BASIC, "--tls", "maybe"], r"Invalid value for '--tls'"),
        (["send", *BASIC, "--no-such-option"], r"No such option '--no-such-option'"),
        (["send", *BASIC, "--subject", "a\nBcc: x@example.com"], r"--subject: line breaks"),
        (["send", "--message", "-", "-a", "/etc/hostname"], r"--message sends a message as it is"),
        (["frobnicate"], r"^asmtp: No such command 'frobnicate'"),
        (["unpack", "-"], r"Missing option '-d' / '--directory'"),
        (["unpack", "-d", "out", "/no/such/message"], r"'/no/such/message' does not exist"),
        (["sink", "--refuse-after-data", "x@*"], r"--refuse-after-data needs --lmtp"),
        (["sink", "--listen", "127.0.0.1:http"], r"--listen: 'http' is not a port number"),
    ],
)
def test_usage_errors(args: list[str], pattern: str) -> None:
    one_line(invoke(args), USAGE, pattern)


def test_an_unreadable_attachment(tmp_path: Path) -> None:
    # /proc/self/mem opens but reading offset 0 fails (EIO), even for root.
    result = invoke(["send", *BASIC, "-a", "/proc/self/mem", "--port", str(free_port())])
    one_line(result, USAGE, r"^asmtp send: cannot read /proc/self/mem: Input/output error$")


def test_a_body_that_is_not_utf8(tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_bytes(b"caf\xe9\n")
    result = invoke(
        ["send", "-s", "a@example.org", "-r", "b@example.com", "--body-file", str(body)]
    )
    one_line(result, USAGE, r"--body-file .*body\.txt is not UTF-8 text \(invalid continuation")


def test_no_password_and_no_terminal() -> None:
    result = invoke(["send", *BASIC, "--user", "ada"], env={"ASMTP_PASSWORD": None})
    one_line(result, USAGE, r"no password: set ASMTP_PASSWORD, give --password-file")


def test_a_message_without_envelope_headers() -> None:
    result = invoke(["send", "--message", "-"], stdin=b"Subject: x\r\n\r\nbody\r\n")
    one_line(result, USAGE, r"--message -: no From or Sender header: give -s/--sender")


def test_a_wrong_password() -> None:
    with CaptureServer(auth=("ada", "right")) as server:
        result = invoke(send_to(server, *BASIC, "--user", "ada"), env={"ASMTP_PASSWORD": "wrong"})
    one_line(
        result,
        CONNECTION,
        r"^asmtp send: 127\.0\.0\.1:\d+: authentication failed: "
        r"535 5\.7\.8 Error: authentication credentials invalid$",
    )


def test_a_password_is_never_sent_in_clear_unless_asked() -> None:
    with CaptureServer(auth=("ada", "pw")) as server:
        result = invoke(
            ["send", "--host", server.host, "--port", str(server.port), *BASIC, "--user", "ada"],
            env={"ASMTP_PASSWORD": "pw"},
        )
        assert server.messages == []
    one_line(
        result,
        CONNECTION,
        r"^asmtp send: 127\.0\.0\.1:\d+ offers no STARTTLS: refusing to send the password "
        r"unencrypted \(--tls none allows it\)$",
    )


def test_starttls_required_but_not_offered(server: CaptureServer) -> None:
    result = invoke(
        ["send", "--host", server.host, "--port", str(server.port), "--tls", "starttls", *BASIC]
    )
    one_line(result, CONNECTION, r"127\.0\.0\.1:\d+ does not offer STARTTLS \(--tls starttls\)$")


def test_some_recipients_refused(server: CaptureServer) -> None:
    server.refuse_recipient("bob@*")
    result = invoke(
        [
            *send_to(server, "-s", "a@example.org", "-r", "bob@example.com"),
            *("-r", "c@example.com", "--body", "hi"),
        ]
    )
    assert result.code == REFUSED
    assert result.stdout.splitlines() == [
        "refused   bob@example.com: 550 5.1.1 No such user here",
        "accepted  c@example.com",
    ]
    assert result.stderr == ""


def test_every_recipient_refused(server: CaptureServer) -> None:
    server.refuse_recipient("*")
    result = invoke(send_to(server, *BASIC))
    assert (result.code, result.stderr) == (REFUSED, "")
    assert result.stdout == "refused   b@example.com: 550 5.1.1 No such user here\n"


def test_sender_refused(server: CaptureServer) -> None:
    server.refuse_sender("a@*", "553 5.7.1 Not your address")
    one_line(
        invoke(send_to(server, *BASIC)),
        REFUSED,
        r"refused the sender <a@example\.org>: 553 5\.7\.1 Not your address$",
    )


def test_message_refused_at_the_end_of_the_data(server: CaptureServer) -> None:
    server.refuse_data("554 5.7.1 Spam detected")
    one_line(invoke(send_to(server, *BASIC)), REFUSED, r"refused the message: 554 5\.7\.1 Spam")


def test_connection_refused() -> None:
    port = free_port()
    one_line(
        invoke(["send", "--host", "127.0.0.1", "--port", str(port), *BASIC]),
        CONNECTION,
        rf"^asmtp send: cannot connect to 127\.0\.0\.1:{port}: .*[Rr]efused",
    )


def test_a_server_that_never_answers(server: CaptureServer) -> None:
    server.stall("connect", 5)
    one_line(
        invoke(send_to(server, *BASIC, "--timeout", "0.3")),
        CONNECTION,
        r"^asmtp send: 127\.0\.0\.1:\d+: timed out: .*0\.3 seconds$",
    )


def test_server_going_away_after_the_data_says_the_message_may_have_arrived(
    server: CaptureServer,
) -> None:
    server.stall("data", 5)
    one_line(
        invoke(send_to(server, *BASIC, "--timeout", "0.3")),
        CONNECTION,
        r"the message may have been delivered",
    )


# -- through the real entry point, as a process -------------------------------------------


def test_python_m_asmtp_usage_error_is_one_line() -> None:
    one_line(run(["send", "-r", "b@example.com"]), USAGE, r"missing the sender")


def test_python_m_asmtp_connection_refused_is_one_line() -> None:
    port = free_port()
    result = run(["send", "--host", "127.0.0.1", "--port", str(port), *BASIC])
    one_line(result, CONNECTION, rf"cannot connect to 127\.0\.0\.1:{port}")


def test_sink_cannot_listen_where_something_already_does() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["sink", "--listen", f"127.0.0.1:{port}", "--no-maildir"])
    one_line(result, CONNECTION, rf"^asmtp sink: cannot listen on 127\.0\.0\.1:{port}: ")


@pytest.mark.parametrize("taken", [True, False], ids=["cannot-listen", "bad-listen"])
def test_a_sink_that_never_listens_leaves_no_temporary_maildir(tmp_path: Path, taken: bool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        listen = f"127.0.0.1:{sock.getsockname()[1]}" if taken else "127.0.0.1:http"
        result = run(["sink", "--listen", listen], env={"TMPDIR": str(tmp_path)})
    one_line(result, CONNECTION if taken else USAGE, r"^asmtp sink: ")
    assert list(tmp_path.iterdir()) == []


def test_without_the_cli_extra_the_command_says_what_to_install(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ._kit import environment

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['click'] = None; from asmtp.cli import main; main(['--help'])",
        ],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
        check=False,
    )
    assert done.returncode == USAGE
    assert done.stderr == "asmtp: the command line needs click: pip install 'asmtp[cli]'\n"


def test_help_and_version_exit_zero() -> None:
    for command in ([], ["send"], ["unpack"], ["sink"]):
        result = invoke([*command, "--help"])
        assert (result.code, result.stderr) == (OK, ""), command
        assert "Usage: asmtp" in result.stdout
    assert invoke(["--version"]).stdout.startswith("asmtp, version ")
    assert invoke([]).code == OK  # no command: the help


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (["--tls", "starttls"], r"^asmtp send: LMTP 127\.0\.0\.1:\d+ does not offer STARTTLS"),
        (["--user", "ada"], r"LMTP 127\.0\.0\.1:\d+ offers no STARTTLS: refusing to send"),
        (["--tls", "implicit"], r"--tls implicit does not apply to LMTP"),
    ],
)
def test_lmtp_applies_the_same_tls_policy(extra: list[str], pattern: str) -> None:
    with CaptureServer(lmtp=True, auth=("ada", "pw")) as server:
        result = invoke(
            ["send", "--lmtp", f"127.0.0.1:{server.port}", *extra, *BASIC],
            env={"ASMTP_PASSWORD": "pw"},
        )
        assert server.messages == []
    one_line(result, USAGE if "implicit" in extra else CONNECTION, pattern)


def test_a_malformed_url_never_shows_its_password() -> None:
    result = invoke(["send", *BASIC, "--url", "smtp://ada:hunter2@h:nope"])
    one_line(result, USAGE, r"url is not a valid URL")
    assert "hunter2" not in result.stderr + result.stdout


def test_url_credentials_are_never_sent_in_clear_unless_asked() -> None:
    with CaptureServer(auth=("ada", "pw")) as server:
        result = invoke(["send", "--url", f"smtp://ada:pw@127.0.0.1:{server.port}", *BASIC])
        assert server.messages == []
    one_line(
        result,
        CONNECTION,
        r"^asmtp send: smtp://ada@127\.0\.0\.1:\d+ offers no STARTTLS: refusing to send the "
        r"password unencrypted \(--tls none allows it\)$",
    )
