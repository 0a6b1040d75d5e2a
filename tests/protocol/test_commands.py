"""Command serialisation: exact bytes, arguments that would break framing, secrets kept out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asmtp.protocol import (
    Auth,
    AuthResponse,
    BadArgument,
    Bdat,
    Body,
    Command,
    Data,
    Ehlo,
    EnvId,
    Expn,
    Helo,
    Help,
    Lhlo,
    LocalProtocolError,
    Mail,
    Noop,
    Notify,
    Orcpt,
    Param,
    Quit,
    Raw,
    Rcpt,
    Reply,
    Ret,
    Rset,
    Size,
    SmtpUtf8,
    StartTLS,
    State,
    Vrfy,
    command_line,
    param_bytes,
    xtext,
)

from ._helpers import Script, greeted, script_at


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (Ehlo(b"client.example"), b"EHLO client.example\r\n"),
        (Helo(b"client.example"), b"HELO client.example\r\n"),
        (Lhlo(b"client.example"), b"LHLO client.example\r\n"),
        (Mail(b"alice@example.org"), b"MAIL FROM:<alice@example.org>\r\n"),
        (
            Mail(b"alice@example.org", (b"SIZE=1000", b"BODY=8BITMIME")),
            b"MAIL FROM:<alice@example.org> SIZE=1000 BODY=8BITMIME\r\n",
        ),
        (Mail(b""), b"MAIL FROM:<>\r\n"),
        (Rcpt(b"bob@example.com"), b"RCPT TO:<bob@example.com>\r\n"),
        (
            Rcpt(b"bob@example.com", (b"NOTIFY=NEVER",)),
            b"RCPT TO:<bob@example.com> NOTIFY=NEVER\r\n",
        ),
        (Data(), b"DATA\r\n"),
        (Bdat(b"hello"), b"BDAT 5\r\n"),
        (Bdat(b"hello", last=True), b"BDAT 5 LAST\r\n"),
        (Rset(), b"RSET\r\n"),
        (Noop(), b"NOOP\r\n"),
        (Noop(b"ping"), b"NOOP ping\r\n"),
        (Vrfy(b"postmaster"), b"VRFY postmaster\r\n"),
        (Expn(b"staff"), b"EXPN staff\r\n"),
        (Help(), b"HELP\r\n"),
        (Help(b"MAIL"), b"HELP MAIL\r\n"),
        (Quit(), b"QUIT\r\n"),
        (StartTLS(), b"STARTTLS\r\n"),
        (Auth(b"LOGIN"), b"AUTH LOGIN\r\n"),
        (Auth(b"PLAIN", b"AGFsaWNlAHM="), b"AUTH PLAIN AGFsaWNlAHM=\r\n"),
        (Auth(b"EXTERNAL", b""), b"AUTH EXTERNAL =\r\n"),
        (AuthResponse(b"YWxpY2U="), b"YWxpY2U=\r\n"),
        (AuthResponse(b"*"), b"*\r\n"),
        (AuthResponse(b""), b"\r\n"),
        (Raw(b"XCLIENT NAME=spike"), b"XCLIENT NAME=spike\r\n"),
    ],
    ids=repr,
)
def test_command_line_is_exact(command: Command, wire: bytes) -> None:
    assert command_line(command) == wire


@pytest.mark.parametrize(
    ("bdats", "wire"),
    [
        ([Bdat(b"chunk\r\n.\r\n"), Bdat(b"x")], b"BDAT 10\r\nchunk\r\n.\r\n"),
        ([Bdat(b"end", last=True)], b"BDAT 3 LAST\r\nend"),
        ([Bdat(b"", last=True)], b"BDAT 0 LAST\r\n"),
        ([Bdat(b"held"), Bdat(b"", last=True)], b"BDAT 4 LAST\r\nheld"),
    ],
    ids=["chunk-unstuffed", "last", "empty-last", "held-until-last"],
)
def test_bdat_is_sent_with_its_payload_unchanged(bdats: list[Bdat], wire: bytes) -> None:
    script = greeted("CHUNKING")
    script.step(Mail(b"a@x"), sends=b"MAIL FROM:<a@x>\r\n", answers=b"250 ok\r\n")
    script.step(Rcpt(b"b@y"), sends=b"RCPT TO:<b@y>\r\n", answers=b"250 ok\r\n")
    assert script.send(*bdats) == wire


# Every argument a caller controls, each with the state where the command may be sent.
FIELDS: list[tuple[Callable[[bytes], Command], State]] = [
    (Ehlo, State.READY),
    (Helo, State.READY),
    (Lhlo, State.READY),
    (Mail, State.READY),
    (lambda v: Mail(b"a@x", (b"SIZE=1", v)), State.READY),
    (Rcpt, State.MAIL),
    (lambda v: Rcpt(b"b@y", (v,)), State.MAIL),
    (Noop, State.READY),
    (Vrfy, State.READY),
    (Expn, State.READY),
    (Help, State.READY),
    (Auth, State.READY),
    (lambda v: Auth(b"PLAIN", v), State.READY),
    (AuthResponse, State.AUTH_CHALLENGE),
    (Raw, State.READY),
    (lambda v: Raw(v, sensitive=True), State.READY),
    (Raw, State.AUTH_CHALLENGE),
]
FIELD_IDS = [
    "ehlo", "helo", "lhlo", "mail", "mail-param", "rcpt", "rcpt-param", "noop", "vrfy", "expn",
    "help", "auth-mechanism", "auth-initial", "auth-response", "raw", "raw-sensitive",
    "raw-challenge",
]  # fmt: skip


@pytest.mark.parametrize("bad", [b"\r", b"\n", b"\x00", b"\r\n"], ids=["cr", "lf", "nul", "crlf"])
@pytest.mark.parametrize(("make", "state"), FIELDS, ids=FIELD_IDS)
def test_cr_lf_or_nul_in_an_argument_raises_bad_argument_and_changes_nothing(
    make: Callable[[bytes], Command], state: State, bad: bytes
) -> None:
    command = make(b"sec" + bad + b"ret")
    with pytest.raises(BadArgument) as caught:
        command_line(command)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, LocalProtocolError)
    script = script_at(state, lmtp=isinstance(command, Lhlo))
    before = (script.state(), script.conn.pending)
    with pytest.raises(BadArgument):
        script.conn.send(command)
    assert (script.state(), script.conn.pending) == before
    assert b"ok" in script.conn.send(make(b"ok"))


@pytest.mark.parametrize(
    "command",
    [
        Ehlo(b""),
        Ehlo(b"two words"),
        Mail(b"<a@x>"),
        Mail(b"a@x>"),
        Mail(b"a@x", (b"",)),
        Mail(b"a@x", (b"SIZE=1 BODY=7BIT",)),
        Rcpt(b""),
        Rcpt(b"b@y", (b"NOTIFY=NEVER ORCPT=x",)),
        Auth(b""),
        Auth(b"PLAIN LOGIN"),
        Auth(b"PLAIN", b"secret with space"),
        Ehlo(cast(Any, "client.example")),
    ],
    ids=repr,
)
def test_argument_that_is_not_one_word_raises_bad_argument(command: Command) -> None:
    with pytest.raises(BadArgument):
        command_line(command)


SECRET = b"hunter2-s3cr3t"
SECRET_COMMANDS: list[Command] = [
    Auth(b"PLAIN", SECRET + b"\r\n"),
    Auth(b"PLAIN", SECRET + b" x"),
    AuthResponse(SECRET + b"\n"),
    Raw(SECRET + b"\x00", sensitive=True),
]


@pytest.mark.parametrize(
    "command", SECRET_COMMANDS, ids=["auth-crlf", "auth-space", "response", "raw"]
)
def test_secrets_never_appear_in_errors_or_reprs(command: Command) -> None:
    with pytest.raises(BadArgument) as caught:
        command_line(command)
    shown = [str(caught.value), repr(caught.value), repr(command), repr(Reply(235, (), command))]
    assert all(SECRET.decode() not in text for text in shown), shown


@pytest.mark.parametrize(
    ("state", "command"),
    [
        (State.AUTH_CHALLENGE, Raw(SECRET + b"\r\n")),
        (State.AUTH_CHALLENGE, AuthResponse(SECRET + b"\x00")),
        (State.MAIL, Auth(b"PLAIN", SECRET)),
        (State.READY, AuthResponse(SECRET)),
    ],
    ids=["raw-answer-with-crlf", "answer-with-nul", "auth-in-mail", "answer-unasked"],
)
def test_connection_errors_keep_auth_secrets_out(state: State, command: Command) -> None:
    script = script_at(state)
    with pytest.raises(LocalProtocolError) as caught:
        script.conn.send(command)
    assert SECRET.decode() not in str(caught.value)


def test_raw_answer_to_a_challenge_is_redacted_in_transcripts() -> None:
    assert script_at(State.AUTH_CHALLENGE).conn.loggable(Raw(SECRET)) == b"<redacted>"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (b"AUTH XOAUTH2 " + SECRET, b"AUTH XOAUTH2 <redacted>"),
        (b"AUTH SCRAM-SHA-256 " + SECRET, b"AUTH SCRAM-SHA-256 <redacted>"),
        (b"AUTH LOGIN", b"AUTH LOGIN"),
        (b"auth plain " + SECRET, b"auth <redacted>"),
        (b"AUTH " + SECRET, b"AUTH <redacted>"),
        (b"AUTH " + SECRET.upper().replace(b"-", b"") + b"TOOLONGFORANAME", b"AUTH <redacted>"),
        (b"  AUTH PLAIN " + SECRET, b"<redacted>"),
        (b"AUTH\tPLAIN " + SECRET, b"<redacted>"),
    ],
    ids=["xoauth2", "scram", "no-payload", "lower-case", "no-mechanism", "long", "indented", "tab"],
)
def test_raw_auth_lines_are_redacted_in_reprs_transcripts_and_errors(
    line: bytes, shown: bytes
) -> None:
    """``docmd("AUTH", "XOAUTH2 " + token)`` is smtplib's own recipe: its line is a secret."""
    raw = Raw(line)
    assert raw.sensitive
    assert greeted().conn.loggable(raw) == shown
    assert repr(raw) == f"Raw({shown!r})"
    assert repr(Reply(235, (), raw)).count("<redacted>") == shown.count(b"<redacted>")
    with pytest.raises(BadArgument) as caught:
        command_line(Raw(line + b"\r\nNOOP"))
    assert "<redacted>" in str(caught.value)
    assert SECRET.decode() not in str(caught.value) + repr(caught.value)


