"""asmtp's LMTP against Dovecot, over its Unix socket and TCP: refusals at RCPT, and the
per-recipient replies after the data (RFC 2033 §4.2), one recipient refused by its quota."""

from __future__ import annotations

import smtplib

import pytest

import asmtp
from interop import _kit
from interop.realservers import Servers

pytestmark = [pytest.mark.anyio, pytest.mark.server("Dovecot 2.3 LMTP")]

TRANSPORTS = pytest.mark.parametrize("transport", ["unix", "tcp"])
CHUNKING = pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
"""Dovecot's LMTP offers CHUNKING too: per-recipient replies follow BDAT LAST or the dot."""

OVER_QUOTA = b"over the 1 KiB quota of small@example.test\r\n" * 64
SIZES = pytest.mark.parametrize("body", [OVER_QUOTA, OVER_QUOTA * 512], ids=["3KiB", "1.5MiB"])
"""One chunk, and many: the per-recipient replies must follow the last chunk either way."""


def lmtp(servers: Servers, transport: str, *, chunking: bool = True) -> asmtp.LMTP:
    if transport == "unix":
        client = asmtp.LMTP(servers.lmtp_socket, local_hostname=_kit.ME, timeout=_kit.TIMEOUT)
    else:
        client = asmtp.LMTP(
            servers.host, servers.lmtp_port, local_hostname=_kit.ME, timeout=_kit.TIMEOUT
        )
    client.use_chunking = chunking
    return client


@pytest.mark.feature("refusal at RCPT (unknown user)")
@TRANSPORTS
@CHUNKING
async def test_unknown_recipient_refused_at_rcpt(
    servers: Servers, transport: str, chunking: bool
) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, b"LMTP delivery\r\n.\r\n..dots\nbare LF\r\n")
    async with lmtp(servers, transport, chunking=chunking) as client:
        refused = await client.sendmail(
            servers.address("sender"), ["nobody@example.test", servers.address("user")], sent
        )
    assert list(refused) == ["nobody@example.test"]
    code, text = refused["nobody@example.test"]
    assert code == 550
    assert text.startswith(b"5.1.1 ")
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("LMTP per-recipient replies")
@TRANSPORTS
async def test_quota_recipient_is_accepted_at_rcpt(servers: Servers, transport: str) -> None:
    """What makes the next test's refusal one from after the data."""
    async with lmtp(servers, transport) as client:
        assert (await client.mail(servers.address("sender")))[0] == 250
        assert (await client.rcpt(servers.address("small")))[0] == 250
        assert (await client.rset())[0] == 250


@pytest.mark.feature("LMTP per-recipient replies")
@TRANSPORTS
@CHUNKING
@SIZES
async def test_quota_refusal_after_data_while_another_recipient_accepted(
    servers: Servers, transport: str, chunking: bool, body: bytes
) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, body)
    recipients = [servers.address("small"), servers.address("user"), "nobody@example.test"]
    async with lmtp(servers, transport, chunking=chunking) as client:
        refused = await client.sendmail(servers.address("sender"), recipients, sent)
        # Every reply owed was read: the connection is in step for another command.
        assert (await client.noop())[0] == 250
    assert sorted(refused) == sorted([servers.address("small"), "nobody@example.test"])
    code, text = refused[servers.address("small")]
    assert code == 552
    assert text.startswith(b"5.2.2 ")
    assert b"quota" in text.lower()
    assert refused["nobody@example.test"][0] == 550
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)
    assert await _kit.absent(servers.maildir("small"), marker)


@pytest.mark.feature("LMTP per-recipient replies")
@TRANSPORTS
async def test_every_recipient_refused_after_data_raises(servers: Servers, transport: str) -> None:
    async with lmtp(servers, transport) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            await client.sendmail(
                servers.address("sender"),
                servers.address("small"),
                _kit.message(_kit.token(), OVER_QUOTA),
            )
        assert list(caught.value.recipients) == [servers.address("small")]
        assert caught.value.recipients[servers.address("small")][0] == 552
        # Still in step: the next transaction goes through.
        marker = _kit.token()
        assert (
            await client.sendmail(
                servers.address("sender"), servers.address("user"), _kit.message(marker, b"ok\r\n")
            )
            == {}
        )
    await _kit.delivered(servers.maildir("user"), marker)
