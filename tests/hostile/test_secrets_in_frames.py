"""Secrets never stay in the locals of the frames a failed login leaves behind.

Error reporters (Sentry) and ``pytest --showlocals`` show the local variables of every
frame in a traceback. After a login fails at each step (the server refuses with 535,
hangs up mid-exchange, or goes silent until the timeout), every frame of the exception
and of every exception chained to it is searched: the repr of each local, and of each
attribute one level into each local (``__dict__`` and ``__slots__``), must hold neither
the password or token nor their base64 forms (so neither PLAIN's ``\\0user\\0password``
nor XOAUTH2's message). The one-shot functions and the pool are searched the same way.
"""

from __future__ import annotations

import base64
import math
import ssl
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel
import pytest
from secure._auth_server import AuthHandler, start_auth_server

import asmtp
from asmtp.auth import Mechanism, Plain, ScramSHA256, XOAuth2
from support.scripted import Close, ExpectLine, Send, Sleep, Step

from ._kit import GREETING, PASSWORD, TOKEN, USER, client, leaked, unchecked

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio

SHORT: Final = 0.3
"""The client's timeout where the server goes silent (seconds)."""
EHLO_AUTH: Final = b"250-hostile.test\r\n250 AUTH PLAIN LOGIN XOAUTH2 SCRAM-SHA-256\r\n"
EHLO_PLAIN: Final = b"250-hostile.test\r\n250 AUTH PLAIN\r\n"
NONCE: Final = "fixedClientNonce0123"


def _wire(text: str) -> bytes:
    return base64.b64encode(text.encode())


def _attributes(value: object) -> Iterator[tuple[str, object]]:
    """``value``'s own attributes: its ``__dict__`` and every ``__slots__`` entry."""
    if isinstance(value, type):
        return
    yield from getattr(value, "__dict__", {}).items()
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__") and hasattr(value, slot):
                yield slot, getattr(value, slot)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken repr shows nothing
        return f"<repr failed: {type(exc).__name__}>"


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        each = todo.pop()
        if each is None or any(each is other for other in seen):
            continue
        seen.append(each)
        yield each
        todo += [each.__cause__, each.__context__]
        grouped = getattr(each, "exceptions", ())  # an exception group
        todo += [inner for inner in grouped if isinstance(inner, BaseException)]


def frame_leaks(exc: BaseException) -> dict[str, list[str]]:
    """``{"function:local[.attribute]": [secret forms]}`` for every leak in ``exc``'s frames."""
    found: dict[str, list[str]] = {}
    for frame in frames_of(exc):
        for name, value in frame.f_locals.items():
            where = f"{frame.f_code.co_name}:{name}"
            shown = [(where, _safe_repr(value))]
            shown += [(f"{where}.{attr}", _safe_repr(inner)) for attr, inner in _attributes(value)]
            for place, text in shown:
                if leaked(text):
                    found[place] = leaked(text)
    return found


def frames_of(exc: BaseException) -> list[FrameType]:
    """Every frame in the tracebacks of ``exc`` and of the exceptions chained to it."""
    frames: list[FrameType] = []
    for each in _exception_chain(exc):
        tb = each.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
    return frames


def assert_no_secret_in_frames(exc: BaseException) -> None:
    names = {frame.f_code.co_name for frame in frames_of(exc)}
    assert "failure_of" in names and len(names) >= 3, f"tracebacks not kept: {names}"
    assert frame_leaks(exc) == {}


async def failure_of(call: Callable[[], Awaitable[object]]) -> BaseException:
    """The exception ``call`` raises (a frame that holds nothing but ``call``)."""
    try:
        await call()
    except Exception as exc:  # any failure is searched
        return exc
    raise AssertionError("the login succeeded")


def test_the_frame_search_finds_secrets_in_locals_and_one_level_into_objects() -> None:
    """Not vacuous: a plain local, a base64 PLAIN message and an attribute are all found."""

    class Holder:
        def __init__(self) -> None:
            self.kept = _wire(f"\0{USER}\0{PASSWORD}")

    def fails(password: str, holder: Holder | None) -> None:
        raise RuntimeError("refused")

    for password, holder in ((PASSWORD, None), ("x", Holder())):
        with pytest.raises(RuntimeError) as caught:
            try:
                fails(password, holder)
            except RuntimeError as inner:
                raise RuntimeError("outer") from inner
        assert frame_leaks(caught.value)


# Scripted failures of login() with PLAIN (the password in the AUTH line) and LOGIN (the
# password answering a challenge), at each step.

