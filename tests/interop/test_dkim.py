"""asmtp's DKIM signatures verified by OpenDKIM, the milter of Postfix's ``dkim_port``.

Each message is signed by asmtp, verified by OpenDKIM as Postfix receives it (keys from a
file, no DNS: ``_opendkim.py``) and delivered to the Maildir with OpenDKIM's verdict in
``Authentication-Results``. dkimpy's verifier checks the delivered bytes too. A message
changed after signing must fail.
"""

from __future__ import annotations

import email.message
import re
import tempfile
import warnings
from collections.abc import Awaitable, Callable
from typing import Final

import dkim
import pytest

import asmtp
from asmtp._dkim._apply import sign_bytes
from interop import _kit
from interop._opendkim import AUTHSERV_ID, ED25519_SELECTOR, RSA_SELECTOR, OpenDKIM
from interop.realservers import Servers

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.server("Postfix 3.7 + OpenDKIM 2.11"),
    pytest.mark.feature("DKIM signing (RSA, Ed25519)"),
]

KEYS: Final = pytest.mark.parametrize("selector", [RSA_SELECTOR, ED25519_SELECTOR])
_VERDICT: Final = re.compile(rb"\bdkim=(\w+)[^;]*header\.s=(\w+)")

Send = Callable[[asmtp.SMTP, Servers, str], Awaitable[str]]
"""Sends one message on a connected client; returns the name of the user it went to."""


def signer(milter: OpenDKIM, selector: str) -> asmtp.DKIMSigner:
    key = milter.keys.rsa_pem if selector == RSA_SELECTOR else milter.keys.ed25519_pem
    return asmtp.DKIMSigner(domain=milter.keys.domain, selector=selector, private_key=key)


def verdicts(stored: bytes) -> list[tuple[bytes, bytes]]:
    """OpenDKIM's ``(result, selector)`` pairs from the stored message's header block."""
    unfolded = re.sub(rb"\n[ \t]+", b" ", _kit.headers_of(stored))
    fields = [line for line in unfolded.split(b"\n") if line.startswith(b"Authentication-Results:")]
    assert fields, f"no Authentication-Results in {unfolded[:600]!r}"
    assert all(AUTHSERV_ID.encode() in field for field in fields)
    return [(m[1], m[2]) for field in fields for m in _VERDICT.finditer(field)]


def dkimpy_verifies(milter: OpenDKIM, stored: bytes) -> bool:
    """dkimpy's own verdict on the delivered bytes, with the test's keys as DNS."""
    records = {name.encode() + b".": txt.encode() for name, txt in milter.keys.records().items()}

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name if name.endswith(b".") else name + b".")

    with warnings.catch_warnings():
        # dkimpy's verifier logs str % bytes (a BytesWarning, an error under python -bb).
        warnings.simplefilter("ignore", BytesWarning)
        return bool(dkim.verify(stored, dnsfunc=lookup))


def _mixed_endings_body() -> bytes:
    # Bare LF and CR, trailing and repeated spaces, a leading dot, trailing empty lines
    # and no final line ending: all turned to the wire form before signing.
    return b"line one\n.leading dot\rspaces   inside  and after   \n\ttab\n\n\nlast line"


async def seven_bit(smtp: asmtp.SMTP, servers: Servers, marker: str) -> str:
    sent = _kit.message(marker, _mixed_endings_body())
    assert await smtp.sendmail(servers.address("sender"), servers.address("user"), sent) == {}
    return "user"


async def eight_bit(smtp: asmtp.SMTP, servers: Servers, marker: str) -> str:
    msg = email.message.EmailMessage()
    msg["From"] = servers.address("sender")
    msg["To"] = servers.address("user")
    msg["Subject"] = f"interop {marker}"
    msg.set_content("Grüße aus Köln €, не ASCII\n.dot ünïcödé\n", cte="8bit")
    assert await smtp.send_message(msg) == {}
    return "user"


async def smtputf8(smtp: asmtp.SMTP, servers: Servers, marker: str) -> str:
    msg = email.message.EmailMessage()
    msg["From"] = "Jörg <sender@example.test>"
    msg["To"] = f"José <{servers.address('intl')}>"
    msg["Subject"] = f"interop {marker} € ünïcödé"
    msg.set_content("Olá, José!\n")
    assert await smtp.send_message(msg) == {}
    return "intl"


