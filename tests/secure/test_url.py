"""Connection settings from one URL: ``url=`` on connect, sendmail, send_message and SMTPPool.

The parser is checked on its own (schemes, default ports, percent-decoding, every malformed
form refused without quoting the URL); then each scheme end to end against aiosmtpd: plain,
STARTTLS with the URL's percent-encoded credentials, implicit TLS, and LMTP over TCP and a
Unix socket (``connect()`` then yields an ``asmtp.LMTP`` that says LHLO). The password in a
URL never shows in an error, a repr or the transcript.
"""

from __future__ import annotations

import email.message
import logging
import traceback
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import asmtp
from asmtp._client import ClientSettings, client_settings
from asmtp._client._url import ServerURL, parse_url
from secure._auth_server import AuthHandler, start_auth_server
from secure._kit import ME, MESSAGE, WAIT, verbs
from support.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory, TLSContexts

USER = "ada@example.test"
SECRET = "p@ss:w/rd?#%"  # every character a URL must percent-encode
ENCODED = f"{urllib.parse.quote(USER, safe='')}:{urllib.parse.quote(SECRET, safe='')}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example", ServerURL("mail.example", 0, None, lmtp=False)),
        ("SMTP://mail.example:2525/", ServerURL("mail.example", 2525, None, lmtp=False)),
        ("smtp://mail.example?tls=none", ServerURL("mail.example", 0, "none", lmtp=False)),
        ("smtp://h?tls=implicit", ServerURL("h", 0, "implicit", lmtp=False)),
        ("smtp+starttls://h", ServerURL("h", 587, "starttls", lmtp=False)),
        ("smtps://h", ServerURL("h", 465, "implicit", lmtp=False)),
        ("smtps://h:4650?tls=implicit", ServerURL("h", 4650, "implicit", lmtp=False)),
        ("smtp://[::1]:25", ServerURL("::1", 25, None, lmtp=False)),
        ("lmtp://h", ServerURL("h", 2003, None, lmtp=True)),
        ("lmtp://h:24?tls=starttls", ServerURL("h", 24, "starttls", lmtp=True)),
        ("lmtp:///run/dove%20cot/lmtp", ServerURL("/run/dove cot/lmtp", 0, None, lmtp=True)),
    ],
)
def test_each_scheme_says_where_and_how(url: str, expected: ServerURL) -> None:
    assert parse_url(url) == expected


