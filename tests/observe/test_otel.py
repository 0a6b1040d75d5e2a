"""OpenTelemetry spans and metrics of real exchanges with aiosmtpd (and scripted servers).

Every test instruments asmtp into the SDK's in-memory exporters (``telemetry`` fixture) and
reads back what a user's collector would get.
"""

from __future__ import annotations

import base64
import socket
from typing import TYPE_CHECKING

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode
from pool._kit import PASSWORD, USER, Authenticator

import asmtp
from asmtp.auth import XOAuth2
from observe._kit import event, event_names, texts
from support.aiosmtpd_server import RecordingHandler
from support.steps import Close, ExpectData, ExpectLine, smtp_script

if TYPE_CHECKING:
    from observe._kit import Telemetry, TelemetryFactory
    from support.fixtures import MemoryServerFactory, SMTPDServerFactory, TLSContexts

pytestmark = pytest.mark.anyio

WAIT = 5.0
SENDER = "alice.sender@observe.test"
RECIPIENTS = ["bob.rcpt@observe.test", "carol.rcpt@other.test"]
MESSAGE = b"Subject: observed\r\n\r\nbody\r\n"
LOCAL_PARTS = ("alice.sender", "bob.rcpt", "carol.rcpt")


async def test_one_shot_send_over_starttls_and_auth_traces_connection_and_send(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts, telemetry: Telemetry
) -> None:
    server = smtpd_server_factory(
        RecordingHandler(),
        tls_context=tls_contexts.server,
        require_starttls=True,
        auth_require_tls=True,
        authenticator=Authenticator(),
    )
    await asmtp.sendmail(
        SENDER,
        RECIPIENTS,
        MESSAGE,
        host="127.0.0.1",
        port=server.port,
        tls="starttls",
        context=tls_contexts.client,
        username=USER,
        password=PASSWORD,
        timeout=WAIT,
    )
    [send] = telemetry.spans("smtp send")
    [connection] = telemetry.spans("smtp connection")
    assert send.kind is SpanKind.CLIENT and connection.kind is SpanKind.CLIENT
    tls_version = connection.attributes and connection.attributes["tls.protocol.version"]
    assert tls_version in ("1.2", "1.3")
    assert dict(send.attributes or {}) == {
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "network.transport": "tcp",
        "network.protocol.name": "smtp",
        "smtp.recipients.count": 2,
        "smtp.recipients.refused": 0,
        "smtp.outcome": "accepted",
        "smtp.reply.code": 250,
        "smtp.reply.enhanced_status": "2.0.0",
        "smtp.attempts": 1,
        "tls.protocol.name": "tls",
        "tls.protocol.version": tls_version,
        "smtp.auth.mechanism": "PLAIN",
    }
    assert send.status.status_code is StatusCode.UNSET
    # The one-shot call's connection is part of its send, and the send links to it.
    assert connection.parent is not None and send.context is not None
    assert connection.parent.span_id == send.context.span_id
    assert [link.context.span_id for link in send.links] == [connection.context.span_id]
    assert event_names(connection) == [
        "smtp.greeting",
        "smtp.ehlo",
        "smtp.tls",
        "smtp.ehlo",
        "smtp.auth",
    ]
    assert event(connection, "smtp.auth") == {
        "smtp.auth.mechanism": "PLAIN",
        "smtp.reply.code": 235,
    }
    assert event(connection, "smtp.greeting") == {"smtp.reply.code": 220}
    assert connection.status.status_code is StatusCode.UNSET
    assert telemetry.count("smtp.client.messages", smtp_outcome="accepted") == 1
    assert telemetry.count("smtp.client.send.duration", smtp_outcome="accepted") == 1
    assert telemetry.count("smtp.client.connections") == 0  # opened, then closed
    assert [a["server.port"] for a, _ in telemetry.points("smtp.client.connections")] == [
        server.port
    ]


