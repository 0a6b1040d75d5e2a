"""The one-shot facade's TLS policy (``tls=`` auto/implicit/starttls/none) and secret hygiene.

aiosmtpd proves every case: with ``tls_context`` it offers STARTTLS, with ``ssl_context``
it speaks implicit TLS, and ``_auth_server.AuthHandler`` records whether AUTH arrived.
"Nothing sent" is checked on the server's side: its recorded commands.
"""

from __future__ import annotations

import email.message
import logging
import ssl
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

import asmtp
from asmtp._client import client_settings
from asmtp.auth import CramMD5, Login, Mechanism, Plain, ScramSHA256
from secure._auth_server import PASSWORD, USER, AuthHandler, start_auth_server, wire_forms
from secure._kit import ME, MESSAGE, WAIT, verbs

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer
    from support.fixtures import SMTPDServerFactory, TLSContexts

pytestmark = pytest.mark.anyio

CREDENTIALS: dict[str, dict[str, Any]] = {
    "login": {"username": USER, "password": PASSWORD},
    "mechanism": {"mechanism": Plain(USER, PASSWORD)},
}


def one_shot(server: ThreadedSMTPServer, **options: Any) -> dict[str, Any]:
    """Keyword arguments for asmtp.sendmail / asmtp.connect to ``server``."""
    return {
        "host": server.host,
        "port": server.port,
        "local_hostname": ME,
        "timeout": WAIT,
        **options,
    }


@pytest.mark.parametrize("tls", ["auto", "starttls"])
@pytest.mark.parametrize("credentials", [None, *CREDENTIALS])
async def test_auto_and_starttls_upgrade_before_auth_and_send(
    smtpd_server_factory: SMTPDServerFactory,
    tls_contexts: TLSContexts,
    tls: asmtp.TLSMode,
    credentials: str | None,
) -> None:
    handler = AuthHandler()
    server = start_auth_server(
        smtpd_server_factory, handler, tls_context=tls_contexts.server, auth_require_tls=True
    )
    extra = CREDENTIALS[credentials] if credentials else {}
    refused = await asmtp.sendmail(
        "a@x.test",
        ["b@x.test"],
        MESSAGE,
        **one_shot(server, tls=tls, context=tls_contexts.client, **extra),
    )
    assert refused == {}
    expected = ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    if credentials:
        expected.insert(3, "AUTH")
    assert verbs(handler.commands) == expected
    assert handler.deliveries[0].content == MESSAGE


