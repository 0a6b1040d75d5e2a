"""Observability against Postfix's submission port (STARTTLS, then AUTH through Dovecot):
OpenTelemetry spans and metrics of a real exchange, smtplib's audit events, and upload
progress over BDAT and DATA."""

from __future__ import annotations

import base64
import ssl
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import pytest
from observe._kit import Telemetry, event, event_names, telemetry_collecting, texts

import asmtp
from interop import _kit
from interop.realservers import Servers

pytestmark = [pytest.mark.anyio, pytest.mark.server("Postfix 3.7 + Dovecot SASL")]

BODY = (b"x" * 510 + b"\r\n") * 1200  # 600 KiB in lines of 512 bytes
CHUNK = 256 * 1024


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    collected = telemetry_collecting(record_addresses=False)
    try:
        yield collected
    finally:
        collected.stop()


@pytest.mark.feature("OpenTelemetry spans and metrics")
async def test_spans_and_metrics_of_a_send_over_starttls_and_auth(
    servers: Servers, ca_context: ssl.SSLContext, telemetry: Telemetry
) -> None:
    marker = _kit.token()
    user, password = servers.address("user"), servers.password("user")
    await asmtp.sendmail(
        user,
        [user],
        _kit.message(marker, b"observed\r\n"),
        host=servers.host,
        port=servers.submission_port,
        tls="starttls",
        context=ca_context,
        username=user,
        password=password,
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
    )
    await _kit.delivered(servers.maildir("user"), marker)
    [send] = telemetry.spans("smtp send")
    [connection] = telemetry.spans("smtp connection")
    assert send.attributes is not None and connection.attributes is not None
    assert {key: send.attributes[key] for key in send.attributes} == {
        "server.address": servers.host,
        "server.port": servers.submission_port,
        "network.transport": "tcp",
        "network.protocol.name": "smtp",
        "smtp.recipients.count": 1,
        "smtp.recipients.refused": 0,
        "smtp.outcome": "accepted",
        "smtp.reply.code": 250,
        "smtp.reply.enhanced_status": "2.0.0",
        "smtp.attempts": 1,
        "tls.protocol.name": "tls",
        "tls.protocol.version": "1.3",
        "smtp.auth.mechanism": "SCRAM-SHA-256",
    }
    assert event_names(connection) == [
        "smtp.greeting",
        "smtp.ehlo",
        "smtp.tls",
        "smtp.ehlo",
        "smtp.auth",
    ]
    assert event(connection, "smtp.auth") == {
        "smtp.auth.mechanism": "SCRAM-SHA-256",
        "smtp.reply.code": 235,
    }
    assert connection.attributes["tls.protocol.version"] == "1.3"
    assert telemetry.count("smtp.client.messages", smtp_outcome="accepted") == 1
    assert telemetry.count("smtp.client.send.duration", server_port=servers.submission_port) == 1
    assert telemetry.count("smtp.client.connections") == 0
    exported = "\n".join(texts(telemetry))
    assert password not in exported and base64.b64encode(password.encode()).decode() not in exported
    assert user.split("@")[0] not in exported


_recording: ContextVar[list[tuple[str, tuple[Any, ...]]] | None] = ContextVar(
    "interop_audit", default=None
)


def _hook(name: str, args: tuple[Any, ...]) -> None:
    events = _recording.get() if name.startswith("smtplib.") else None
    if events is not None:
        events.append((name, args))


sys.addaudithook(_hook)  # once per process (hooks stay); records only in the test's context


@pytest.mark.feature("smtplib audit events")
async def test_audit_events_of_a_submission(servers: Servers, ca_context: ssl.SSLContext) -> None:
    """One connect event; the send events hold every byte written before TLS and the
    commands after it as written (the handshake itself is below the audit layer, as in
    smtplib)."""
    events: list[tuple[str, tuple[Any, ...]]] = []
    token = _recording.set(events)
    try:
        async with asmtp.SMTP(
            servers.host, servers.submission_port, _kit.ME, timeout=_kit.TIMEOUT
        ) as smtp:
            await smtp.starttls(context=ca_context)
            await smtp.login(servers.address("user"), servers.password("user"))
            marker = _kit.token()
            await smtp.sendmail(
                servers.address("user"),
                servers.address("user"),
                _kit.message(marker, b"audited\r\n"),
            )
    finally:
        _recording.reset(token)
    assert events[0][0] == "smtplib.connect"
    assert events[0][1][1:] == (servers.host, servers.submission_port)
    writes = [args[1] for name, args in events[1:] if name == "smtplib.send"]
    assert len(writes) == len(events) - 1
    assert writes[:2] == [b"EHLO client.interop.test\r\n", b"STARTTLS\r\n"]
    assert any(write.startswith(b"MAIL FROM:") for write in writes)
    assert writes[-1].endswith(b"QUIT\r\n")


@pytest.mark.feature("upload progress (DATA and BDAT)")
@pytest.mark.parametrize("chunking", [True, False], ids=["BDAT", "DATA"])
async def test_upload_progress_of_a_large_message(
    servers: Servers, ca_context: ssl.SSLContext, chunking: bool
) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, BODY)
    calls: list[tuple[int, int | None]] = []
    async with asmtp.SMTPPool(
        servers.host,
        servers.submission_port,
        tls="starttls",
        context=ca_context,
        username=servers.address("user"),
        password=servers.password("user"),
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
        chunking=chunking,
    ) as pool:
        await pool.sendmail(
            servers.address("user"),
            servers.address("user"),
            sent,
            on_progress=lambda done, total: calls.append((done, total)),
        )
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)
    assert calls == [(CHUNK, len(sent)), (2 * CHUNK, len(sent)), (len(sent), len(sent))]