async def test_no_secret_and_no_local_part_is_ever_recorded(
    smtpd_server_factory: SMTPDServerFactory,
    tls_contexts: TLSContexts,
    telemetry: Telemetry,
) -> None:
    """Password and user name, their base64 forms, and the addresses' local parts appear
    in no span name, attribute, event, status or metric attribute, failures included."""
    server = smtpd_server_factory(
        RecordingHandler(refuse_recipients={RECIPIENTS[1]: "550 5.1.1 <carol.rcpt> unknown"}),
        tls_context=tls_contexts.server,
        auth_require_tls=True,
        authenticator=Authenticator(),
    )

    async def send(recipients: list[str], password: str) -> None:
        await asmtp.sendmail(
            SENDER,
            recipients,
            MESSAGE,
            host="127.0.0.1",
            port=server.port,
            context=tls_contexts.client,
            username=USER,
            password=password,
            timeout=WAIT,
        )

    await send(RECIPIENTS, PASSWORD)
    with pytest.raises(asmtp.SMTPRecipientsRefused):
        await send(RECIPIENTS[1:], PASSWORD)
    with pytest.raises(asmtp.SMTPAuthenticationError):
        await send(RECIPIENTS, PASSWORD + "x")
    exported = "\n".join(texts(telemetry))
    assert "smtp.auth" in exported and "5.1.1" in exported  # the texts were all read
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, USER, plain, base64.b64encode(PASSWORD.encode()).decode()):
        assert secret not in exported
    for local_part in LOCAL_PARTS:
        assert local_part not in exported


async def test_an_oauth_token_is_never_recorded(
    memory_server_factory: MemoryServerFactory, telemetry: Telemetry
) -> None:
    token = "ya29.secret-oauth-token"
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), b"250-scripted.test\r\n250 AUTH XOAUTH2\r\n"),
                (ExpectLine(b"AUTH XOAUTH2 "), b"235 2.7.0 ok\r\n"),
                (ExpectLine(b"MAIL"), b"250 ok\r\n"),
                (ExpectLine(b"RCPT"), b"250 ok\r\n"),
                (ExpectLine(b"DATA"), b"354 go\r\n"),
                (ExpectData(), b"250 2.0.0 queued\r\n"),
                (ExpectLine(b"QUIT"), b"221 bye\r\n"),
            ]
        )
    )
    async with asmtp.SMTP(
        server.host, server.port, timeout=WAIT, connector=server.connector
    ) as smtp:
        await smtp.ehlo()
        await smtp.auth("XOAUTH2", XOAuth2("alice.sender@observe.test", token))
        await smtp.sendmail(SENDER, RECIPIENTS[0], MESSAGE)
    server.check()
    [send] = telemetry.spans("smtp send")
    assert send.attributes is not None
    assert send.attributes["smtp.auth.mechanism"] == "XOAUTH2"
    assert send.attributes["smtp.reply.enhanced_status"] == "2.0.0"
    exported = "\n".join(texts(telemetry))
    response = base64.b64encode(
        f"user=alice.sender@observe.test\x01auth=Bearer {token}\x01\x01".encode()
    ).decode()
    assert token not in exported and response not in exported
    assert "alice.sender" not in exported


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refused_connection_is_a_failed_send_and_a_failed_connection(
    telemetry: Telemetry,
) -> None:
    port = _closed_port()
    with pytest.raises(ConnectionRefusedError):
        await asmtp.sendmail(SENDER, RECIPIENTS, MESSAGE, host="127.0.0.1", port=port, timeout=WAIT)
    [send] = telemetry.spans("smtp send")
    [connection] = telemetry.spans("smtp connection")
    for span in (send, connection):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "ConnectionRefusedError"
        assert event(span, "exception") == {"exception.type": "ConnectionRefusedError"}
    assert send.attributes is not None and send.attributes["smtp.outcome"] == "failed"
    assert send.attributes["server.port"] == port
    assert telemetry.count("smtp.client.messages", smtp_outcome="failed") == 1
    assert telemetry.points("smtp.client.connections") == []  # never open