def test_a_raw_line_that_is_not_auth_is_shown_as_sent() -> None:
    assert not Raw(b"XAUTHOR x").sensitive
    assert repr(Raw(b"NOOP x")) == "Raw(b'NOOP x')"


def test_a_raw_answer_to_a_challenge_is_named_by_its_reply_as_sensitive() -> None:
    script = script_at(State.AUTH_CHALLENGE)
    script.step(Raw(SECRET), sends=SECRET + b"\r\n")
    [reply] = script.receive(b"235 ok\r\n")
    assert reply.command == Raw(SECRET, sensitive=True)
    assert SECRET.decode() not in repr(reply) + repr(script.conn.pending)


def test_auth_commands_are_redacted_in_transcripts() -> None:
    conn = greeted().conn
    assert conn.loggable(Auth(b"PLAIN", SECRET)) == b"AUTH PLAIN <redacted>"
    assert conn.loggable(Auth(b"LOGIN")) == b"AUTH LOGIN"
    assert conn.loggable(AuthResponse(SECRET)) == b"<redacted>"
    assert conn.loggable(Raw(SECRET, sensitive=True)) == b"<redacted>"


@pytest.mark.parametrize(
    ("param", "wire"),
    [
        (Size(0), b"SIZE=0"),
        (Size(35882577), b"SIZE=35882577"),
        (Body("7BIT"), b"BODY=7BIT"),
        (Body("8BITMIME"), b"BODY=8BITMIME"),
        (Body("BINARYMIME"), b"BODY=BINARYMIME"),
        (SmtpUtf8(), b"SMTPUTF8"),
        (Ret("FULL"), b"RET=FULL"),
        (Ret("HDRS"), b"RET=HDRS"),
        (EnvId("QQ314159"), b"ENVID=QQ314159"),
        (EnvId("a+b=c d"), b"ENVID=a+2Bb+3Dc+20d"),
        (Notify(), b"NOTIFY=NEVER"),
        (Notify(("SUCCESS", "FAILURE")), b"NOTIFY=SUCCESS,FAILURE"),
        (Notify(("DELAY",)), b"NOTIFY=DELAY"),
        (Orcpt("Bob@Big-Bucks.COM"), b"ORCPT=rfc822;Bob@Big-Bucks.COM"),
        (Orcpt("joe+list=x@example.com"), b"ORCPT=rfc822;joe+2Blist+3Dx@example.com"),
        (Orcpt("caf\u00e9@example.com", "x-local"), b"ORCPT=x-local;caf+C3+A9@example.com"),
        ("SIZE=10", b"SIZE=10"),
        (b"X-TAG=raw", b"X-TAG=raw"),
    ],
    ids=repr,
)
def test_typed_param_gives_its_wire_form(param: Param, wire: bytes) -> None:
    assert param_bytes(param) == wire


