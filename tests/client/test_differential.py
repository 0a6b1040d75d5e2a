"""Differential: each scenario runs through smtplib and through asmtp, and they must agree.

Each side gets its own, identically configured aiosmtpd server. smtplib (blocking) runs in a
worker thread; asmtp runs on the test's loop (asyncio, trio, uvloop). Compared: what the call
returned (the refused dict), the exception's type, args and attributes, the commands the
server saw (RSET included) and the delivered envelopes and bytes. With PIPELINING advertised
asmtp pipelines and smtplib does not, and the results must still be the same.
"""

from __future__ import annotations

import email.message
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import asmtp
from client._kit import HOST, ME, TIMEOUT
from support.aiosmtpd_server import Delivery, RecordingHandler

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio

BODY = b"Subject: differential\r\n\r\n.leading dot\r\nline two\r\n"
TEXT = "Subject: differential\n\n.leading dot\nline two\n"


def message(**headers: str) -> email.message.EmailMessage:
    """A small message; header names use ``_`` for ``-`` (``Resent_To``).

    It has its Date and Message-ID: asmtp adds them to a message without, smtplib does not
    (tested on its own in test_send_message.py).
    """
    msg = email.message.EmailMessage()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg["Subject"] = "differential"
    msg["Date"] = "Mon, 1 Jan 2024 00:00:00 +0000"
    msg["Message-ID"] = "<differential@x.test>"
    msg.set_content("a body line\n.a dot line\n")
    return msg


def resent_twice() -> email.message.EmailMessage:
    msg = message(From="a@x.test", To="b@x.test", Resent_Date="Mon, 1 Jan 2024 00:00:00 +0000")
    msg["Resent-Date"] = "Tue, 2 Jan 2024 00:00:00 +0000"
    return msg


@dataclass(frozen=True)
class Scenario:
    """One call made identically on smtplib.SMTP and on asmtp.SMTP (awaited there)."""

    name: str
    call: Callable[[Any], Any]
    raises: type[BaseException] | None = None
    handler: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)


REFUSE = {
    "refuse_recipients": {"nobody@x.test": "550 5.1.1 no such user", "full@x.test": "452 full"}
}

SCENARIOS = [
    Scenario("success", lambda c: c.sendmail("a@x.test", ["b@x.test", "c@x.test"], BODY)),
    Scenario("ascii-str", lambda c: c.sendmail("a@x.test", "b@x.test", TEXT)),
    Scenario(
        "mail-options",
        lambda c: c.sendmail("a@x.test", ["b@x.test"], BODY, ["BODY=8BITMIME"]),
    ),
    Scenario(
        "partial-refusal",
        lambda c: c.sendmail("a@x.test", ["nobody@x.test", "b@x.test", "full@x.test"], BODY),
        handler=REFUSE,
    ),
    Scenario(
        "all-refused",
        lambda c: c.sendmail("a@x.test", ["nobody@x.test", "full@x.test"], BODY),
        smtplib.SMTPRecipientsRefused,
        handler=REFUSE,
    ),
    Scenario(
        "sender-refused",
        lambda c: c.sendmail("bad@x.test", ["b@x.test"], BODY),
        smtplib.SMTPSenderRefused,
        handler={"refuse_senders": {"bad@x.test": "553 5.1.8 bad sender"}},
    ),
    Scenario(
        "sender-421-closes",
        lambda c: c.sendmail("bad@x.test", ["b@x.test"], BODY),
        smtplib.SMTPSenderRefused,
        handler={"refuse_senders": {"bad@x.test": "421 4.3.2 going down"}},
    ),
    Scenario(
        "data-refused",
        lambda c: c.sendmail("a@x.test", ["b@x.test"], BODY),
        smtplib.SMTPDataError,
        handler={"data_reply": "554 5.6.0 content rejected"},
    ),
    Scenario(
        "send-message-to-cc-bcc",
        lambda c: c.send_message(
            message(
                From="Ann <a@x.test>", To="b@x.test, C <c@x.test>", Cc="d@x.test", Bcc="e@x.test"
            )
        ),
    ),
    Scenario(
        "send-message-sender-over-from",
        lambda c: c.send_message(message(From="a@x.test", Sender="s@x.test", To="b@x.test")),
    ),
    Scenario(
        "send-message-resent",
        lambda c: c.send_message(
            message(
                From="a@x.test",
                To="b@x.test",
                Resent_Date="Mon, 1 Jan 2024 00:00:00 +0000",
                Resent_From="r@x.test",
                Resent_To="rt@x.test",
                Resent_Cc="rc@x.test",
                Resent_Bcc="rb@x.test",
            )
        ),
    ),
    Scenario("send-message-resent-twice", lambda c: c.send_message(resent_twice()), ValueError),
    Scenario(
        "send-message-overrides",
        lambda c: c.send_message(
            message(From="a@x.test", To="b@x.test", Bcc="e@x.test"), "o@x.test", ["p@x.test"]
        ),
    ),
    Scenario(
        "send-message-partial-refusal",
        lambda c: c.send_message(message(From="a@x.test", To="b@x.test", Cc="nobody@x.test")),
        handler=REFUSE,
    ),
    Scenario(
        "send-message-utf8-unsupported",
        lambda c: c.send_message(message(From="a@x.test", To="jörg@x.test")),
        smtplib.SMTPNotSupportedError,
    ),
    Scenario(
        "send-message-utf8",
        lambda c: c.send_message(message(From="Jörg <jörg@x.test>", To="b@x.test")),
        server={"enable_SMTPUTF8": True},
    ),
]