async def test_refused_recipients_are_a_refused_send_with_the_reply(
    smtpd_server_factory: SMTPDServerFactory, telemetry: Telemetry
) -> None:
    handler = RecordingHandler(
        refuse_recipients={each: "550 5.1.1 unknown user" for each in RECIPIENTS}
    )
    server = smtpd_server_factory(handler)
    async with asmtp.SMTP("127.0.0.1", server.port, timeout=WAIT) as smtp:
        with pytest.raises(asmtp.SMTPRecipientsRefused):
            await smtp.sendmail(SENDER, RECIPIENTS, MESSAGE)
    [send] = telemetry.spans("smtp send")
    assert send.attributes is not None
    assert {key: send.attributes[key] for key in send.attributes if key.startswith("smtp.")} == {
        "smtp.recipients.count": 2,
        "smtp.recipients.refused": 2,
        "smtp.outcome": "refused",
        "smtp.reply.code": 550,
        "smtp.reply.enhanced_status": "5.1.1",
    }
    assert send.status.status_code is StatusCode.ERROR
    assert send.attributes["error.type"] == "SMTPRecipientsRefused"
    [connection] = telemetry.spans("smtp connection")
    assert connection.status.status_code is StatusCode.UNSET  # the connection was fine
    assert telemetry.count("smtp.client.messages", smtp_outcome="refused") == 1


async def test_a_connection_lost_after_the_end_of_data_is_an_unknown_outcome(
    memory_server_factory: MemoryServerFactory, telemetry: Telemetry
) -> None:
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), b"250 scripted.test\r\n"),
                (ExpectLine(b"MAIL"), b"250 ok\r\n"),
                (ExpectLine(b"RCPT"), b"250 ok\r\n"),
                (ExpectLine(b"DATA"), b"354 go\r\n"),
                (ExpectData(), b""),
                (Close(), b""),
            ]
        )
    )
    async with asmtp.SMTP(
        server.host, server.port, timeout=WAIT, connector=server.connector
    ) as smtp:
        with pytest.raises(asmtp.SMTPTransactionInterrupted) as caught:
            await smtp.sendmail(SENDER, RECIPIENTS[0], MESSAGE)
    assert caught.value.outcome.accepted is None
    [send] = telemetry.spans("smtp send")
    assert send.attributes is not None
    assert send.attributes["smtp.outcome"] == "unknown"
    assert send.attributes["error.type"] == "SMTPTransactionInterrupted"
    [connection] = telemetry.spans("smtp connection")
    assert connection.status.status_code is StatusCode.ERROR  # the failure closed it
    assert telemetry.count("smtp.client.messages", smtp_outcome="unknown") == 1


async def test_sendmail_many_traces_each_message(
    smtpd_server_factory: SMTPDServerFactory, telemetry: Telemetry
) -> None:
    handler = RecordingHandler(
        advertise_pipelining=True, refuse_recipients={RECIPIENTS[1]: "550 5.1.1 no"}
    )
    server = smtpd_server_factory(handler)
    async with asmtp.SMTP("127.0.0.1", server.port, timeout=WAIT) as smtp:
        results = await smtp.sendmail_many(
            [
                asmtp.Outgoing(SENDER, RECIPIENTS[0], MESSAGE),
                asmtp.Outgoing(SENDER, RECIPIENTS[1], MESSAGE),
                asmtp.Outgoing(SENDER, RECIPIENTS, MESSAGE),
            ]
        )
    assert [type(result).__name__ for result in results] == [
        "SendResult",
        "SMTPRecipientsRefused",
        "SendResult",
    ]
    sends = telemetry.spans("smtp send")
    outcomes = (
        sorted(int(str((span.attributes or {})["smtp.recipients.count"])) for span in sends),
        sorted(str((span.attributes or {})["smtp.outcome"]) for span in sends),
    )
    assert outcomes == ([1, 1, 2], ["accepted", "accepted", "refused"])
    assert telemetry.count("smtp.client.messages", smtp_outcome="accepted") == 2
    assert telemetry.count("smtp.client.messages", smtp_outcome="refused") == 1
    [connection] = telemetry.spans("smtp connection")
    assert all(
        [link.context.span_id for link in span.links] == [connection.context.span_id]
        for span in sends
    )