_HELLO: Final[list[Step]] = [Send(GREETING), ExpectLine(b"EHLO"), Send(EHLO_AUTH)]
_PLAIN_ANSWER: Final = ExpectLine(_wire(f"\0{USER}\0{PASSWORD}"))
_PLAIN_LINE: Final = ExpectLine(b"AUTH PLAIN " + _wire(f"\0{USER}\0{PASSWORD}"))
_LOGIN_LINES: Final[list[Step]] = [
    ExpectLine(b"AUTH LOGIN " + _wire(USER)),
    Send(b"334 UGFzc3dvcmQ6\r\n"),
    ExpectLine(_wire(PASSWORD)),
]
_REFUSED: Final[list[Step]] = [Send(b"535 5.7.8 bad credentials\r\n")]
_SILENT: Final[list[Step]] = [Sleep(SHORT * 4)]
_HANG_UP: Final[list[Step]] = [Close()]

SCRIPTED: Final[dict[str, tuple[str, list[Step]]]] = {
    "PLAIN-535": ("PLAIN", [*_HELLO, _PLAIN_LINE, *_REFUSED]),
    "PLAIN-disconnect": ("PLAIN", [*_HELLO, _PLAIN_LINE, *_HANG_UP]),
    "PLAIN-timeout": ("PLAIN", [*_HELLO, _PLAIN_LINE, *_SILENT]),
    "LOGIN-535": ("LOGIN", [*_HELLO, *_LOGIN_LINES, *_REFUSED]),
    "LOGIN-disconnect": ("LOGIN", [*_HELLO, *_LOGIN_LINES, *_HANG_UP]),
    "LOGIN-timeout": ("LOGIN", [*_HELLO, *_LOGIN_LINES, *_SILENT]),
    "PLAIN-held-back-535": (
        "PLAIN-no-initial-response",
        [*_HELLO, ExpectLine(b"AUTH PLAIN"), Send(b"334 \r\n"), _PLAIN_ANSWER, *_REFUSED],
    ),
}


@pytest.mark.parametrize("case", list(SCRIPTED))
async def test_no_secret_in_the_frames_of_a_failed_login(case: str) -> None:
    mechanism, steps = SCRIPTED[case]
    held_back = mechanism == "PLAIN-no-initial-response"
    with unchecked(steps) as server:
        async with client(server.port, timeout=SHORT) as smtp:
            exc = await failure_of(
                lambda: smtp.login(
                    USER,
                    PASSWORD,
                    mechanisms=["PLAIN" if held_back else mechanism],
                    initial_response_ok=not held_back,
                )
            )
    assert isinstance(
        exc, (asmtp.SMTPAuthenticationError, asmtp.SMTPServerDisconnected, TimeoutError)
    )
    assert_no_secret_in_frames(exc)


# auth() with a mechanism object: SCRAM (the derivation runs in a worker thread) and XOAUTH2.


def _scram_server_first() -> bytes:
    first = f"r={NONCE}+server,s={base64.b64encode(b'salt').decode()},i=4096".encode()
    return b"334 " + base64.b64encode(first) + b"\r\n"


AUTH_OBJECTS: Final[dict[str, tuple[Callable[[], Mechanism], list[Step]]]] = {
    "SCRAM-535": (
        lambda: ScramSHA256(USER, PASSWORD, nonce=NONCE),
        [
            *_HELLO,
            ExpectLine(b"AUTH SCRAM-SHA-256 "),
            Send(_scram_server_first()),
            ExpectLine(b""),
            *_REFUSED,
        ],
    ),
    "SCRAM-disconnect": (
        lambda: ScramSHA256(USER, PASSWORD, nonce=NONCE),
        [
            *_HELLO,
            ExpectLine(b"AUTH SCRAM-SHA-256 "),
            Send(_scram_server_first()),
            ExpectLine(b""),
            *_HANG_UP,
        ],
    ),
    "XOAUTH2-timeout": (
        lambda: XOAuth2(USER, TOKEN),
        [*_HELLO, ExpectLine(b"AUTH XOAUTH2 "), *_SILENT],
    ),
    "PLAIN-object-disconnect": (lambda: Plain(USER, PASSWORD), [*_HELLO, _PLAIN_LINE, *_HANG_UP]),
}


@pytest.mark.parametrize("case", list(AUTH_OBJECTS))
async def test_no_secret_in_the_frames_of_a_failed_auth(case: str) -> None:
    make, steps = AUTH_OBJECTS[case]
    with unchecked(steps) as server:
        async with client(server.port, timeout=SHORT) as smtp:
            await smtp.ehlo()
            exc = await failure_of(lambda: _auth(smtp, make))
    assert_no_secret_in_frames(exc)