def test_user_and_password_are_percent_decoded_and_the_password_is_a_secret() -> None:
    parsed = parse_url(f"smtp+starttls://{ENCODED}@mail.example")
    assert parsed.username == USER
    assert parsed.password is not None and parsed.password.reveal() == SECRET
    assert SECRET not in repr(parsed) and urllib.parse.quote(SECRET, safe="") not in repr(parsed)


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        ("http://h", r"^url must start with one of smtp://, smtp\+starttls://, smtps://, lmtp://"),
        ("mail.example:25", r"must start with one of .*, not mail\.example://"),
        ("smtp://", r"^url names no host"),
        ("smtp://ada:hunter2@", r"^url names no host"),
        ("smtp://:hunter2@h", r"^url has a password but no user name$"),
        ("smtps://h?tls=none", r"^url: smtps:// means tls='implicit', not tls='none'$"),
        ("smtp://h?tls=maybe", r"^url: tls= must be auto, implicit, starttls or none$"),
        ("smtp://h?timeout=5", r"^url takes one query parameter, tls=, and nothing else"),
        ("smtp://h?tls=none&tls=auto", r"^url takes one query parameter"),
        ("smtp://h/submission", r"^url has a path"),
        ("smtp://ada:hun#ter2@h", r"^url is not a valid URL: percent-encode '@', ':', '/'"),
        ("smtp://ada:hun?ter2@h", r"^url is not a valid URL"),
        ("smtp://ada@h#hunter2", r"^url has a '#' fragment: percent-encode"),
        ("smtp://ada@h?hunter2", r"^url takes one query parameter, tls=, and nothing else"),
        ("smtp://ada:hunter2@h:99999", r"^url is not a valid URL: percent-encode"),
        ("smtp://ada:hun/ter2@h", r"^url is not a valid URL"),
        ("lmtp://ada:hunter2@/run/lmtp", r"^url names no host"),
        ("lmtp:///run/lmtp?tls=starttls", r"Unix socket URL takes no user name and no TLS"),
    ],
)
def test_a_malformed_url_is_a_value_error_that_never_quotes_it(url: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as info:
        parse_url(url)
    assert "hunter2" not in str(info.value) and "ter2" not in str(info.value)


def _settings(**options: Any) -> ClientSettings:
    defaults: dict[str, Any] = {
        "tls": "auto",
        "username": None,
        "password": None,
        "mechanism": None,
        "context": None,
        "local_hostname": None,
        "timeout": WAIT,
        "source_address": None,
    }
    host, port = options.pop("host", "localhost"), options.pop("port", 0)
    return client_settings(host, port, **{**defaults, **options})


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"url": "smtp://h", "host": "other"}, r"either as url= or as host and port, not both"),
        ({"url": "smtp://h", "port": 25}, r"either as url= or as host and port"),
        ({"url": "smtps://h", "tls": "none"}, r"the url means tls='implicit'; it contradicts"),
        ({"url": "smtp://a@h", "username": "b"}, r"user name in the url or as username="),
        ({"url": "smtp://a:pw@h", "password": "pw"}, r"password in the url or as password="),
        ({"url": "lmtp://h", "tls": "implicit"}, r"tls='implicit' does not apply to LMTP"),
        ({"url": "lmtp:///run/lmtp", "tls": "starttls"}, r"does not apply to a Unix socket"),
    ],
)
def test_a_url_and_keywords_that_contradict_it_are_refused(
    options: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        _settings(**options)


def test_keywords_fill_in_what_the_url_leaves_out() -> None:
    settings = _settings(url="smtp://ada@h:2525", tls="starttls", password="pw")
    assert (settings.host, settings.port, settings.tls, settings.lmtp) == (
        "h",
        2525,
        "starttls",
        False,
    )
    assert settings.username == "ada"
    assert settings.password is not None and settings.password.reveal() == "pw"
    assert not settings.implicit_tls


def test_port_465_in_an_smtp_url_means_implicit_tls_as_the_port_keyword_does() -> None:
    assert _settings(url="smtp://h:465").implicit_tls
    assert _settings(url="smtp://h?tls=implicit").implicit_tls


# -- end to end ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_smtp_url_connects_and_sends(smtpd_server_factory: SMTPDServerFactory) -> None:
    server = smtpd_server_factory(RecordingHandler())
    url = f"smtp://{server.host}:{server.port}"
    async with asmtp.connect(url=url, local_hostname=ME, timeout=WAIT) as smtp:
        assert type(smtp) is asmtp.SMTP
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert await asmtp.sendmail("a@x.test", ["c@x.test"], MESSAGE, url=url, timeout=WAIT) == {}
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@x.test", "d@x.test", "url"
    assert await asmtp.send_message(msg, url=url, timeout=WAIT) == {}
    async with asmtp.SMTPPool(url=url, timeout=WAIT) as pool:
        assert (pool.host, pool.port) == (server.host, server.port)
        assert await pool.sendmail("a@x.test", ["e@x.test"], MESSAGE) == {}
    rcpts = [delivery.rcpt_tos for delivery in server.handler.deliveries]
    assert rcpts == [("b@x.test",), ("c@x.test",), ("d@x.test",), ("e@x.test",)]


@pytest.mark.anyio
async def test_a_starttls_url_logs_in_with_its_percent_encoded_credentials(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    handler = AuthHandler(passwords={USER: SECRET})
    server = start_auth_server(
        smtpd_server_factory, handler, tls_context=tls_contexts.server, auth_require_tls=True
    )
    url = f"smtp+starttls://{ENCODED}@{server.host}:{server.port}"
    async with asmtp.SMTPPool(url=url, context=tls_contexts.client, timeout=WAIT) as pool:
        assert SECRET not in repr(pool)
        assert await pool.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert verbs(handler.commands) == [
        "EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT",
    ]  # fmt: skip


@pytest.mark.anyio
async def test_an_smtps_url_speaks_tls_from_the_first_byte(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    server = smtpd_server_factory(RecordingHandler(), ssl_context=tls_contexts.server)
    url = f"smtps://{server.host}:{server.port}"
    async with asmtp.connect(url=url, context=tls_contexts.client, timeout=WAIT) as smtp:
        assert type(smtp) is asmtp.SMTP_SSL
        assert smtp.is_encrypted
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["unix", "tcp"])
async def test_an_lmtp_url_yields_an_lmtp_client(
    smtpd_server_factory: SMTPDServerFactory, unix_socket_path: Path, transport: str
) -> None:
    handler = RecordingHandler()
    if transport == "unix":
        server = smtpd_server_factory(handler, lmtp=True, unix_path=unix_socket_path)
        url = "lmtp://" + urllib.parse.quote(str(unix_socket_path))
    else:
        server = smtpd_server_factory(handler, lmtp=True)
        url = f"lmtp://{server.host}:{server.port}"
    async with asmtp.connect(url=url, local_hostname=ME, timeout=WAIT) as lmtp:
        assert type(lmtp) is asmtp.LMTP
        assert await lmtp.sendmail("a@x.test", ["b@x.test", "c@x.test"], MESSAGE) == {}
    assert verbs(handler.commands) == ["LHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert await asmtp.sendmail("a@x.test", ["d@x.test"], MESSAGE, url=url, timeout=WAIT) == {}
    assert handler.deliveries[-1].rcpt_tos == ("d@x.test",)


@pytest.mark.anyio
async def test_the_urls_password_shows_in_no_error_repr_or_transcript(
    smtpd_server_factory: SMTPDServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """No STARTTLS offered: the policy refuses to send the credentials in the clear."""
    handler = AuthHandler(passwords={USER: SECRET})
    server = start_auth_server(smtpd_server_factory, handler)
    url = f"smtp://{ENCODED}@{server.host}:{server.port}"
    caplog.set_level(logging.DEBUG, logger="asmtp")
    with pytest.raises(asmtp.TLSRequiredError) as info:
        await asmtp.sendmail("a@x.test", ["b@x.test"], MESSAGE, url=url, timeout=WAIT)
    assert info.value.reason == "credentials-in-clear"
    shown = "".join(traceback.format_exception(info.value)) + caplog.text
    shown += repr(asmtp.SMTPPool(url=url))
    for form in (SECRET, urllib.parse.quote(SECRET, safe=""), ENCODED):
        assert form not in shown
    assert handler.attempts == []
