"""asmtp through real proxies to Postfix: microsocks (SOCKS5 with a password), Dante (SOCKS4
and SOCKS5) and tinyproxy (HTTP CONNECT with Basic credentials), from ``_proxies.py``.

Plain mail to the MX, STARTTLS with AUTH on submission, and implicit TLS with AUTH on
submissions, through each proxy, delivered into the Maildir; the certificate is checked
against Postfix's name (the proxies listen on an address the certificate does not name,
and checking that address fails). Names are resolved where the scheme says, as the
proxies' own logs show. A refused proxy login, a refused tunnel and a destination the
proxy cannot reach raise :class:`asmtp.ProxyError`; the proxy password is in no log, no
transcript and no error.
"""

from __future__ import annotations

import base64
import logging
import ssl

import pytest

import asmtp
from interop import _kit
from interop._proxies import PASSWORD, PROXY_HOST, Proxies
from interop.realservers import Servers

pytestmark = [pytest.mark.anyio, pytest.mark.server("Postfix 3.7")]

SERVER_NAME = "localhost"
"""Postfix's name on its certificate (with 127.0.0.1 and mx.example.test; not 127.0.0.2)."""

KINDS = {
    "microsocks-socks5": "socks5",
    "microsocks-socks5h": "socks5h",
    "dante-socks4": "socks4",
    "dante-socks5h": "socks5h-dante",
    "tinyproxy-http": "http",
}
"""Each real proxy and scheme under test (``socks5h-dante``: Dante without a password)."""
FEATURES = {"microsocks": "SOCKS5 proxy", "dante": "SOCKS4/5 proxy", "tinyproxy": "HTTP proxy"}
EACH_KIND = [
    pytest.param(kind, marks=pytest.mark.feature(FEATURES[kind.split("-")[0]]), id=kind)
    for kind in KINDS
]


def _url(proxies: Proxies, kind: str, password: str | None = PASSWORD) -> str:
    scheme = KINDS[kind]
    if scheme == "socks5h-dante":
        return proxies.url("socks5h", password=None)
    return proxies.url(scheme, password=password)


@pytest.mark.parametrize("kind", EACH_KIND)
@pytest.mark.parametrize("mode", ["plain", "starttls", "implicit"])
async def test_mail_reaches_postfix_through_each_real_proxy(
    servers: Servers,
    proxies: Proxies,
    ca_context: ssl.SSLContext,
    kind: str,
    mode: str,
) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, f"through {kind}, {mode}\r\n".encode())
    port = {
        "plain": servers.smtp_port,
        "starttls": servers.submission_port,
        "implicit": servers.submissions_port,
    }[mode]
    credentials = {}
    if mode != "plain":
        credentials = {"username": servers.address("user"), "password": servers.password("user")}
    result = await asmtp.sendmail(
        servers.address("sender"),
        [servers.address("user")],
        sent,
        host=SERVER_NAME,
        port=port,
        tls="none" if mode == "plain" else mode,  # type: ignore[arg-type]
        context=ca_context,
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
        proxy=_url(proxies, kind),
        **credentials,  # type: ignore[arg-type]
    )
    assert result == {}
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("TLS name through a proxy")
@pytest.mark.parametrize("kind", ["microsocks-socks5h", "dante-socks4", "tinyproxy-http"])
async def test_checking_the_proxys_address_instead_of_postfixs_name_fails(
    servers: Servers, proxies: Proxies, ca_context: ssl.SSLContext, kind: str
) -> None:
    """Not vacuous: what passes above passes because the server's name is checked."""
    smtp = asmtp.SMTP_SSL(
        SERVER_NAME,
        servers.submissions_port,
        _kit.ME,
        timeout=_kit.TIMEOUT,
        context=ca_context,
        server_hostname=PROXY_HOST,
        proxy=_url(proxies, kind),
    )
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await smtp.connect()
    assert "IP address mismatch" in caught.value.verify_message
    async with asmtp.SMTP(
        SERVER_NAME, servers.submission_port, _kit.ME, _kit.TIMEOUT, proxy=_url(proxies, kind)
    ) as plain:
        with pytest.raises(ssl.SSLCertVerificationError):
            await plain.starttls(context=ca_context, server_hostname=PROXY_HOST)


@pytest.mark.feature("SOCKS5 proxy")
@pytest.mark.parametrize(("scheme", "seen"), [("socks5", "127.0.0.1"), ("socks5h", "localhost")])
async def test_socks5h_has_microsocks_resolve_the_name_and_socks5_resolves_it_here(
    servers: Servers, proxies: Proxies, scheme: str, seen: str
) -> None:
    """microsocks logs the destination as it received it: a name, or an address."""
    log = proxies.logs["microsocks"]
    before = _size(log)
    async with asmtp.SMTP(
        SERVER_NAME, servers.smtp_port, _kit.ME, _kit.TIMEOUT, proxy=proxies.url(scheme)
    ) as smtp:
        assert (await smtp.noop())[0] == 250
    added = _read(log)[before:]
    assert f"connected to {seen}:{servers.smtp_port}" in added


@pytest.mark.feature("HTTP proxy")
async def test_tinyproxy_resolves_the_name_itself(servers: Servers, proxies: Proxies) -> None:
    log = proxies.logs["tinyproxy"]
    before = _size(log)
    async with asmtp.SMTP(
        SERVER_NAME, servers.smtp_port, _kit.ME, _kit.TIMEOUT, proxy=proxies.url("http")
    ) as smtp:
        assert (await smtp.noop())[0] == 250
    assert f"CONNECT {SERVER_NAME}:{servers.smtp_port} HTTP/1.1" in _read(log)[before:]