async def _auth(smtp: asmtp.SMTP, make: Callable[[], Mechanism]) -> object:
    mechanism = make()
    return await smtp.auth(mechanism.name, mechanism)


async def test_no_secret_in_the_frames_of_a_failed_scram_login(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = AuthHandler(passwords={USER: "another password"})
    server = start_auth_server(smtpd_server_factory, handler, advertise=["SCRAM-SHA-256", "PLAIN"])
    async with asmtp.SMTP(server.host, server.port, "client.test", timeout=5) as smtp:
        exc = await failure_of(lambda: smtp.login(USER, PASSWORD))
    assert isinstance(exc, asmtp.SMTPAuthenticationError)
    assert_no_secret_in_frames(exc)


# The one-shot functions and the pool take the password too.


def _one_shot_script() -> list[Step]:
    hello: list[Step] = [Send(GREETING), ExpectLine(b"EHLO"), Send(EHLO_PLAIN)]
    return [*hello, _PLAIN_LINE, *_REFUSED, ExpectLine(b"QUIT"), Send(b"221 bye\r\n")]


def _credentials() -> dict[str, Any]:
    return {
        "tls": "none",
        "username": USER,
        "password": PASSWORD,
        "local_hostname": "client.test",
        "timeout": SHORT,
    }


async def _one_shot_sendmail(port: int) -> object:
    return await asmtp.sendmail(
        "a@x.test", ["b@x.test"], b"hi\r\n", host="127.0.0.1", port=port, **_credentials()
    )


async def _one_shot_connect(port: int) -> object:
    async with asmtp.connect("127.0.0.1", port, **_credentials()):
        raise AssertionError("connect() logged in")


async def _pool(port: int) -> object:
    retry = asmtp.RetryPolicy(attempts=1)
    async with asmtp.SMTPPool("127.0.0.1", port, retry=retry, **_credentials()) as pool:
        return await pool.sendmail("a@x.test", ["b@x.test"], b"hi\r\n")


@pytest.mark.parametrize(
    "how", [_one_shot_sendmail, _one_shot_connect, _pool], ids=["sendmail", "connect", "SMTPPool"]
)
async def test_no_secret_in_the_frames_of_a_failed_one_shot_or_pool_login(
    how: Callable[[int], Awaitable[object]],
) -> None:
    with unchecked(_one_shot_script()) as server:
        exc = await failure_of(lambda: how(server.port))
    assert isinstance(exc, asmtp.SMTPAuthenticationError)
    assert_no_secret_in_frames(exc)


# A write that fails while the AUTH line goes out: the transport's own frames hold the
# bytes, so they must be cut from the traceback.


class _AuthWriteFails:
    """An in-memory transport whose write of an AUTH line fails (reset) or never ends
    (until the deadline it is given, as every transport enforces)."""

    is_tls = False
    local_address = "127.0.0.1"

    def __init__(self, how: str) -> None:
        self.how = how
        self.inbox = bytearray(GREETING)

    async def send(self, data: bytes, deadline: float = math.inf) -> None:
        await anyio.lowlevel.checkpoint()
        if data.startswith(b"AUTH"):
            if self.how == "reset":
                raise ConnectionResetError("reset by peer while writing")
            with anyio.CancelScope(deadline=deadline):
                await anyio.sleep_forever()
            raise TimeoutError("write timed out")
        self.inbox += EHLO_PLAIN

    async def receive(self, deadline: float = math.inf) -> bytes:
        await anyio.lowlevel.checkpoint()
        data, self.inbox[:] = bytes(self.inbox), b""
        return data

    def receive_nowait(self) -> bytes | None:
        return None  # this server never writes unasked

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, deadline: float
    ) -> None:
        raise AssertionError("no TLS here")

    async def aclose(self) -> None:
        return None


class _ClientOverFailingWrites(asmtp.SMTP):
    def __init__(self, how: str) -> None:
        async def connector(host: str, port: int, **options: Any) -> Any:
            return _AuthWriteFails(how)

        super().__init__("in-memory", 25, "client.test", timeout=SHORT, connector=connector)


@pytest.mark.parametrize("how", ["reset", "timeout"])
async def test_no_secret_in_the_frames_of_a_write_that_fails_mid_auth(how: str) -> None:
    smtp = _ClientOverFailingWrites(how)
    await smtp.connect()
    try:
        exc = await failure_of(lambda: smtp.login(USER, PASSWORD))
    finally:
        await smtp.close()
    assert isinstance(exc, (asmtp.SMTPServerDisconnected, TimeoutError))
    assert_no_secret_in_frames(exc)