async def test_auto_verifies_the_starttls_certificate_with_the_default_context(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    server = start_auth_server(smtpd_server_factory, tls_context=tls_contexts.server)
    with pytest.raises(ssl.SSLCertVerificationError):
        await asmtp.sendmail(
            "a@x.test", ["b@x.test"], MESSAGE, **one_shot(server, **CREDENTIALS["login"])
        )
    assert verbs(server.handler.commands) == ["EHLO"]


@pytest.mark.parametrize("credentials", list(CREDENTIALS))
async def test_auto_refuses_to_send_credentials_without_starttls(
    smtpd_server_factory: SMTPDServerFactory, credentials: str
) -> None:
    handler = AuthHandler()
    server = start_auth_server(smtpd_server_factory, handler)  # AUTH offered in the clear
    with pytest.raises(asmtp.TLSRequiredError) as info:
        await asmtp.sendmail(
            "a@x.test", ["b@x.test"], MESSAGE, **one_shot(server, **CREDENTIALS[credentials])
        )
    assert isinstance(info.value, asmtp.SMTPNotSupportedError)
    assert info.value.reason == "credentials-in-clear"
    assert verbs(handler.commands) == ["EHLO", "QUIT"]
    assert handler.attempts == []
    assert handler.deliveries == []


async def test_auto_without_credentials_sends_in_the_clear_when_starttls_is_not_offered(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory()
    assert await asmtp.sendmail("a@x.test", ["b@x.test"], MESSAGE, **one_shot(server)) == {}
    assert verbs(server.handler.commands) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


@pytest.mark.parametrize("credentials", [None, *CREDENTIALS])
async def test_starttls_mode_fails_closed_when_the_server_does_not_offer_it(
    smtpd_server_factory: SMTPDServerFactory, credentials: str | None
) -> None:
    handler = AuthHandler()
    server = start_auth_server(smtpd_server_factory, handler)
    extra = CREDENTIALS[credentials] if credentials else {}
    with pytest.raises(asmtp.TLSRequiredError) as info:
        await asmtp.sendmail(
            "a@x.test", ["b@x.test"], MESSAGE, **one_shot(server, tls="starttls", **extra)
        )
    assert info.value.reason == "no-starttls"
    assert f"{server.host}:{server.port} does not offer STARTTLS" in str(info.value)
    assert verbs(handler.commands) == ["EHLO", "QUIT"]
    assert handler.deliveries == []


@pytest.mark.parametrize("credentials", list(CREDENTIALS))
@pytest.mark.parametrize("offers_starttls", [False, True])
async def test_none_mode_sends_credentials_in_the_clear_as_explicitly_chosen(
    smtpd_server_factory: SMTPDServerFactory,
    tls_contexts: TLSContexts,
    offers_starttls: bool,
    credentials: str,
) -> None:
    handler = AuthHandler()
    tls_option: dict[str, Any] = {"tls_context": tls_contexts.server} if offers_starttls else {}
    server = start_auth_server(smtpd_server_factory, handler, **tls_option)
    options = one_shot(server, tls="none", **CREDENTIALS[credentials])
    refused = await asmtp.sendmail("a@x.test", ["b@x.test"], MESSAGE, **options)
    assert refused == {}
    assert verbs(handler.commands) == ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]


@pytest.mark.parametrize("credentials", [None, *CREDENTIALS])
async def test_implicit_mode_speaks_tls_from_the_first_byte_on_any_port(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts, credentials: str | None
) -> None:
    handler = AuthHandler()
    # aiosmtpd counts only STARTTLS as TLS, so AUTH must be offered "in the clear" here.
    server = start_auth_server(smtpd_server_factory, handler, ssl_context=tls_contexts.server)
    extra = CREDENTIALS[credentials] if credentials else {}
    options = one_shot(server, tls="implicit", context=tls_contexts.client, **extra)
    async with asmtp.connect(**options) as smtp:
        assert isinstance(smtp, asmtp.SMTP_SSL)
        assert smtp.is_encrypted
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    expected = ["EHLO", "AUTH", "MAIL"] if credentials else ["EHLO", "MAIL"]
    assert verbs(handler.commands)[: len(expected)] == expected


async def test_implicit_mode_against_a_plain_text_server_fails_without_sending_anything(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    server = smtpd_server_factory()
    with pytest.raises(ssl.SSLError):
        await asmtp.sendmail(
            "a@x.test",
            ["b@x.test"],
            MESSAGE,
            **one_shot(server, tls="implicit", context=tls_contexts.client),
        )
    assert server.handler.commands == []


@pytest.mark.parametrize(
    ("tls", "port", "implicit"),
    [
        ("auto", 465, True),
        ("auto", 587, False),
        ("auto", 25, False),
        ("implicit", 2525, True),
        ("starttls", 465, False),
        ("none", 465, False),
    ],
)
def test_port_465_means_implicit_tls_only_under_auto(
    tls: asmtp.TLSMode, port: int, implicit: bool
) -> None:
    """465 cannot be bound for the test, so the (private) settings are checked directly."""
    settings = client_settings(
        "mail.example",
        port,
        tls=tls,
        username=None,
        password=None,
        mechanism=None,
        context=None,
        local_hostname=ME,
        timeout=WAIT,
        source_address=None,
    )
    assert settings.implicit_tls is implicit
    assert settings.port == port


# Only the documented tls= values are accepted: a typo must never mean "auto".

UNKNOWN_TLS_MODES: list[object] = ["STARTTLS", "Implicit", True, "required", None, ""]


async def _use_tls_mode(entry: str, server: ThreadedSMTPServer, tls: Any) -> None:
    options = one_shot(server, tls=tls)
    if entry == "connect":
        async with asmtp.connect(**options):
            pytest.fail("connected with an unknown tls= value")
    elif entry == "sendmail":
        await asmtp.sendmail("a@x.test", ["b@x.test"], MESSAGE, **options)
    elif entry == "send_message":
        msg = email.message.EmailMessage()
        msg["From"], msg["To"] = "a@x.test", "b@x.test"
        await asmtp.send_message(msg, **options)
    else:
        del options["local_hostname"]
        async with asmtp.SMTPPool(**options) as pool:
            await pool.sendmail("a@x.test", ["b@x.test"], MESSAGE)


@pytest.mark.parametrize("tls", UNKNOWN_TLS_MODES, ids=repr)
@pytest.mark.parametrize("entry", ["connect", "sendmail", "send_message", "SMTPPool"])
async def test_an_unknown_tls_mode_is_a_value_error_before_connecting(
    smtpd_server: ThreadedSMTPServer, entry: str, tls: object
) -> None:
    """\"STARTTLS\", True or \"required\" once behaved as "auto", which goes on in the
    clear when STARTTLS is stripped; now nothing but the four documented values is taken."""
    with pytest.raises(ValueError, match="tls= must be one of") as info:
        await _use_tls_mode(entry, smtpd_server, tls)
    assert repr(tls) in str(info.value)
    assert smtpd_server.connection_count == 0


# The default TLS context: each client's own once it is read, never shared


async def test_changing_one_clients_default_context_cannot_turn_off_verification_elsewhere(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    """A test relaxing ``SMTP_SSL.context`` for its own server once relaxed the context every
    later connection used by default: SMTP_SSL, STARTTLS and the one-shot functions."""
    implicit = smtpd_server_factory(ssl_context=tls_contexts.server)
    starttls = smtpd_server_factory(tls_context=tls_contexts.server)
    relaxed = asmtp.SMTP_SSL(implicit.host, implicit.port, local_hostname=ME, timeout=WAIT)
    relaxed.context.check_hostname = False
    relaxed.context.verify_mode = ssl.CERT_NONE
    async with relaxed:  # the change holds for the client it was made on
        assert relaxed.is_encrypted
        assert await relaxed.noop() == (250, b"2.0.0 OK")

    strict = asmtp.SMTP_SSL(implicit.host, implicit.port, local_hostname=ME, timeout=WAIT)
    assert strict.context is not relaxed.context
    assert strict.context.verify_mode is ssl.CERT_REQUIRED
    with pytest.raises(ssl.SSLCertVerificationError):
        async with asmtp.SMTP_SSL(implicit.host, implicit.port, local_hostname=ME, timeout=WAIT):
            pytest.fail("connected to an untrusted server")
    with pytest.raises(ssl.SSLCertVerificationError):
        await asmtp.sendmail(
            "a@x.test", ["b@x.test"], MESSAGE, **one_shot(implicit, tls="implicit")
        )
    async with asmtp.SMTP(starttls.host, starttls.port, local_hostname=ME, timeout=WAIT) as smtp:
        with pytest.raises(ssl.SSLCertVerificationError):
            await smtp.starttls()
    with pytest.raises(ssl.SSLCertVerificationError):
        await asmtp.sendmail("a@x.test", ["b@x.test"], MESSAGE, **one_shot(starttls))
    assert implicit.handler.commands == ["NOOP", "QUIT"]
    assert verbs(starttls.handler.commands) == ["EHLO", "EHLO"]


def test_a_client_makes_its_own_default_context_only_when_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ssl.create_default_context()`` loads the CA store (milliseconds): clients that never
    look at ``context`` share one made once, never handed out."""
    made: list[ssl.SSLContext] = []
    create = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(create(*args, **kwargs))
        return made[-1]

    asmtp.SMTP_SSL("mail.example").context  # noqa: B018 - warm whatever is cached
    monkeypatch.setattr(ssl, "create_default_context", counting)
    clients = [asmtp.SMTP_SSL("mail.example") for _ in range(3)]
    assert made == []
    context = clients[0].context
    assert made == [context]
    assert clients[0].context is context
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    given = create()
    assert asmtp.SMTP_SSL("mail.example", context=given).context is given


async def test_connect_yields_a_secured_authenticated_client_and_quits_on_exit(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    handler = AuthHandler()
    server = start_auth_server(
        smtpd_server_factory, handler, tls_context=tls_contexts.server, auth_require_tls=True
    )
    options = one_shot(server, context=tls_contexts.client, **CREDENTIALS["login"])
    async with asmtp.connect(**options) as smtp:
        assert smtp.is_encrypted
        for n in range(2):
            assert await smtp.sendmail("a@x.test", [f"b{n}@x.test"], MESSAGE) == {}
    assert not smtp.is_connected
    assert verbs(handler.commands)[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]
    assert verbs(handler.commands)[-1] == "QUIT"
    assert len(handler.deliveries) == 2


async def test_connect_closes_the_client_when_the_body_raises(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory()
    with pytest.raises(LookupError):
        async with asmtp.connect(**one_shot(server)) as smtp:
            raise LookupError("the caller's own failure")
    assert not smtp.is_connected
    assert verbs(server.handler.commands) == ["EHLO", "QUIT"]


# Secrets never reach logs, exceptions or reprs


def _assert_no_secret(text: str) -> None:
    leaked = [form for form in wire_forms(USER, PASSWORD) if form in text]
    assert leaked == [], f"secret leaked as {leaked!r} in {text!r}"


def _exception_texts(exc: BaseException | None) -> str:
    texts = []
    while exc is not None:
        texts += [str(exc), repr(exc), repr(getattr(exc, "args", ()))]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


BUILTIN: dict[str, Callable[[str, str], Mechanism]] = {
    "PLAIN": Plain,
    "LOGIN": Login,
    "CRAM-MD5": CramMD5,
    "SCRAM-SHA-256": ScramSHA256,
}


async def _run_logged_session(server: ThreadedSMTPServer, name: str, how: str) -> None:
    if how in ("debug-logging-login", "debug-logging-mechanism"):
        if how == "debug-logging-login":
            extra: dict[str, Any] = CREDENTIALS["login"]
        else:
            extra = {"mechanism": BUILTIN[name](USER, PASSWORD)}
        options = one_shot(server, tls="none", **extra)
        await asmtp.sendmail("a@x.test", ["b@x.test"], MESSAGE, **options)
        return
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        smtp.set_debuglevel(1)
        if how == "set_debuglevel-auth-before-ehlo" and name == "SCRAM-SHA-256":
            # smtplib counts the 503 as success; SCRAM cannot without the server's proof.
            with pytest.raises(asmtp.SMTPServerNotGenuine):
                await smtp.auth(name, BUILTIN[name](USER, PASSWORD))
            await smtp.connect()
        elif how == "set_debuglevel-auth-before-ehlo":
            await smtp.auth(name, BUILTIN[name](USER, PASSWORD))  # smtplib allows it: 503
        else:
            await smtp.login(USER, PASSWORD)
        await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
        _assert_no_secret(repr(smtp))


@pytest.mark.parametrize("name", list(BUILTIN))
@pytest.mark.parametrize(
    "how",
    [
        "set_debuglevel",
        "set_debuglevel-auth-before-ehlo",
        "debug-logging-login",
        "debug-logging-mechanism",
    ],
)
async def test_the_password_never_appears_in_the_debug_transcript(
    smtpd_server_factory: SMTPDServerFactory,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    name: str,
    how: str,
) -> None:
    """The transcript goes to the ``asmtp`` logger (DEBUG logging) or to stderr
    (set_debuglevel); the password is in neither."""
    server = start_auth_server(smtpd_server_factory, advertise=[name])
    asmtp_logger = logging.getLogger("asmtp")
    level = asmtp_logger.level
    try:
        if how.startswith("debug-logging"):
            caplog.set_level(logging.DEBUG, logger="asmtp")
        await _run_logged_session(server, name, how)
    finally:
        asmtp_logger.setLevel(level)
    transcript = "\n".join(record.getMessage() for record in caplog.records)
    transcript += capsys.readouterr().err
    assert f"AUTH {name}" in transcript  # the transcript was really recorded
    assert "MAIL FROM" in transcript
    _assert_no_secret(transcript)
    _assert_no_secret(caplog.text)


@pytest.mark.parametrize(
    "handler_options",
    [
        {},
        {"scram_server_final": "wrong"},
        {"scram_server_final": "missing"},
    ],
    ids=["wrong-password", "scram-bad-signature", "scram-no-signature"],
)
async def test_the_password_never_appears_in_authentication_errors(
    smtpd_server_factory: SMTPDServerFactory,
    caplog: pytest.LogCaptureFixture,
    handler_options: dict[str, Any],
) -> None:
    caplog.set_level(logging.DEBUG, logger="asmtp")
    handler = AuthHandler(**handler_options)
    if not handler_options:
        handler.passwords = {USER: "another password"}
    advertise = ["SCRAM-SHA-256"] if handler_options else ["PLAIN", "LOGIN"]
    server = start_auth_server(smtpd_server_factory, handler, advertise=advertise)
    options = one_shot(server, tls="none", **CREDENTIALS["login"])
    with pytest.raises(asmtp.SMTPException) as info:
        await asmtp.sendmail("a@x.test", ["b@x.test"], MESSAGE, **options)
    _assert_no_secret(_exception_texts(info.value))
    _assert_no_secret("".join(traceback.format_exception(info.value)))
    _assert_no_secret(caplog.text)


async def test_tls_required_error_names_the_fix_and_not_the_secret(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = start_auth_server(smtpd_server_factory)
    with pytest.raises(asmtp.TLSRequiredError) as info:
        async with asmtp.connect(**one_shot(server, **CREDENTIALS["login"])):
            pytest.fail("connected without TLS")
    assert "tls='none'" in str(info.value)
    _assert_no_secret(_exception_texts(info.value))