@pytest.mark.parametrize(
    "param",
    [
        Size(-1),
        Body(cast(Any, "8bit")),
        Ret(cast(Any, "ALL")),
        EnvId("caf\u00e9"),
        EnvId("line\r\nbreak"),
        Notify(cast(Any, ("NEVER",))),
        Notify(("SUCCESS", "SUCCESS")),
        Orcpt("x@y", "utf-8"),
        Orcpt("x@y", "rfc 822"),
        "SIZE=\u00e9",
        cast(Any, 42),
    ],
    ids=repr,
)
def test_bad_param_value_raises_bad_argument(param: Param) -> None:
    with pytest.raises(BadArgument):
        param_bytes(param)


def test_rfc3461_envelope_example_is_sent_byte_for_byte() -> None:
    # RFC 3461 §9 (examples): RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT.
    mail = Mail(b"Alice@Pure-Heart.ORG", (param_bytes(Ret("HDRS")), param_bytes(EnvId("QQ314159"))))
    rcpt = Rcpt(
        b"Bob@Big-Bucks.COM",
        (param_bytes(Notify(("SUCCESS", "FAILURE"))), param_bytes(Orcpt("Bob@Big-Bucks.COM"))),
    )
    assert command_line(mail) == b"MAIL FROM:<Alice@Pure-Heart.ORG> RET=HDRS ENVID=QQ314159\r\n"
    assert command_line(rcpt) == (
        b"RCPT TO:<Bob@Big-Bucks.COM> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@Big-Bucks.COM\r\n"
    )


