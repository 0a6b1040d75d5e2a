"""asmtp raises smtplib's own exception classes, so existing handlers keep working."""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING

import pytest

import asmtp
import asmtp.errors
from client._kit import closing, smtp
from support.scripted import ExpectClosed, smtp_script

if TYPE_CHECKING:
    from support.fixtures import ScriptedServerFactory

SMTPLIB_NAMES = sorted(
    name
    for name in dir(smtplib)
    if isinstance(getattr(smtplib, name), type)
    and issubclass(getattr(smtplib, name), BaseException)
)
SHARED_NAMES = [name for name in asmtp.errors.__all__ if name in SMTPLIB_NAMES]


def test_every_smtplib_exception_asmtp_exports_is_shared() -> None:
    """Not vacuous: every smtplib exception class is in asmtp.errors."""
    assert SHARED_NAMES == [name for name in SMTPLIB_NAMES if name in asmtp.errors.__all__]
    assert set(SMTPLIB_NAMES) <= set(asmtp.errors.__all__)


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_exception_is_the_very_same_class_as_smtplibs(name: str) -> None:
    """asmtp.errors.X and asmtp.X are smtplib.X itself, with its module left alone."""
    ours = getattr(asmtp.errors, name)
    assert ours is getattr(smtplib, name)
    assert getattr(asmtp, name) is ours
    assert ours.__module__ == "smtplib"


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (asmtp.SMTPProtocolError, smtplib.SMTPResponseException),
        (asmtp.SMTPTransactionInterrupted, smtplib.SMTPServerDisconnected),
        (asmtp.TLSRequiredError, smtplib.SMTPNotSupportedError),
        (asmtp.SMTPTransactionTimeout, TimeoutError),
        (asmtp.BadArgument, ValueError),
        (asmtp.MalformedHeaderError, asmtp.BadArgument),
        (asmtp.EightBitNotSupportedError, asmtp.BadArgument),
    ],
)
def test_asmtps_own_exceptions_subclass_what_smtplib_would_raise(
    ours: type[BaseException], theirs: type[BaseException]
) -> None:
    assert issubclass(ours, theirs)
    if not issubclass(theirs, (TimeoutError, ValueError)):
        assert issubclass(ours, smtplib.SMTPException)


def test_except_smtp_exception_catches_a_protocol_error() -> None:
    caught: smtplib.SMTPException | None = None
    try:
        raise asmtp.SMTPProtocolError("garbage reply")
    except smtplib.SMTPException as exc:
        caught = exc
    assert isinstance(caught, asmtp.SMTPProtocolError)
    assert (caught.smtp_code, caught.smtp_error) == (-1, b"garbage reply")


@pytest.mark.anyio
async def test_a_malformed_reply_from_a_real_socket_is_caught_as_smtp_exception(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted server answering NOOP with a line that is no reply: the client raises
    SMTPProtocolError (an smtplib.SMTPException) and closes the connection."""
    server = scripted_server_factory(
        smtp_script([(b"NOOP\r\n", b"this is not an SMTP reply\r\n"), (ExpectClosed(), b"")])
    )
    async with closing(smtp(server)) as client:
        await client.connect()
        with pytest.raises(smtplib.SMTPException) as info:
            await client.noop()
        assert isinstance(info.value, asmtp.SMTPProtocolError)
        assert isinstance(info.value.__cause__, asmtp.protocol.RemoteProtocolError)
        assert not client.is_connected
    server.check()


def test_bad_argument_is_a_value_error_and_a_local_protocol_error() -> None:
    assert asmtp.BadArgument is asmtp.errors.BadArgument is asmtp.protocol.BadArgument
    assert issubclass(asmtp.BadArgument, ValueError)
    assert issubclass(asmtp.BadArgument, asmtp.protocol.LocalProtocolError)
    with pytest.raises(ValueError):
        raise asmtp.BadArgument("CR in an address")


@pytest.mark.anyio
async def test_a_crlf_in_an_address_raises_bad_argument_caught_as_value_error() -> None:
    """No server is needed: the argument is refused before any connection is used."""
    client = asmtp.SMTP()
    with pytest.raises(ValueError) as info:
        await client.mail("a@x.test\r\nRCPT TO:<evil@x.test>")
    assert isinstance(info.value, asmtp.BadArgument)
