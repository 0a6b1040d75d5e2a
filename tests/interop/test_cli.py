"""The ``asmtp`` command line against Postfix and Dovecot, run as a user would run it.

``asmtp send -d`` through Postfix's submission port (STARTTLS verified against the test CA,
then AUTH), the stored copy unpacked back into the same files; ``asmtp send --lmtp`` to
Dovecot over its Unix socket and TCP, with one recipient refused after the data.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import anyio
import pytest
from cli._kit import FILES, make_files, run

from interop import _kit
from interop.realservers import Servers

pytestmark = pytest.mark.interop


def delivered(maildir: Path, marker: str) -> bytes:
    return anyio.run(functools.partial(_kit.delivered, maildir, marker))


@pytest.mark.server("Postfix 3.7 + Dovecot SASL")
@pytest.mark.feature("command line: asmtp send")
def test_directory_mail_through_submission_with_starttls_and_auth(
    servers: Servers, tmp_path: Path
) -> None:
    files = make_files(tmp_path / "files")
    marker = _kit.token()
    user = servers.address("user")
    result = run(
        [
            *("send", "--host", "localhost", "--port", str(servers.submission_port)),
            *("--tls", "starttls", "--cafile", servers.ca_file, "--user", user),
            *("--helo", _kit.ME, "--timeout", str(_kit.TIMEOUT), "-v"),
            *("-s", servers.address("sender"), "-r", user, "-d", str(files)),
            *("--subject", f"interop {marker}", "--body", "The directory, attached."),
        ],
        env={"ASMTP_PASSWORD": servers.password("user")},
    )
    assert (result.code, result.stdout) == (0, f"accepted  {user}\n"), result.stderr
    assert "send: b'STARTTLS'" in result.stderr
    assert servers.password("user") not in result.stderr
    stored = tmp_path / "stored.eml"
    stored.write_bytes(delivered(servers.maildir("user"), marker))
    unpacked = tmp_path / "unpacked"
    done = run(["unpack", "-d", str(unpacked), str(stored)])
    assert (done.code, done.stderr) == (0, "")
    names = sorted(os.listdir(unpacked))
    assert names == sorted([*FILES, "part-001.txt"])  # the text body has no file name
    assert (unpacked / "part-001.txt").read_bytes() == b"The directory, attached.\n"
    for name, content in FILES.items():
        assert (unpacked / name).read_bytes() == content, name


@pytest.mark.server("Postfix 3.7 + Dovecot SASL")
@pytest.mark.feature("command line: asmtp send")
def test_a_wrong_password_is_one_line_and_exit_3(servers: Servers) -> None:
    result = run(
        [
            *("send", "--host", "localhost", "--port", str(servers.submission_port)),
            *("--cafile", servers.ca_file, "--user", servers.address("user")),
            *("-s", servers.address("sender"), "-r", servers.address("user"), "--body", "x"),
        ],
        env={"ASMTP_PASSWORD": "not-the-password"},
    )
    assert result.code == 3
    (line,) = result.stderr.splitlines()
    assert line.startswith("asmtp send: localhost:") and ": authentication failed: 535 " in line


@pytest.mark.server("Dovecot 2.3 LMTP")
@pytest.mark.feature("command line: asmtp send --lmtp")
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_lmtp_to_dovecot_reports_each_recipient(
    servers: Servers, tmp_path: Path, transport: str
) -> None:
    marker = _kit.token()
    target = servers.lmtp_socket if transport == "unix" else f"{servers.host}:{servers.lmtp_port}"
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 16)  # 4 KiB: over small@'s 1 KiB quota
    user, small = servers.address("user"), servers.address("small")
    result = run(
        [
            *("send", "--lmtp", target, "--tls", "none", "--helo", _kit.ME),
            *("-s", servers.address("sender"), "-r", user, "-r", small),
            *("-r", f"nobody@{servers.domain}", "-a", str(big), "--subject", f"interop {marker}"),
        ]
    )
    assert result.code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"accepted  {user}"
    assert lines[1].startswith(f"refused   {small}: 552 5.2.2 ")  # quota, after the data
    assert lines[2].startswith(f"refused   nobody@{servers.domain}: 550 5.1.1 ")  # at RCPT
    stored = delivered(servers.maildir("user"), marker)
    assert b'Content-Disposition: attachment; filename="big.bin"' in stored