@pytest.mark.feature("Proxy failures")
@pytest.mark.parametrize(
    ("scheme", "password", "code", "reason"),
    [
        ("socks5", "wrong-password", None, "Username and password authentication failure"),
        ("http", "wrong-password", 401, "refused the login"),
        ("http", None, 407, "requires a login"),
    ],
)
async def test_a_refused_proxy_login_raises_proxy_error(
    servers: Servers,
    proxies: Proxies,
    scheme: str,
    password: str | None,
    code: int | None,
    reason: str,
) -> None:
    smtp = asmtp.SMTP(
        SERVER_NAME,
        servers.smtp_port,
        _kit.ME,
        _kit.TIMEOUT,
        proxy=proxies.url(scheme, password=password),
    )
    with pytest.raises(asmtp.ProxyError) as caught:
        await smtp.connect()
    assert caught.value.error_code == code
    assert reason in str(caught.value)
    assert "wrong-password" not in str(caught.value)
    assert not smtp.is_connected


@pytest.mark.feature("Proxy failures")
@pytest.mark.parametrize(
    ("kind", "code", "reason"),
    [
        ("tinyproxy-http", 403, "refused the tunnel"),
        ("dante-socks5h", 2, "not allowed"),
    ],
)
async def test_a_tunnel_the_proxy_refuses_raises_proxy_error(
    proxies: Proxies, kind: str, code: int, reason: str
) -> None:
    """tinyproxy allows CONNECT to Postfix's ports only; Dante connects to loopback only."""
    host = "localhost" if kind.startswith("tinyproxy") else "127.0.0.3"
    smtp = asmtp.SMTP(host, proxies.blocked_port, _kit.ME, _kit.TIMEOUT, proxy=_url(proxies, kind))
    with pytest.raises(asmtp.ProxyError) as caught:
        await smtp.connect()
    assert caught.value.error_code == code
    assert reason in str(caught.value)


@pytest.mark.feature("Proxy failures")
@pytest.mark.parametrize("kind", ["microsocks-socks5h", "dante-socks4", "dante-socks5h"])
async def test_a_destination_the_proxy_cannot_reach_raises_proxy_error(
    proxies: Proxies, kind: str
) -> None:
    """Nothing listens on ``blocked_port``: the proxy's connection is refused."""
    smtp = asmtp.SMTP(
        SERVER_NAME, proxies.blocked_port, _kit.ME, _kit.TIMEOUT, proxy=_url(proxies, kind)
    )
    with pytest.raises(asmtp.ProxyError) as caught:
        await smtp.connect()
    assert caught.value.error_code == (0x5B if kind == "dante-socks4" else 5)
    assert f"{SERVER_NAME}:{proxies.blocked_port}" in str(caught.value)


@pytest.mark.feature("Proxy password kept secret")
@pytest.mark.parametrize("scheme", ["socks5", "http"])
async def test_the_proxy_password_is_in_no_log_transcript_or_error(
    servers: Servers,
    proxies: Proxies,
    ca_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    scheme: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="asmtp")
    async with asmtp.SMTP(
        SERVER_NAME, servers.submission_port, _kit.ME, _kit.TIMEOUT, proxy=proxies.url(scheme)
    ) as smtp:
        smtp.set_debuglevel(1)
        await smtp.starttls(context=ca_context)
        await smtp.login(servers.address("user"), servers.password("user"))
        shown = [repr(smtp)]
    refused = asmtp.SMTP(
        SERVER_NAME,
        servers.smtp_port,
        _kit.ME,
        _kit.TIMEOUT,
        proxy=proxies.url(scheme, password=PASSWORD + "-but-wrong"),
    )
    with pytest.raises(asmtp.ProxyError) as caught:
        await refused.connect()
    shown += [str(caught.value), repr(caught.value), repr(refused)]
    assert "through " + scheme in caplog.text, "the tunnel was not logged: this proves nothing"
    everything = {
        "asmtp log": caplog.text,
        "transcript": capsys.readouterr().err,
        "reprs and errors": "\n".join(shown),
        "proxy logs": proxies.log_text(),
    }
    forms = _secret_forms(PASSWORD)
    found = {where: [f for f in forms if f in text] for where, text in everything.items()}
    assert {where: hits for where, hits in found.items() if hits} == {}


def _secret_forms(secret: str) -> list[str]:
    """The secret, and its base64 at each alignment (HTTP Basic credentials hold it so)."""
    forms = [secret]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret.encode()).decode()
        forms.append(encoded[4 if shift else 0 : -4])
    return forms


def _size(path: str) -> int:
    return len(_read(path))


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


@pytest.mark.feature("SOCKS5 proxy")
async def test_lmtp_to_dovecot_through_microsocks(servers: Servers, proxies: Proxies) -> None:
    """LMTP over TCP goes through a proxy too; each recipient's reply after the data is read."""
    marker = _kit.token()
    sent = _kit.message(marker, b"LMTP through a SOCKS5 proxy\r\n")
    async with asmtp.LMTP(
        SERVER_NAME, servers.lmtp_port, _kit.ME, timeout=_kit.TIMEOUT, proxy=proxies.url("socks5h")
    ) as lmtp:
        refused = await lmtp.sendmail(
            servers.address("sender"), [servers.address("user"), servers.address("sender")], sent
        )
    assert refused == {}
    for name in ("user", "sender"):
        stored = await _kit.delivered(servers.maildir(name), marker)
        assert _kit.body_after_headers(stored) == _kit.expected_body(sent)
