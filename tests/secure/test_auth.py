"""SMTP AUTH (RFC 4954) end to end against aiosmtpd, one mechanism at a time.

aiosmtpd serves PLAIN and LOGIN itself; CRAM-MD5, XOAUTH2, OAUTHBEARER and SCRAM-SHA-256
(with the independent server in ``_scram_server``) and two hostile mechanisms are served
by ``_auth_server.AuthHandler``, which also records each AUTH and the client's answers.
AUTH is offered in the clear (``auth_require_tls=False``) to keep the tests fast; TLS
policy is ``test_policy``'s business.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import smtplib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pytest

import asmtp
from asmtp.auth import CramMD5, Login, Mechanism, OAuthBearer, Plain, ScramSHA256, XOAuth2
from secure._auth_server import (
    LOGIN_ORDER,
    PASSWORD,
    STANDARD,
    TOKEN,
    USER,
    AuthHandler,
    start_auth_server,
)
from secure._kit import ME, MESSAGE, WAIT

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio

MechanismFactory = Callable[[str, str], Mechanism]

# name -> (factory, the secret the server accepts, sends an initial response)
MECHANISM_OBJECTS: dict[str, tuple[MechanismFactory, str, bool]] = {
    "PLAIN": (Plain, PASSWORD, True),
    "LOGIN": (Login, PASSWORD, True),
    "CRAM-MD5": (CramMD5, PASSWORD, False),
    "XOAUTH2": (XOAuth2, TOKEN, True),
    "OAUTHBEARER": (OAuthBearer, TOKEN, True),
    "SCRAM-SHA-256": (ScramSHA256, PASSWORD, True),
}
by_name = pytest.mark.parametrize("name", list(MECHANISM_OBJECTS))


def client(server: ThreadedSMTPServer) -> asmtp.SMTP:
    return asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT)


def handler_of(server: ThreadedSMTPServer) -> AuthHandler:
    assert isinstance(server.handler, AuthHandler)
    return server.handler


@by_name
async def test_auth_with_each_mechanism_object_succeeds_and_mail_follows(
    smtpd_server_factory: SMTPDServerFactory, name: str
) -> None:
    factory, secret, initial = MECHANISM_OBJECTS[name]
    server = start_auth_server(smtpd_server_factory)
    async with client(server) as smtp:
        await smtp.ehlo()
        code, message = await smtp.auth(name, factory(USER, secret))
        assert (code, message) == (235, b"2.7.0 Authentication successful")
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert handler_of(server).attempts == [(name, initial)]
    assert len(server.handler.deliveries) == 1


@by_name
async def test_auth_with_a_wrong_secret_raises_the_servers_refusal_and_stays_usable(
    smtpd_server_factory: SMTPDServerFactory, name: str
) -> None:
    factory, _, _ = MECHANISM_OBJECTS[name]
    handler = AuthHandler(failure_replies={name: f"535 5.7.8 {name} refused"})
    server = start_auth_server(smtpd_server_factory, handler)
    async with client(server) as smtp:
        await smtp.ehlo()
        with pytest.raises(asmtp.SMTPAuthenticationError) as info:
            await smtp.auth(name, factory(USER, "wrong secret"))
        assert (info.value.smtp_code, info.value.smtp_error) == (
            535,
            f"5.7.8 {name} refused".encode(),
        )
        assert (await smtp.noop())[0] == 250
    assert handler.mechanisms_tried == [name]


async def test_a_second_auth_returns_the_servers_503_as_smtplib_does(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = start_auth_server(smtpd_server_factory)
    async with client(server) as smtp:
        assert (await smtp.login(USER, PASSWORD))[0] == 235
        assert await smtp.auth("PLAIN", Plain(USER, PASSWORD)) == (503, b"Already authenticated")


@pytest.mark.parametrize(
    ("advertised", "chosen"),
    [
        (STANDARD, "SCRAM-SHA-256"),
        (("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"), "CRAM-MD5"),
        (("LOGIN", "XOAUTH2", "PLAIN"), "PLAIN"),
        (("OAUTHBEARER", "LOGIN", "XOAUTH2"), "LOGIN"),
    ],
)
async def test_login_uses_the_first_advertised_mechanism_in_the_documented_order(
    smtpd_server_factory: SMTPDServerFactory, advertised: Sequence[str], chosen: str
) -> None:
    server = start_auth_server(smtpd_server_factory, advertise=advertised)
    async with client(server) as smtp:
        assert (await smtp.login(USER, PASSWORD))[0] == 235
    assert handler_of(server).mechanisms_tried == [chosen]


async def test_login_with_a_wrong_password_tries_each_mechanism_and_raises_the_last_reply(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """smtplib's fallback order among the mechanisms that do not authenticate the server."""
    handler = AuthHandler(
        failure_replies={
            "CRAM-MD5": "535 5.7.8 cram refused",
            "PLAIN": "535 5.7.8 plain refused",
            "LOGIN": "454 4.7.0 login unavailable",
        }
    )
    without_scram = [name for name in STANDARD if name != "SCRAM-SHA-256"]
    server = start_auth_server(smtpd_server_factory, handler, advertise=without_scram)
    async with client(server) as smtp:
        with pytest.raises(asmtp.SMTPAuthenticationError) as info:
            await smtp.login(USER, "wrong password")
        assert (info.value.smtp_code, info.value.smtp_error) == (454, b"4.7.0 login unavailable")
    assert handler.mechanisms_tried == [name for name in LOGIN_ORDER if name in without_scram]