async def multipart(smtp: asmtp.SMTP, servers: Servers, marker: str) -> str:
    msg = email.message.EmailMessage()
    msg["From"] = servers.address("sender")
    msg["To"] = servers.address("user")
    msg["Bcc"] = servers.address("small")  # removed before signing, and never sent
    msg["Subject"] = f"interop {marker}"
    msg.set_content("Two attachments.\n")
    msg.add_alternative("<p>Two attachments.</p>\n", subtype="html")
    msg.add_attachment(bytes(range(256)) * 64, maintype="application", subtype="octet-stream")
    msg.add_attachment("a,b\n1,2\n", subtype="csv", filename="table.csv")
    assert await smtp.send_message(msg) == {}
    return "user"


async def streamed_file(smtp: asmtp.SMTP, servers: Servers, marker: str) -> str:
    with tempfile.TemporaryFile() as file:
        file.write(_kit.message(marker, _mixed_endings_body() + b"\n" + b"x" * 70 * 20000))
        file.seek(0)
        refused = await smtp.sendmail(servers.address("sender"), servers.address("user"), file)
    assert refused == {}
    return "user"


SENDS: Final = {
    "7bit": seven_bit,
    "8bit": eight_bit,
    "smtputf8": smtputf8,
    "multipart": multipart,
    "file": streamed_file,
}


@KEYS
@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
@pytest.mark.parametrize("kind", list(SENDS))
async def test_signed_messages_pass_opendkim(
    servers: Servers, opendkim: OpenDKIM, selector: str, chunking: bool, kind: str
) -> None:
    marker = _kit.token()
    smtp = asmtp.SMTP(
        servers.host,
        servers.dkim_port,
        _kit.ME,
        timeout=_kit.TIMEOUT,
        dkim=signer(opendkim, selector),
    )
    smtp.use_chunking = chunking
    async with smtp:
        user = await SENDS[kind](smtp, servers, marker)
    stored = await _kit.delivered(servers.maildir(user), marker)
    assert verdicts(stored) == [(b"pass", selector.encode())]
    assert dkimpy_verifies(opendkim, stored)


@KEYS
async def test_a_message_changed_after_signing_fails(
    servers: Servers, opendkim: OpenDKIM, selector: str
) -> None:
    marker = _kit.token()
    signed = sign_bytes(signer(opendkim, selector), _kit.message(marker, b"pay 10 EUR\r\n"))
    changed = signed.replace(b"pay 10 EUR", b"pay 99 EUR")
    async with asmtp.SMTP(servers.host, servers.dkim_port, _kit.ME, timeout=_kit.TIMEOUT) as smtp:
        assert (
            await smtp.sendmail(servers.address("sender"), servers.address("user"), changed) == {}
        )
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert verdicts(stored) == [(b"fail", selector.encode())]
    assert not dkimpy_verifies(opendkim, stored)


async def test_every_entry_point_signs(servers: Servers, opendkim: OpenDKIM) -> None:
    """The one-shot functions, the pool and sendmail_many carry the setting too."""
    key = signer(opendkim, RSA_SELECTOR)
    host, port = servers.host, servers.dkim_port
    sender, user = servers.address("sender"), servers.address("user")
    markers = [_kit.token() for _ in range(5)]
    await asmtp.sendmail(
        sender,
        user,
        _kit.message(markers[0], b"one-shot\r\n"),
        host=host,
        port=port,
        tls="none",
        dkim=key,
    )
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, user, f"interop {markers[1]}"
    msg.set_content("one-shot send_message\n")
    await asmtp.send_message(msg, host=host, port=port, tls="none", dkim=key)
    async with asmtp.SMTPPool(host=host, port=port, tls="none", dkim=key) as pool:
        await pool.sendmail(sender, user, _kit.message(markers[2], b"pool\r\n"))
    smtp = asmtp.SMTP(servers.host, servers.dkim_port, _kit.ME, timeout=_kit.TIMEOUT, dkim=key)
    async with smtp:
        results = await smtp.sendmail_many(
            [asmtp.Outgoing(sender, user, _kit.message(m, b"batched\r\n")) for m in markers[3:]]
        )
    assert all(isinstance(result, asmtp.SendResult) for result in results), results
    for marker in markers:
        stored = await _kit.delivered(servers.maildir("user"), marker)
        assert verdicts(stored) == [(b"pass", RSA_SELECTOR.encode())], marker
