"""Secrets never leak: not to logs, the debug transcript, reprs, nor exception messages.

A password and an OAuth token go through every path that carries credentials (PLAIN with
an initial response, LOGIN's challenge answers, XOAUTH2 and its error challenge, a refused
login) with DEBUG logging and ``set_debuglevel(1)`` on. Then everything this process can
show is searched for the secrets and their base64 forms. ``conftest.py`` here also searches
what pytest captured for every hostile test.
"""

from __future__ import annotations

import base64
import logging
import pickle
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Final

import pytest

import asmtp
from asmtp.auth import CramMD5, Login, OAuthBearer, Plain, ScramSHA256, Secret, XOAuth2
from asmtp.protocol import Auth, AuthResponse, Raw
from support.scripted import ExpectData, ExpectLine, Send, Step

from ._kit import GREETING, PASSWORD, TOKEN, USER, client, leaked, secret_forms

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory

pytestmark = pytest.mark.anyio

EHLO_AUTH: Final = b"250-hostile.test\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n"
XOAUTH2_ERROR: Final = base64.b64encode(b'{"status":"401","schemes":"bearer"}')


def _wire(text: str) -> bytes:
    return base64.b64encode(text.encode())


def _script() -> list[list[Step]]:
    plain = _wire(f"\0{USER}\0{PASSWORD}")
    xoauth2 = _wire(f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01")
    hello: list[Step] = [Send(GREETING), ExpectLine(b"EHLO"), Send(EHLO_AUTH)]
    quit_: list[Step] = [ExpectLine(b"QUIT"), Send(b"221 bye\r\n")]
    return [
        [  # PLAIN with an initial response, then a message
            *hello,
            ExpectLine(b"AUTH PLAIN " + plain),
            Send(b"235 2.7.0 ok\r\n"),
            ExpectLine(b"MAIL"),
            Send(b"250 ok\r\n"),
            ExpectLine(b"RCPT"),
            Send(b"250 ok\r\n"),
            ExpectLine(b"DATA"),
            Send(b"354 go\r\n"),
            ExpectData(),
            Send(b"250 queued\r\n"),
            *quit_,
        ],
        [  # LOGIN: the password answers a challenge
            *hello,
            ExpectLine(b"AUTH LOGIN " + _wire(USER)),
            Send(b"334 UGFzc3dvcmQ6\r\n"),
            ExpectLine(_wire(PASSWORD)),
            Send(b"235 2.7.0 ok\r\n"),
            *quit_,
        ],
        [  # XOAUTH2 refused: the error challenge, an empty answer, then 535
            *hello,
            ExpectLine(b"AUTH XOAUTH2 " + xoauth2),
            Send(b"334 " + XOAUTH2_ERROR + b"\r\n"),
            ExpectLine(b""),
            Send(b"535 5.7.8 token rejected\r\n"),
            *quit_,
        ],
        [  # a refused PLAIN login
            *hello,
            ExpectLine(b"AUTH PLAIN " + plain),
            Send(b"535 5.7.8 bad credentials\r\n"),
            *quit_,
        ],
    ]


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """DEBUG for the asmtp logger during the test, restored afterwards."""
    logger = logging.getLogger("asmtp")
    level, handlers = logger.level, list(logger.handlers)
    caplog.set_level(logging.DEBUG, logger="asmtp")
    try:
        yield caplog
    finally:
        logger.setLevel(level)
        for handler in logger.handlers[len(handlers) :]:
            logger.removeHandler(handler)


def _describe(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, args, the chain, the formatted traceback."""
    parts = [str(exc), repr(exc), repr(exc.args)]
    parts += traceback.format_exception(type(exc), exc, exc.__traceback__)
    return "\n".join(parts)


async def test_no_secret_in_logs_transcript_reprs_or_errors(
    memory_server_factory: MemoryServerFactory,
    debug_logging: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = memory_server_factory(scripts=_script())
    shown: list[str] = []
    errors: list[BaseException] = []

    async with client(server.port, connector=server.connector) as smtp:
        smtp.set_debuglevel(1)
        await smtp.login(USER, PASSWORD, mechanisms=["PLAIN"])
        await smtp.sendmail(USER, "b@x.test", b"Subject: hi\r\n\r\nhello\r\n")
        shown.append(repr(smtp))

    async with client(server.port, connector=server.connector) as smtp:
        smtp.set_debuglevel(1)
        await smtp.login(USER, PASSWORD, mechanisms=["LOGIN"])
        shown.append(repr(smtp))

    async with client(server.port, connector=server.connector) as smtp:
        smtp.set_debuglevel(1)
        await smtp.ehlo()  # auth(), as smtplib's, does not say EHLO itself
        mechanism = XOAuth2(USER, TOKEN)
        with pytest.raises(asmtp.SMTPAuthenticationError) as caught:
            await smtp.auth("XOAUTH2", mechanism)
        errors.append(caught.value)
        shown += [repr(smtp), repr(mechanism), str(mechanism)]

    async with client(server.port, connector=server.connector) as smtp:
        smtp.set_debuglevel(1)
        with pytest.raises(asmtp.SMTPAuthenticationError) as caught:
            await smtp.login(USER, PASSWORD, mechanisms=["PLAIN"])
        errors.append(caught.value)
        shown.append(repr(smtp))
    server.check()

    secret = Secret(PASSWORD)
    objects: list[object] = [
        secret,
        Plain(USER, PASSWORD),
        Login(USER, PASSWORD),
        CramMD5(USER, PASSWORD),
        ScramSHA256(USER, PASSWORD),
        XOAuth2(USER, TOKEN),
        OAuthBearer(USER, TOKEN, "mx.test", 587),
        Auth(b"PLAIN", _wire(f"\0{USER}\0{PASSWORD}")),
        AuthResponse(_wire(PASSWORD)),
        Raw(b"X-TOKEN " + TOKEN.encode(), sensitive=True),
    ]
    shown += [repr(each) for each in objects] + [str(each) for each in objects]
    with pytest.raises(TypeError) as not_pickled:
        pickle.dumps(secret)
    errors.append(not_pickled.value)

    captured = capsys.readouterr()
    transcript = debug_logging.text
    assert "AUTH PLAIN" in transcript, "the transcript was not captured: the test proves nothing"
    assert "235" in transcript
    everything = {
        "log": transcript,
        "stdout": captured.out,
        "stderr": captured.err,
        "reprs": "\n".join(shown),
        "errors": "\n".join(_describe(exc) for exc in errors),
    }
    found = {where: leaked(text) for where, text in everything.items() if leaked(text)}
    assert not found, f"secret material found in: {found}"


def test_the_leak_detector_finds_what_it_looks_for() -> None:
    """Not vacuous: each form is found inside a realistic payload."""
    assert leaked(PASSWORD) and leaked(TOKEN)
    for shift in range(3):
        payload = _wire("x" * shift + f"\0{USER}\0{PASSWORD}")
        assert "password" in " ".join(leaked(payload.decode())), shift
    assert leaked(_wire(f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01").decode())
    assert len(secret_forms()) == 8


# Text UTF-8 cannot encode: os.environ and sys.argv give a lone surrogate for each byte that
# does not decode, and a UnicodeEncodeError would carry the whole secret in its args.

BAD_PASSWORD: Final = PASSWORD + "\udcff"
BAD_TOKEN: Final = TOKEN + "\udce9"

MECHANISMS_WITH_BAD_SECRETS: Final[dict[str, Callable[[], object]]] = {
    "PLAIN": lambda: Plain(USER, BAD_PASSWORD),
    "PLAIN-Secret": lambda: Plain(USER, Secret(BAD_PASSWORD)),
    "LOGIN": lambda: Login(USER, BAD_PASSWORD),
    "CRAM-MD5": lambda: CramMD5(USER, BAD_PASSWORD),
    "SCRAM-SHA-256": lambda: ScramSHA256(USER, BAD_PASSWORD),
    "XOAUTH2": lambda: XOAuth2(USER, BAD_TOKEN),
    "OAUTHBEARER": lambda: OAuthBearer(USER, Secret(BAD_TOKEN)),
    "PLAIN-bad-user": lambda: Plain(USER + "\udcff", PASSWORD),
    "XOAUTH2-bad-user": lambda: XOAuth2(USER + "\udcff", TOKEN),
}


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception chained to it (``__cause__``, ``__context__``)."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        each = todo.pop()
        if each is not None and all(each is not seen for seen in found):
            found.append(each)
            todo += [each.__cause__, each.__context__]
    return found


def _assert_clear_and_secret_free(exc: BaseException) -> None:
    assert isinstance(exc, ValueError)
    assert not isinstance(exc, UnicodeError), "the codec's error quotes the whole text"
    assert "not valid" in str(exc) and "text" in str(exc)
    shown = "\n".join(_describe(each) for each in _chain(exc))
    assert leaked(shown) == [], leaked(shown)


@pytest.mark.parametrize(
    "make", MECHANISMS_WITH_BAD_SECRETS.values(), ids=MECHANISMS_WITH_BAD_SECRETS
)
def test_a_secret_utf8_cannot_encode_is_refused_by_every_mechanism_without_quoting_it(
    make: Callable[[], object],
) -> None:
    with pytest.raises(ValueError) as caught:
        make()
    _assert_clear_and_secret_free(caught.value)


def _callable_with_bad_secret(challenge: bytes | None = None) -> str:
    return f"\0{USER}\0{BAD_PASSWORD}"


async def _login_bad_password(smtp: asmtp.SMTP) -> object:
    return await smtp.login(USER, BAD_PASSWORD)


async def _auth_bad_callable(smtp: asmtp.SMTP) -> object:
    await smtp.ehlo()
    return await smtp.auth("PLAIN", _callable_with_bad_secret)


async def _docmd_bad_token(smtp: asmtp.SMTP) -> object:
    await smtp.ehlo()
    return await smtp.docmd("AUTH", "XOAUTH2 " + BAD_TOKEN)


@pytest.mark.parametrize(
    "how",
    [_login_bad_password, _auth_bad_callable, _docmd_bad_token],
    ids=["login", "auth-callable", "docmd"],
)
async def test_a_secret_utf8_cannot_encode_is_refused_before_auth_without_quoting_it(
    memory_server_factory: MemoryServerFactory, how: Callable[[asmtp.SMTP], Awaitable[object]]
) -> None:
    server = memory_server_factory(
        [
            Send(GREETING),
            ExpectLine(b"EHLO"),
            Send(EHLO_AUTH),
            ExpectLine(b"NOOP"),
            Send(b"250 in step\r\n"),
            ExpectLine(b"QUIT"),
            Send(b"221 bye\r\n"),
        ]
    )
    async with client(server.port, connector=server.connector) as smtp:
        with pytest.raises(ValueError) as caught:
            await how(smtp)
        _assert_clear_and_secret_free(caught.value)
        assert await smtp.noop() == (250, b"in step")
    server.check()


# smtplib's own XOAUTH2 recipe sends the token with docmd(); so may raw lines and the
# answers to challenges. Every AUTH line is redacted however it is sent.

XOAUTH2_WIRE: Final = _wire(f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01").decode()


async def test_auth_lines_sent_with_docmd_are_redacted_in_transcripts_reprs_and_errors(
    memory_server_factory: MemoryServerFactory,
    debug_logging: pytest.LogCaptureFixture,
) -> None:
    server = memory_server_factory(
        [
            Send(GREETING),
            ExpectLine(b"EHLO"),
            Send(EHLO_AUTH),
            ExpectLine(b"AUTH XOAUTH2 " + XOAUTH2_WIRE.encode()),
            Send(b"235 2.7.0 ok\r\n"),
            ExpectLine(b"auth xoauth2 " + XOAUTH2_WIRE.encode()),
            Send(b"503 5.5.1 already authenticated\r\n"),
            ExpectLine(b"AUTH LOGIN"),
            Send(b"334 UGFzc3dvcmQ6\r\n"),
            ExpectLine(_wire(PASSWORD)),
            Send(b"503 5.5.1 already authenticated\r\n"),
            ExpectLine(b"QUIT"),
            Send(b"221 bye\r\n"),
        ]
    )
    errors: list[BaseException] = []
    async with client(server.port, connector=server.connector) as smtp:
        smtp.set_debuglevel(1)
        await smtp.ehlo()
        assert await smtp.docmd("AUTH", "XOAUTH2 " + XOAUTH2_WIRE) == (235, b"2.7.0 ok")
        assert (await smtp.docmd("auth xoauth2", XOAUTH2_WIRE))[0] == 503
        assert (await smtp.docmd("AUTH LOGIN"))[0] == 334
        assert (await smtp.docmd(_wire(PASSWORD).decode()))[0] == 503
        for bad in ("XOAUTH2 " + XOAUTH2_WIRE + "\r\nNOOP", "XOAUTH2 " + TOKEN + "\0"):
            with pytest.raises(ValueError) as caught:
                await smtp.docmd("AUTH", bad)
            errors.append(caught.value)
    server.check()
    shown = [
        repr(Raw(b"AUTH XOAUTH2 " + XOAUTH2_WIRE.encode())),
        repr(Raw(b"auth plain " + _wire(f"\0{USER}\0{PASSWORD}"))),
        repr(Raw(b"AUTH " + TOKEN.encode())),
    ]
    transcript = debug_logging.text
    assert "AUTH XOAUTH2 <redacted>" in transcript
    assert "auth <redacted>" in transcript  # a lower-case name may be anything: hidden too
    assert "AUTH LOGIN" in transcript
    assert all("AUTH XOAUTH2 <redacted>" in str(exc) for exc in errors), errors
    assert shown[:2] == ["Raw(b'AUTH XOAUTH2 <redacted>')", "Raw(b'auth <redacted>')"]
    everything = {
        "log": transcript,
        "reprs": "\n".join(shown),
        "errors": "\n".join(_describe(exc) for exc in errors),
    }
    found = {where: leaked(text) for where, text in everything.items() if leaked(text)}
    assert not found, f"secret material found in: {found}"