@dataclass
class Result:
    """Everything observable about one run."""

    returned: object
    error: tuple[type[BaseException], tuple[object, ...], dict[str, object]] | None
    commands: list[str]
    deliveries: list[Delivery]


def _describe(
    exc: BaseException,
) -> tuple[type[BaseException], tuple[object, ...], dict[str, object]]:
    # args and attributes (smtp_code, smtp_error, sender, recipients) of smtplib's classes.
    if isinstance(exc, smtplib.SMTPException):
        return type(exc), exc.args, dict(vars(exc))
    return type(exc), (), {}


def _run_smtplib(server: ThreadedSMTPServer, scenario: Scenario) -> Result:
    returned: object = None
    error = None
    with smtplib.SMTP(HOST, server.port, local_hostname=ME, timeout=TIMEOUT) as client:
        try:
            returned = scenario.call(client)
        except Exception as exc:  # compared with asmtp's below
            error = _describe(exc)
    return Result(returned, error, server.handler.commands, server.handler.deliveries)


async def _run_asmtp(server: ThreadedSMTPServer, scenario: Scenario) -> Result:
    returned: object = None
    error = None
    async with asmtp.SMTP(HOST, server.port, ME, timeout=TIMEOUT) as client:
        try:
            returned = await scenario.call(client)
        except Exception as exc:  # compared with smtplib's below
            error = _describe(exc)
    return Result(returned, error, server.handler.commands, server.handler.deliveries)


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_smtplib_and_asmtp_agree(
    smtpd_server_factory: SMTPDServerFactory, scenario: Scenario, pipelining: bool
) -> None:
    """Two identical aiosmtpd servers: smtplib's run and asmtp's run look the same."""

    def make() -> ThreadedSMTPServer:
        handler = RecordingHandler(advertise_pipelining=pipelining, **scenario.handler)
        return smtpd_server_factory(handler, **scenario.server)

    theirs = await anyio.to_thread.run_sync(_run_smtplib, make(), scenario)
    ours = await _run_asmtp(make(), scenario)
    # The scenario does what its name says (so agreement is not vacuous) ...
    assert (theirs.error[0] if theirs.error else None) is scenario.raises
    assert theirs.commands
    # ... and asmtp agrees on every point.
    assert ours.error == theirs.error
    assert ours.returned == theirs.returned
    assert ours.commands == theirs.commands
    assert ours.deliveries == theirs.deliveries