_PATH_BYTES = st.one_of(
    st.binary(max_size=12),
    st.lists(
        st.sampled_from([b"a", b"@", b".", b" ", b"\r", b"\n", b"\x00", b"<", b">", b"\xff"]),
        max_size=8,
    ).map(b"".join),
)


def _expected_path_line(verb: bytes, address: bytes, params: list[bytes]) -> bytes | None:
    """The line RFC 5321 allows, written independently of the serialiser; None to refuse."""
    if any(bad in address for bad in (b"\r", b"\n", b"\x00", b"<", b">")):
        return None
    for param in params:
        if not param or any(bad in param for bad in (b"\r", b"\n", b"\x00", b" ")):
            return None
    return verb + b"<" + address + b">" + b"".join(b" " + param for param in params) + b"\r\n"


@given(_PATH_BYTES, st.lists(_PATH_BYTES, max_size=2))
def test_mail_and_rcpt_lines_are_sent_exactly_or_refused(
    address: bytes, params: list[bytes]
) -> None:
    for command, verb in (
        (Mail(address, tuple(params)), b"MAIL FROM:"),
        (Rcpt(address, tuple(params)), b"RCPT TO:"),
    ):
        expected = _expected_path_line(verb, address, params)
        if isinstance(command, Rcpt) and not address:
            expected = None  # a recipient cannot be the null path
        if expected is None:
            with pytest.raises(BadArgument):
                command_line(command)
        else:
            assert command_line(command) == expected


