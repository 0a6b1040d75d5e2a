"""Send a real multipart message through a local SMTP server and show what it received.

Run with ``python3 -m nox -s demo`` (which installs what it needs), or, with asmtp and
aiosmtpd installed, ``python docs/examples/demo.py``. The server is an aiosmtpd sink started
on 127.0.0.1 by this script, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

import asmtp


class Sink:
    """Accepts every message, refuses one mailbox, and keeps what arrived."""

    def __init__(self) -> None:
        self.received: list[Envelope] = []

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 2.0.0 queued"


def compose() -> EmailMessage:
    """A message with a text part, an HTML alternative and a PDF-like attachment."""
    msg = EmailMessage()
    msg["From"] = "Reports <reports@example.org>"
    msg["To"] = "Ada <ada@example.com>, Nobody <nobody@example.com>"
    msg["Bcc"] = "audit@example.com"
    msg["Subject"] = "Monthly report"
    msg.set_content("Hello Ada,\n\nThe report is attached.\n.\nA line with a lone dot above.\n")
    msg.add_alternative("<p>Hello Ada,</p><p>The report is <b>attached</b>.</p>", subtype="html")
    msg.add_attachment(
        b"%PDF-1.4\n% not a real PDF, but real bytes\n" * 4,
        maintype="application",
        subtype="pdf",
        filename="report.pdf",
    )
    return msg


async def main() -> None:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTPServer(sink, hostname="sink.local", decode_data=False), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        refused = await asmtp.send_message(compose(), host="127.0.0.1", port=port)
    finally:
        server.close()
        await server.wait_closed()

    envelope = sink.received[0]
    content = envelope.original_content or b""
    delivered = email.message_from_bytes(content, policy=email.policy.default)
    print(f"server on 127.0.0.1:{port} received one message")
    print(f"  envelope sender:     {envelope.mail_from}")
    print(f"  envelope recipients: {envelope.rcpt_tos}")
    print(f"  size:                {len(content)} bytes")
    print(f"  Bcc header present:  {'Bcc' in delivered}")
    print("  headers as received:")
    for name, value in delivered.items():
        print(f"    {name}: {value}")
    print("  MIME structure:")
    for part in delivered.walk():
        filename = part.get_filename()
        print(f"    {part.get_content_type()}" + (f"  ({filename})" if filename else ""))
    print(f"refused recipients: {refused}")


if __name__ == "__main__":
    asyncio.run(main())
