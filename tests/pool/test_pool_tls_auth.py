"""SMTPPool over STARTTLS (trustme certificates) and with credentials (aiosmtpd authenticator).

Every pooled connection is secured and authenticated before its first send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

import asmtp
from asmtp import SMTPPool
from asmtp.auth import Plain
from pool._kit import (
    PASSWORD,
    STEP_TIMEOUT,
    USER,
    Authenticator,
    attempts_of,
    body,
    message_ids,
    verbs,
)
from support.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory, TLSContexts

pytestmark = pytest.mark.anyio

SENDER = "sender@pool.test"


async def test_pool_over_starttls(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler, tls_context=tls_contexts.server, require_starttls=True)
    pool = SMTPPool(
        "127.0.0.1",
        server.port,
        tls="starttls",
        context=tls_contexts.client,
        timeout=STEP_TIMEOUT,
        max_connections=3,
    )
    async with pool:
        async with anyio.create_task_group() as tg:
            for n in range(30):
                tg.start_soon(pool.sendmail, SENDER, f"r{n}@pool.test", body(n))
    assert message_ids(handler.deliveries) == {f"{n}@pool.test": 1 for n in range(30)}
    assert 1 <= server.connection_count <= 3
    # Each connection: EHLO, STARTTLS, EHLO again, then its transactions.
    assert handler.commands.count("STARTTLS") == server.connection_count
    assert verbs(handler.commands).count("EHLO") == 2 * server.connection_count
    assert handler.errors == []


async def test_pool_with_credentials_over_starttls(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    handler = RecordingHandler()
    authenticator = Authenticator()
    server = smtpd_server_factory(
        handler,
        tls_context=tls_contexts.server,
        require_starttls=True,
        auth_require_tls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    async with SMTPPool(
        "127.0.0.1",
        server.port,
        username=USER,
        password=PASSWORD,
        context=tls_contexts.client,
        timeout=STEP_TIMEOUT,
        max_connections=2,
    ) as pool:
        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(pool.sendmail, SENDER, "r@pool.test", body(n))
    assert message_ids(handler.deliveries) == {f"{n}@pool.test": 1 for n in range(10)}
    # One successful login per connection, and nothing else tried.
    assert authenticator.successes == server.connection_count
    assert all(ok and login == USER for _, login, ok in authenticator.attempts)
    assert handler.commands.count("STARTTLS") == server.connection_count


async def test_pool_with_a_mechanism_factory(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    """Each connection gets a fresh mechanism from the factory."""
    handler = RecordingHandler(data_delay=0.2)  # two sends at once: two connections
    authenticator = Authenticator()
    made: list[Plain] = []

    def mechanism() -> Plain:
        made.append(Plain(USER, PASSWORD))
        return made[-1]

    server = smtpd_server_factory(
        handler,
        tls_context=tls_contexts.server,
        auth_require_tls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    async with SMTPPool(
        "127.0.0.1",
        server.port,
        tls="starttls",
        mechanism=mechanism,
        context=tls_contexts.client,
        timeout=STEP_TIMEOUT,
        max_connections=2,
    ) as pool:
        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(pool.sendmail, SENDER, "r@pool.test", body(n))
    assert server.connection_count == 2
    assert len(made) == 2 and made[0] is not made[1]
    assert authenticator.attempts == [("PLAIN", USER, True)] * 2
    assert message_ids(handler.deliveries) == {f"{n}@pool.test": 1 for n in range(4)}


async def test_wrong_password_is_not_retried(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    handler = RecordingHandler()
    authenticator = Authenticator()
    server = smtpd_server_factory(
        handler,
        tls_context=tls_contexts.server,
        auth_require_tls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    async with SMTPPool(
        "127.0.0.1",
        server.port,
        tls="starttls",
        username=USER,
        password="wrong",
        context=tls_contexts.client,
        timeout=STEP_TIMEOUT,
        retry=asmtp.RetryPolicy(attempts=3, base_delay=0.01),
    ) as pool:
        with pytest.raises(asmtp.SMTPAuthenticationError) as caught:
            await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert attempts_of(caught.value) == 1
    assert server.connection_count == 1
    assert authenticator.attempts and not any(ok for _, _, ok in authenticator.attempts)
    assert handler.deliveries == []


async def test_credentials_without_starttls_are_refused_not_retried(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """tls='auto' never sends credentials in the clear, and retrying cannot help."""
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    async with SMTPPool(
        "127.0.0.1",
        server.port,
        username=USER,
        password=PASSWORD,
        timeout=STEP_TIMEOUT,
        retry=asmtp.RetryPolicy(attempts=3, base_delay=0.01),
    ) as pool:
        with pytest.raises(asmtp.TLSRequiredError) as caught:
            await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert attempts_of(caught.value) == 1
    assert server.connection_count == 1
    assert "MAIL" not in verbs(handler.commands)


async def test_wrong_certificate_authority_fails_the_handshake(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    """With the default context the trustme certificate is not trusted: nothing is sent."""
    handler = RecordingHandler()
    server = smtpd_server_factory(handler, tls_context=tls_contexts.server)
    async with SMTPPool(
        "127.0.0.1",
        server.port,
        tls="starttls",
        timeout=STEP_TIMEOUT,
        retry=asmtp.RetryPolicy(attempts=3, base_delay=0.01),
    ) as pool:
        with pytest.raises(OSError) as caught:  # ssl.SSLCertVerificationError
            await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert attempts_of(caught.value) == 1
    assert "MAIL" not in verbs(handler.commands)
    assert handler.deliveries == []