async def test_pool_sends_are_spans_of_their_own_callers_and_open_connections_are_counted(
    smtpd_server_factory: SMTPDServerFactory, telemetry: Telemetry
) -> None:
    """Even a message carried in another caller's batch is a span in its own caller's trace."""
    server = smtpd_server_factory(RecordingHandler(advertise_pipelining=True))
    tracer = TracerProvider().get_tracer("test")
    outer: dict[int, int] = {}

    async def request(pool: asmtp.SMTPPool, n: int) -> None:
        with tracer.start_as_current_span(f"request {n}") as span:
            outer[span.get_span_context().span_id] = n
            await pool.sendmail(SENDER, f"r{n}@observe.test", MESSAGE)

    async with asmtp.SMTPPool(
        "127.0.0.1", server.port, tls="none", max_connections=2, timeout=WAIT
    ) as pool:
        async with anyio.create_task_group() as tg:
            for n in range(12):
                tg.start_soon(request, pool, n)
        assert telemetry.count("smtp.client.connections") == server.connection_count
        assert 1 <= server.connection_count <= 2
    assert telemetry.count("smtp.client.connections") == 0
    sends = telemetry.spans("smtp send")
    parents = sorted(outer[span.parent.span_id] for span in sends if span.parent is not None)
    assert parents == list(range(12))
    assert all((span.attributes or {})["smtp.attempts"] == 1 for span in sends)
    assert telemetry.count("smtp.client.messages", smtp_outcome="accepted") == 12
    assert telemetry.count("smtp.client.send.duration") == 12


async def test_addresses_are_recorded_only_when_asked_for(
    smtpd_server_factory: SMTPDServerFactory, telemetry_factory: TelemetryFactory
) -> None:
    telemetry = telemetry_factory(record_addresses=True)
    server = smtpd_server_factory(RecordingHandler(refuse_recipients={RECIPIENTS[0]: "550 no"}))
    async with asmtp.SMTP("127.0.0.1", server.port, timeout=WAIT) as smtp:
        await smtp.sendmail(SENDER, RECIPIENTS, MESSAGE)
        with pytest.raises(asmtp.SMTPRecipientsRefused):
            await smtp.sendmail(SENDER, RECIPIENTS[0], MESSAGE)
    accepted, refused = telemetry.spans("smtp send")
    assert accepted.attributes is not None
    assert accepted.attributes["smtp.sender"] == SENDER
    assert accepted.attributes["smtp.recipients"] == tuple(RECIPIENTS)
    assert RECIPIENTS[0] in str(event(refused, "exception")["exception.message"])


async def test_uninstrument_stops_spans_and_metrics(
    smtpd_server_factory: SMTPDServerFactory, telemetry: Telemetry
) -> None:
    server = smtpd_server_factory(RecordingHandler())
    await asmtp.sendmail(
        SENDER, RECIPIENTS, MESSAGE, host="127.0.0.1", port=server.port, tls="none"
    )
    telemetry.stop()
    await asmtp.sendmail(
        SENDER, RECIPIENTS, MESSAGE, host="127.0.0.1", port=server.port, tls="none"
    )
    assert len(server.handler.deliveries) == 2
    assert len(telemetry.spans("smtp send")) == len(telemetry.spans("smtp connection")) == 1
    assert telemetry.count("smtp.client.messages") == 1


def test_the_instrumentor_is_one_per_process_and_instruments_once(telemetry: Telemetry) -> None:
    from asmtp.instrumentation.otel import AsmtpInstrumentor

    instrumentor = AsmtpInstrumentor()
    assert instrumentor is AsmtpInstrumentor()
    assert instrumentor.is_instrumented_by_opentelemetry
    assert list(instrumentor.instrumentation_dependencies()) == ["asmtp"]
    instrumentor.instrument(tracer_provider=TracerProvider())  # ignored: already on
    instrumentor.uninstrument()
    assert not instrumentor.is_instrumented_by_opentelemetry


async def test_a_malformed_greeting_fails_the_connection_span(
    memory_server_factory: MemoryServerFactory, telemetry: Telemetry
) -> None:
    server = memory_server_factory(smtp_script([], greeting=b"garbage\r\n"))
    smtp = asmtp.SMTP(timeout=WAIT, connector=server.connector)
    with pytest.raises(asmtp.SMTPProtocolError):
        await smtp.connect(server.host, server.port)
    assert not smtp.is_connected
    [connection] = telemetry.spans("smtp connection")
    assert connection.status.status_code is StatusCode.ERROR
    assert (connection.attributes or {})["error.type"] == "SMTPProtocolError"
    assert telemetry.points("smtp.client.connections") == []