@pytest.mark.parametrize(
    ("advertised", "mechanisms", "password", "tried"),
    [
        (STANDARD, ["LOGIN"], PASSWORD, ["LOGIN"]),
        (STANDARD, ["plain", "cram-md5"], PASSWORD, ["PLAIN"]),
        (STANDARD, ["LOGIN", "PLAIN"], "wrong", ["LOGIN", "PLAIN"]),
        (("PLAIN",), ["SCRAM-SHA-256", "PLAIN"], PASSWORD, ["PLAIN"]),
    ],
    ids=["one", "case-insensitive-first", "caller-order-on-failure", "unadvertised-skipped"],
)
async def test_login_mechanisms_argument_restricts_and_orders_the_choice(
    smtpd_server_factory: SMTPDServerFactory,
    advertised: Sequence[str],
    mechanisms: list[str],
    password: str,
    tried: list[str],
) -> None:
    server = start_auth_server(smtpd_server_factory, advertise=advertised)
    async with client(server) as smtp:
        if password == PASSWORD:
            assert (await smtp.login(USER, password, mechanisms=mechanisms))[0] == 235
        else:
            with pytest.raises(asmtp.SMTPAuthenticationError):
                await smtp.login(USER, password, mechanisms=mechanisms)
    assert handler_of(server).mechanisms_tried == tried


