"""Failing to connect raises the same builtin class on every event loop, naming the server.

Connection refused is ``ConnectionRefusedError`` under asyncio, uvloop and trio alike (anyio
wraps each address's error in ``OSError("All connection attempts failed")``; asyncio on
Python 3.11 folds several into one text), a name that does not resolve is ``socket.gaierror``
naming the host, and no timeout is ever an empty ``TimeoutError``. A plain client that meets
implicit TLS says so, and does not wait for a greeting that a TLS record already ruled out.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import asmtp
from asmtp._transport import Connector, Transport
from asmtp._transport import connect as open_transport
from asmtp._transport._anyio import _attempts
from asmtp._transport._errors import connect_failed
from client._kit import HOST, ME
from support.scripted import Send, Sleep

if TYPE_CHECKING:
    from support.fixtures import ScriptedServerFactory, SMTPDServerFactory, TLSContexts

# glibc refuses a name with spaces before asking any resolver: no DNS query leaves the host.
UNRESOLVABLE = "no such host!"
# The start of a TLS 1.2 ClientHello-sized handshake record, and of an alert record.
TLS_HANDSHAKE = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full, so a new connection hangs in the handshake."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind((HOST, 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            with contextlib.suppress(BlockingIOError):
                filler.connect((HOST, port))
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def redirect(real_port: int) -> Connector:
    """A connector that opens ``real_port`` whatever port the client asks for."""

    async def connect(host: str, port: int, **options: Any) -> Transport:
        return await open_transport(host, real_port, **options)

    return connect


Attempt = Callable[[str, int], Awaitable[object]]


async def _smtp_connect(host: str, port: int) -> object:
    smtp = asmtp.SMTP(local_hostname=ME, timeout=5)
    try:
        return await smtp.connect(host, port)
    finally:
        await smtp.close()


async def _oneshot_connect(host: str, port: int) -> object:
    async with asmtp.connect(host, port, timeout=5, local_hostname=ME) as smtp:
        return smtp


async def _oneshot_sendmail(host: str, port: int) -> object:
    return await asmtp.sendmail("a@x.test", ["b@x.test"], b"hi\r\n", host=host, port=port)


async def _pool_sendmail(host: str, port: int) -> object:
    retry = asmtp.RetryPolicy(attempts=1)
    async with asmtp.SMTPPool(host, port, timeout=5, retry=retry) as pool:
        return await pool.sendmail("a@x.test", ["b@x.test"], b"hi\r\n")


ATTEMPTS: dict[str, Attempt] = {
    "SMTP.connect": _smtp_connect,
    "asmtp.connect": _oneshot_connect,
    "asmtp.sendmail": _oneshot_sendmail,
    "SMTPPool.sendmail": _pool_sendmail,
}


@pytest.mark.anyio
@pytest.mark.parametrize("attempt", ATTEMPTS.values(), ids=ATTEMPTS)
@pytest.mark.parametrize("host", [HOST, "localhost"])
async def test_connection_refused_is_connection_refused_error_naming_the_server(
    attempt: Attempt, host: str
) -> None:
    port = free_port()
    with pytest.raises(ConnectionRefusedError) as info:
        await attempt(host, port)
    assert info.value.errno == errno.ECONNREFUSED
    assert str(info.value) == (
        f"[Errno {errno.ECONNREFUSED}] cannot connect to {host}:{port}: Connection refused"
    )
    assert isinstance(info.value.__cause__, OSError)  # the library's own error, kept


@pytest.mark.anyio
@pytest.mark.parametrize("attempt", ATTEMPTS.values(), ids=ATTEMPTS)
async def test_a_name_that_does_not_resolve_is_gaierror_naming_the_host(
    attempt: Attempt,
) -> None:
    with pytest.raises(socket.gaierror) as info:
        await attempt(UNRESOLVABLE, 2525)
    assert info.value.errno == socket.EAI_NONAME
    assert f"cannot connect to {UNRESOLVABLE}:2525: name resolution failed: " in str(info.value)


@pytest.mark.anyio
async def test_a_missing_unix_socket_is_file_not_found_naming_the_path(
    unix_socket_path: Path,
) -> None:
    with pytest.raises(FileNotFoundError) as info:
        async with asmtp.LMTP(str(unix_socket_path), timeout=5):
            pytest.fail("connected to a socket that does not exist")
    assert str(info.value) == (
        f"[Errno {errno.ENOENT}] cannot connect to {unix_socket_path}: No such file or directory"
    )


@pytest.mark.anyio
async def test_a_connect_timeout_names_the_server_and_the_bound() -> None:
    with unanswered_port() as port:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as timed_out:
            async with asmtp.SMTP(HOST, port, ME, timeout=0.3):
                pytest.fail("connected to a full accept queue")
        assert time.monotonic() - started < 3
        with pytest.raises(TimeoutError) as deadline:
            await asmtp.sendmail(
                "a@x.test", ["b@x.test"], b"hi\r\n", host=HOST, port=port, deadline=0.3
            )
    assert str(timed_out.value) == (
        f"connecting to {HOST}:{port} took longer than the timeout of 0.3 seconds"
    )
    assert str(deadline.value) == (
        f"connecting to {HOST}:{port} took longer than the send's deadline of 0.3 seconds"
    )


@pytest.mark.anyio
async def test_no_greeting_names_the_server_and_says_nothing_of_tls_off_port_465(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    server = scripted_server_factory([Sleep(1.0)])
    with pytest.raises(TimeoutError) as info:
        async with asmtp.SMTP(HOST, server.port, ME, timeout=0.3):
            pytest.fail("greeted by a silent server")
    assert str(info.value) == (
        f"no greeting from {HOST}:{server.port} within the timeout of 0.3 seconds"
    )


@pytest.mark.anyio
async def test_plain_smtp_to_implicit_tls_on_port_465_says_to_use_implicit_tls(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    """A real implicit-TLS server waits for a ClientHello; the client waits for a greeting.

    The client believes it talks to port 465 (the connector opens the test server's port)."""
    server = smtpd_server_factory(ssl_context=tls_contexts.server)
    plain = asmtp.SMTP(HOST, 465, ME, timeout=0.3, connector=redirect(server.port))
    with pytest.raises(TimeoutError) as info:
        async with plain:
            pytest.fail("a plain client was greeted by an implicit-TLS server")
    assert str(info.value) == (
        f"no greeting from {HOST}:465 within the timeout of 0.3 seconds; port 465 usually "
        "expects TLS from the first byte (implicit TLS, RFC 8314): use asmtp.SMTP_SSL, or "
        "tls='implicit'"
    )
    secure = asmtp.SMTP_SSL(
        HOST, 465, ME, context=tls_contexts.client, timeout=5, connector=redirect(server.port)
    )
    async with secure:  # the advice works
        assert (await secure.noop())[0] == 250


@pytest.mark.anyio
@pytest.mark.parametrize("record", [TLS_HANDSHAKE, TLS_ALERT], ids=["handshake", "alert"])
async def test_a_tls_record_instead_of_a_greeting_fails_at_once(
    scripted_server_factory: ScriptedServerFactory, record: bytes
) -> None:
    server = scripted_server_factory([Send(record), Sleep(2.0)])
    started = time.monotonic()
    with pytest.raises(asmtp.SMTPProtocolError) as info:
        async with asmtp.SMTP(HOST, server.port, ME, timeout=10):
            pytest.fail("a TLS record taken for a greeting")
    assert time.monotonic() - started < 5  # not the 10 s timeout
    assert (
        info.value.smtp_error
        == (
            f"{HOST}:{server.port} answered with a TLS record, not an SMTP greeting; the server "
            "expects TLS from the first byte (implicit TLS, RFC 8314): use asmtp.SMTP_SSL, or "
            "tls='implicit'"
        ).encode()
    )


@pytest.mark.anyio
async def test_a_server_closing_before_its_greeting_on_port_465_says_to_use_implicit_tls(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    server = scripted_server_factory([])  # accepts, then closes
    plain = asmtp.SMTP(HOST, 465, ME, timeout=5, connector=redirect(server.port))
    with pytest.raises(asmtp.SMTPServerDisconnected, match=r"unexpectedly closed; port 465 "):
        await plain.connect()
    assert not plain.is_connected


# -- one vocabulary for several addresses, whichever library tried them ----------------------


def test_several_failed_addresses_raise_the_refusal_naming_each_reason() -> None:
    errors: list[OSError] = [
        OSError(errno.ENETUNREACH, "Connect call failed ('::1', 25)"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Error connecting to ('127.0.0.1', 25)"),
    ]
    mapped = connect_failed("localhost", 25, errors)
    assert type(mapped) is ConnectionRefusedError
    assert mapped.errno == errno.ECONNREFUSED
    assert mapped.strerror == (
        "cannot connect to localhost:25: Network is unreachable, Connection refused"
    )


def test_the_system_timeout_keeps_its_class_and_an_ipv6_address_its_brackets() -> None:
    mapped = connect_failed("::1", 25, [TimeoutError(errno.ETIMEDOUT, "timed out")])
    assert type(mapped) is TimeoutError
    assert str(mapped) == f"[Errno {errno.ETIMEDOUT}] cannot connect to [::1]:25: " + (
        "Connection timed out"
    )


class _Group(Exception):
    """Stands for the ExceptionGroup anyio raises (its backport's before Python 3.11)."""

    def __init__(self, *exceptions: OSError) -> None:
        super().__init__("multiple connection attempts failed")
        self.exceptions = exceptions


def test_anyios_wrapped_attempts_are_unwrapped() -> None:
    first = OSError(errno.EHOSTUNREACH, "no route")
    second = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    for cause, expected in [
        (_Group(first, second), [first, second]),
        (second, [second]),
    ]:
        wrapped = OSError("All connection attempts failed")
        wrapped.__cause__ = cause
        assert _attempts(wrapped) == expected
    plain = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    assert _attempts(plain) == [plain]


@pytest.mark.anyio
async def test_implicit_tls_to_a_plain_text_port_says_to_use_starttls(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """The server greets in plain text; OpenSSL sees no TLS record (WRONG_VERSION_NUMBER)."""
    server = smtpd_server_factory()
    with pytest.raises(ssl.SSLError) as info:
        async with asmtp.SMTP_SSL(HOST, server.port, ME, timeout=5):
            pytest.fail("TLS with a plain-text server")
    assert info.value.reason == "WRONG_VERSION_NUMBER"  # kept, as the ssl module set it
    assert str(info.value).endswith(
        f": {HOST}:{server.port} does not speak TLS from the first byte (it answered in plain "
        "text); for STARTTLS use asmtp.SMTP and starttls(), or tls='starttls'"
    )
    with pytest.raises(ssl.SSLError, match=r"for STARTTLS use asmtp\.SMTP"):
        await asmtp.sendmail("a@x.test", ["b@x.test"], b"", port=server.port, tls="implicit")