def xtext_decode(encoded: bytes) -> bytes:
    """RFC 3461 §4 decoding, written independently of the encoder."""
    out = bytearray()
    index = 0
    while index < len(encoded):
        if encoded[index : index + 1] == b"+":
            hex_digits = encoded[index + 1 : index + 3]
            assert hex_digits == hex_digits.upper() and len(hex_digits) == 2
            out.append(int(hex_digits, 16))
            index += 3
        else:
            out.append(encoded[index])
            index += 1
    return bytes(out)


@given(st.binary())
def test_xtext_is_printable_ascii_that_decodes_back(raw: bytes) -> None:
    encoded = xtext(raw)
    assert all(33 <= byte <= 126 and byte != ord("=") for byte in encoded)
    assert xtext_decode(encoded) == raw


@given(st.text())
def test_xtext_of_text_encodes_utf8(text: str) -> None:
    assert xtext(text) == xtext(text.encode("utf-8"))


def _in_bdat_transaction(*mail_params: bytes) -> Script:
    script = greeted("CHUNKING", "BINARYMIME", "PIPELINING")
    script.send(Mail(b"a@x", mail_params))
    script.receive(b"250 ok\r\n")
    script.send(Rcpt(b"b@y"))
    script.receive(b"250 ok\r\n")
    return script


@pytest.mark.parametrize(
    ("chunks", "wire"),
    [
        ([Bdat(b"a\nb\r\n", last=True)], b"BDAT 6 LAST\r\na\r\nb\r\n"),
        ([Bdat(b"a\r"), Bdat(b"\nb", last=True)], b"BDAT 4 LAST\r\na\r\nb"),
        ([Bdat(b"a\r"), Bdat(b"\nb"), Bdat(b"c")], b"BDAT 1\r\naBDAT 3\r\n\r\nb"),
        ([Bdat(b"x\r"), Bdat(b"", last=True)], b"BDAT 3 LAST\r\nx\r\n"),
        ([Bdat(b"\r"), Bdat(b"\r"), Bdat(b"\n", last=True)], b"BDAT 4 LAST\r\n\r\n\r\n"),
        (
            [Bdat(b"abc\r"), Bdat(b"\ndef"), Bdat(b"\r"), Bdat(b"", last=True)],
            b"BDAT 3\r\nabcBDAT 7 LAST\r\n\r\ndef\r\n",
        ),
        ([Bdat(b".\n.", last=True)], b"BDAT 4 LAST\r\n.\r\n."),
    ],
    ids=[
        "bare-lf",
        "cr-carried",
        "chunk-written-once-more-follows",
        "cr-at-the-end",
        "cr-only-chunks-send-nothing",
        "trailing-cr-joins-the-last-chunk",
        "no-stuffing",
    ],
)
def test_bdat_writes_line_endings_as_crlf_counting_what_it_sends(
    chunks: list[Bdat], wire: bytes
) -> None:
    script = _in_bdat_transaction()
    assert script.send(*chunks) == wire
    assert len(script.conn.pending) == wire.count(b"BDAT ")


def test_bdat_sends_bytes_as_given_when_mail_declared_binarymime() -> None:
    script = _in_bdat_transaction(b"BODY=BINARYMIME")
    body = b"\x00\xff bare\nlf and cr\r"
    assert script.send(Bdat(body, last=True)) == b"BDAT %d LAST\r\n" % len(body) + body


def test_bdat_framing_is_chosen_per_transaction() -> None:
    script = _in_bdat_transaction(b"BODY=BINARYMIME")
    script.send(Bdat(b"1\n", last=True))
    script.receive(b"250 ok\r\n")
    script.send(Mail(b"a@x"))
    script.receive(b"250 ok\r\n")
    script.send(Rcpt(b"b@y"))
    script.receive(b"250 ok\r\n")
    assert script.send(Bdat(b"2\n", last=True)) == b"BDAT 3 LAST\r\n2\r\n"
