"""EHLO/LHLO lines to Extensions: smtplib's esmtp_features, plus typed accessors."""

from __future__ import annotations

import io
import smtplib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asmtp.protocol import Extensions

from ._helpers import greeted, multiline, parse_whole

GREETING_LINE = b"mx.example greets client.example"


def parse(*lines: bytes) -> Extensions:
    return Extensions.from_ehlo_lines((GREETING_LINE, *lines))


class _OfflineSMTP(smtplib.SMTP):
    """smtplib's own EHLO parsing, fed from bytes instead of a socket."""

    def __init__(self, wire: bytes) -> None:
        super().__init__(local_hostname="client.example")
        self.file = io.BytesIO(wire)

    def putcmd(self, cmd: str, args: str = "") -> None:
        pass


def smtplib_features(*lines: bytes) -> dict[str, str]:
    smtp = _OfflineSMTP(multiline(250, GREETING_LINE, *lines))
    code, _ = smtp.ehlo()
    assert code == 250
    return smtp.esmtp_features


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            (b"PIPELINING", b"SIZE 35882577", b"8BITMIME", b"ENHANCEDSTATUSCODES"),
            {"pipelining": "", "size": "35882577", "8bitmime": "", "enhancedstatuscodes": ""},
            id="keywords-with-and-without-params",
        ),
        pytest.param((b"pipelining", b"Size 10"), {"pipelining": "", "size": "10"}, id="case"),
        pytest.param((b"AUTH PLAIN LOGIN",), {"auth": " PLAIN LOGIN"}, id="auth"),
        pytest.param(
            (b"AUTH=LOGIN PLAIN", b"AUTH CRAM-MD5"),
            {"auth": " LOGIN PLAIN CRAM-MD5"},
            id="old-style-auth-first",
        ),
        pytest.param(
            (b"AUTH CRAM-MD5", b"auth=LOGIN"), {"auth": " CRAM-MD5 LOGIN"}, id="old-style-auth-last"
        ),
        pytest.param((b"SIZE",), {"size": ""}, id="size-without-number"),
        pytest.param(
            (b"X-EXPS GSSAPI NTLM", b"XFOO=bar"),
            {"x-exps": "GSSAPI NTLM", "xfoo": "=bar"},
            id="unusual-keywords",
        ),
        pytest.param((b"SIZE 1", b"SIZE 2"), {"size": "2"}, id="repeat-last-wins"),
        pytest.param((b"DSN  \t", b"  STARTTLS"), {"dsn": "", "starttls": ""}, id="whitespace"),
        pytest.param(
            (b"-bad", b"***", b"", b"\xe9t\xe9", b"CHUNKING"), {"chunking": ""}, id="garbage"
        ),
    ],
)
def test_features_are_the_dict_smtplib_builds(
    lines: tuple[bytes, ...], expected: dict[str, str]
) -> None:
    assert smtplib_features(*lines) == expected
    assert dict(parse(*lines)) == expected


_LINE = st.one_of(
    st.binary(max_size=20),
    st.builds(
        b"".join,
        st.lists(
            st.sampled_from([b"AUTH", b"auth=", b"=", b" ", b"\t", b"SIZE", b"-", b"X", b"1"]),
            max_size=6,
        ),
    ),
).filter(lambda line: b"\n" not in line and b"\r" not in line)


@given(st.lists(_LINE, max_size=6))
def test_any_ehlo_reply_gives_smtplibs_features(lines: list[bytes]) -> None:
    wire = multiline(250, GREETING_LINE, *lines)
    [(_, parsed)] = parse_whole(wire)
    assert dict(Extensions.from_ehlo_lines(parsed)) == smtplib_features(*lines)


def test_a_reply_parsed_again_or_too_long_to_remember_gives_the_same_features() -> None:
    short = (b"SIZE 1000", b"AUTH PLAIN LOGIN", b"AUTH=CRAM-MD5", b"PIPELINING")
    long = (*short, *(b"X-FILLER-%d %s" % (n, b"x" * 100) for n in range(50)))
    assert sum(map(len, long)) > 4096  # past the remembered size: parsed every time
    for lines in (short, long):
        first, again = parse(*lines), parse(*lines)
        assert dict(first) == dict(again) == smtplib_features(*lines)
        assert first is not again
    # Another greeting line, the same extensions: the greeting is not part of them.
    assert dict(Extensions.from_ehlo_lines((b"other.example hello", *short))) == dict(parse(*short))


def test_the_greeting_line_is_not_an_extension() -> None:
    assert dict(Extensions.from_ehlo_lines((b"PIPELINING",))) == {}


def test_lookup_is_case_insensitive() -> None:
    extensions = parse(b"Size 1000", b"pipelining")
    assert extensions["SIZE"] == extensions["size"] == extensions["SiZe"] == "1000"
    assert "PIPELINING" in extensions
    assert "Pipelining" in extensions
    assert "chunking" not in extensions
    assert b"size" not in extensions  # type: ignore[comparison-overlap]
    with pytest.raises(KeyError):
        extensions["CHUNKING"]


def test_extensions_is_a_read_only_mapping_equal_to_its_dict() -> None:
    extensions = parse(b"SIZE 10", b"DSN")
    assert extensions == {"size": "10", "dsn": ""}
    assert len(extensions) == 2
    assert list(extensions) == ["size", "dsn"]
    assert repr(extensions) == "Extensions({'size': '10', 'dsn': ''})"
    assert Extensions() == {}


@pytest.mark.parametrize(
    ("lines", "size"),
    [((), None), ((b"SIZE",), 0), ((b"SIZE 35882577",), 35882577), ((b"SIZE lots",), 0)],
)
def test_size_is_the_advertised_limit(lines: tuple[bytes, ...], size: int | None) -> None:
    assert parse(*lines).size == size


@pytest.mark.parametrize(
    ("keyword", "attribute"),
    [
        ("PIPELINING", "pipelining"),
        ("CHUNKING", "chunking"),
        ("BINARYMIME", "binarymime"),
        ("8BITMIME", "eightbitmime"),
        ("SMTPUTF8", "smtputf8"),
        ("DSN", "dsn"),
        ("STARTTLS", "starttls"),
        ("ENHANCEDSTATUSCODES", "enhanced_status_codes"),
    ],
)
def test_flag_accessor_follows_the_keyword(keyword: str, attribute: str) -> None:
    assert getattr(parse(keyword.lower().encode()), attribute) is True
    assert getattr(parse(b"HELP"), attribute) is False


@pytest.mark.parametrize(
    ("lines", "mechanisms"),
    [
        ((), ()),
        ((b"AUTH",), ()),
        ((b"AUTH PLAIN LOGIN XOAUTH2",), ("PLAIN", "LOGIN", "XOAUTH2")),
        ((b"AUTH=LOGIN PLAIN", b"AUTH plain CRAM-MD5 login"), ("LOGIN", "PLAIN", "CRAM-MD5")),
        ((b"auth cram-md5", b"AUTH=Cram-MD5"), ("CRAM-MD5",)),
    ],
)
def test_auth_mechanisms_are_upper_case_in_order_without_repeats(
    lines: tuple[bytes, ...], mechanisms: tuple[str, ...]
) -> None:
    assert parse(*lines).auth_mechanisms == mechanisms


def test_connection_exposes_extensions_from_a_positive_ehlo() -> None:
    script = greeted("PIPELINING", "SIZE 1000", "AUTH PLAIN")
    extensions = script.conn.extensions
    assert extensions is not None
    assert dict(extensions) == {"pipelining": "", "size": "1000", "auth": " PLAIN"}