async def test_login_without_auth_advertised_raises_not_supported_and_sends_nothing(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd's default ``auth_require_tls=True`` hides AUTH on a clear connection."""
    server = start_auth_server(smtpd_server_factory, auth_require_tls=True)
    async with client(server) as smtp:
        with pytest.raises(asmtp.SMTPNotSupportedError):
            await smtp.login(USER, PASSWORD)
        assert not smtp.has_extn("auth")
    assert handler_of(server).attempts == []


@pytest.mark.parametrize(
    ("advertised", "mechanisms"),
    [(("XOAUTH2", "OAUTHBEARER"), None), (("PLAIN",), ["CRAM-MD5", "SCRAM-SHA-256"])],
)
async def test_login_without_a_suitable_mechanism_raises_smtp_exception(
    smtpd_server_factory: SMTPDServerFactory,
    advertised: Sequence[str],
    mechanisms: list[str] | None,
) -> None:
    server = start_auth_server(smtpd_server_factory, advertise=advertised)
    async with client(server) as smtp:
        with pytest.raises(asmtp.SMTPException) as info:
            await smtp.login(USER, PASSWORD, mechanisms=mechanisms)
        assert type(info.value) is smtplib.SMTPException
        assert str(info.value) == "No suitable authentication method found."
    assert handler_of(server).attempts == []


def _login_callable(challenge: bytes | None = None) -> str:
    return PASSWORD if challenge is not None and b"Password" in challenge else USER


def _cram_callable(challenge: bytes | None = None) -> str | None:
    if challenge is None:
        return None
    return f"{USER} {hmac.new(PASSWORD.encode(), challenge, hashlib.md5).hexdigest()}"


def _smtplib_authobject(name: str) -> Callable[..., str | None]:
    """smtplib's own bound ``auth_plain``/``auth_cram_md5``: a drop-in must accept them."""
    stdlib = smtplib.SMTP()
    stdlib.user, stdlib.password = USER, PASSWORD
    return stdlib.auth_plain if name == "PLAIN" else stdlib.auth_cram_md5


CALLABLES: dict[str, tuple[str, Callable[[], Callable[..., str | None]]]] = {
    "plain": ("PLAIN", lambda: lambda challenge=None: f"\0{USER}\0{PASSWORD}"),
    "login": ("LOGIN", lambda: _login_callable),
    "cram-md5": ("CRAM-MD5", lambda: _cram_callable),
    "smtplib-plain": ("PLAIN", lambda: _smtplib_authobject("PLAIN")),
    "smtplib-cram-md5": ("CRAM-MD5", lambda: _smtplib_authobject("CRAM-MD5")),
}


@pytest.mark.parametrize("initial_response_ok", [True, False])
@pytest.mark.parametrize("case", list(CALLABLES))
async def test_auth_accepts_an_smtplib_style_callable(
    smtpd_server_factory: SMTPDServerFactory, case: str, initial_response_ok: bool
) -> None:
    name, make = CALLABLES[case]
    server = start_auth_server(smtpd_server_factory)
    async with client(server) as smtp:
        await smtp.ehlo()
        code, _ = await smtp.auth(name, make(), initial_response_ok=initial_response_ok)
        assert code == 235
    initial = initial_response_ok and name != "CRAM-MD5"
    assert handler_of(server).attempts == [(name, initial)]


@by_name
async def test_initial_response_ok_false_waits_for_the_servers_prompt(
    smtpd_server_factory: SMTPDServerFactory, name: str
) -> None:
    """RFC 4954 §4: without an initial response the server prompts with an empty 334."""
    factory, secret, _ = MECHANISM_OBJECTS[name]
    server = start_auth_server(smtpd_server_factory)
    async with client(server) as smtp:
        await smtp.ehlo()
        code, _ = await smtp.auth(name, factory(USER, secret), initial_response_ok=False)
        assert code == 235
    assert handler_of(server).attempts == [(name, False)]


@pytest.mark.parametrize("name", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"])
async def test_login_passes_initial_response_ok_false_to_each_mechanism(
    smtpd_server_factory: SMTPDServerFactory, name: str
) -> None:
    server = start_auth_server(smtpd_server_factory, advertise=[name])
    async with client(server) as smtp:
        assert (await smtp.login(USER, PASSWORD, initial_response_ok=False))[0] == 235
    assert handler_of(server).attempts == [(name, False)]


async def test_endless_challenges_are_cancelled_with_a_star_after_five(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = start_auth_server(smtpd_server_factory, advertise=["X-ENDLESS"])
    async with client(server) as smtp:
        await smtp.ehlo()
        with pytest.raises(asmtp.SMTPException, match="infinite loop") as info:
            await smtp.auth("X-ENDLESS", lambda challenge=None: "again")
        assert not isinstance(info.value, asmtp.SMTPAuthenticationError)
        assert (await smtp.noop())[0] == 250  # the server's 501 to "*" was read
    assert handler_of(server).answers == [b"again"] * 5 + [b"*"]


async def test_a_challenge_that_is_not_base64_is_an_authentication_error_and_cancelled(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = start_auth_server(smtpd_server_factory, advertise=["X-GARBLED"])
    async with client(server) as smtp:
        await smtp.ehlo()
        with pytest.raises(asmtp.SMTPAuthenticationError):
            await smtp.auth("X-GARBLED", lambda challenge=None: "answer")
        assert (await smtp.noop())[0] == 250
    assert handler_of(server).answers == [b"*"]


@pytest.mark.parametrize(
    ("name", "answer"), [("XOAUTH2", b""), ("OAUTHBEARER", b"\x01")], ids=["xoauth2", "oauthbearer"]
)
async def test_oauth_failure_answers_the_json_error_challenge_then_gets_535(
    smtpd_server_factory: SMTPDServerFactory, name: str, answer: bytes
) -> None:
    """XOAUTH2 (Google's doc) answers the JSON error empty; OAUTHBEARER with %x01 (RFC 7628)."""
    factory, _, _ = MECHANISM_OBJECTS[name]
    handler = AuthHandler()
    server = start_auth_server(smtpd_server_factory, handler)
    async with client(server) as smtp:
        await smtp.ehlo()
        with pytest.raises(asmtp.SMTPAuthenticationError) as info:
            await smtp.auth(name, factory(USER, "expired-token"))
        assert info.value.smtp_code == 535
    assert handler.answers == [answer]


@pytest.mark.parametrize("server_final", ["wrong", "missing"])
async def test_scram_server_that_cannot_prove_the_password_fails_and_closes_the_connection(
    smtpd_server_factory: SMTPDServerFactory, server_final: str
) -> None:
    """``wrong``: a bad ``v=`` in the 334; ``missing``: 235 with no ``v=`` at all."""
    handler = AuthHandler(scram_server_final=server_final)
    server = start_auth_server(smtpd_server_factory, handler)
    async with client(server) as smtp:
        await smtp.ehlo()
        with pytest.raises(asmtp.SMTPAuthenticationError):
            await smtp.auth("SCRAM-SHA-256", ScramSHA256(USER, PASSWORD))
        assert not smtp.is_connected
        with pytest.raises(asmtp.SMTPServerDisconnected):
            await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    assert server.handler.deliveries == []


@pytest.mark.parametrize("server_final", ["wrong", "missing"])
async def test_login_never_falls_back_to_another_mechanism_after_scram_server_proof_fails(
    smtpd_server_factory: SMTPDServerFactory, server_final: str
) -> None:
    """A server that failed to prove it knows the password must not get it in PLAIN next."""
    handler = AuthHandler(scram_server_final=server_final)
    server = start_auth_server(smtpd_server_factory, handler)
    async with client(server) as smtp:
        with pytest.raises(asmtp.SMTPAuthenticationError):
            await smtp.login(USER, PASSWORD)
        assert not smtp.is_connected
    assert handler.mechanisms_tried == ["SCRAM-SHA-256"]


def _foreign_nonce(server_first: bytes) -> bytes:
    return re.sub(rb"^r=[^,]*", b"r=someoneElsesNonce123", server_first)


SCRAM_TAMPERING: dict[str, Callable[[bytes], bytes]] = {
    "nonce-not-extending-ours": _foreign_nonce,
    "iterations-below-4096": lambda first: first.replace(b"i=4096", b"i=1024"),
    "iterations-above-the-bound": lambda first: first.replace(b"i=4096", b"i=100000000"),
    "salt-not-base64": lambda first: re.sub(rb"s=[^,]*", b"s=%%%%", first),
    "malformed": lambda first: b"this is not scram",
}


@pytest.mark.parametrize("tamper", SCRAM_TAMPERING.values(), ids=SCRAM_TAMPERING)
async def test_login_tries_no_other_mechanism_after_scram_detects_tampering(
    smtpd_server_factory: SMTPDServerFactory, tamper: Callable[[bytes], bytes]
) -> None:
    """The exchange is cancelled with ``*``; the password never goes out by PLAIN or LOGIN."""
    handler = AuthHandler(scram_server_first=tamper)
    server = start_auth_server(smtpd_server_factory, handler)
    async with client(server) as smtp:
        with pytest.raises(asmtp.SMTPAuthenticationError) as info:
            await smtp.login(USER, PASSWORD)
        assert b"tries no other mechanism after SCRAM-SHA-256" in info.value.smtp_error
        assert (await smtp.noop())[0] == 250
    assert handler.mechanisms_tried == ["SCRAM-SHA-256"]


@pytest.mark.parametrize(
    ("mechanisms", "tried"),
    [
        (None, ["SCRAM-SHA-256"]),
        (["PLAIN", "SCRAM-SHA-256", "LOGIN"], ["PLAIN", "SCRAM-SHA-256"]),
    ],
    ids=["scram-first", "scram-in-the-middle"],
)
@pytest.mark.parametrize("refusal", ["535 5.7.8 scram refused", "454 4.7.0 try again later"])
async def test_login_tries_no_other_mechanism_after_scram_is_refused(
    smtpd_server_factory: SMTPDServerFactory,
    mechanisms: list[str] | None,
    tried: list[str],
    refusal: str,
) -> None:
    handler = AuthHandler(failure_replies={"SCRAM-SHA-256": refusal})
    server = start_auth_server(smtpd_server_factory, handler)
    async with client(server) as smtp:
        with pytest.raises(asmtp.SMTPAuthenticationError) as info:
            await smtp.login(USER, "wrong password", mechanisms=mechanisms)
        assert info.value.smtp_code == int(refusal[:3])
        assert info.value.smtp_error == (
            refusal[4:].encode() + b" (login() tries no other mechanism after SCRAM-SHA-256 fails)"
        )
        assert not isinstance(info.value, asmtp.SMTPServerNotGenuine)
    assert handler.mechanisms_tried == tried
