"""What an ``SMTP`` object shows of its session, and how its methods reach the session.

smtplib's users read attributes (``esmtp_features``, ``does_esmtp``, ``ehlo_resp``...) that
asmtp keeps on the :class:`~asmtp._client._session.Session`; :class:`SessionView` shows
them. Its :meth:`SessionView._run` is the one way a public method calls into the session:
without a connection it raises smtplib's :class:`SMTPServerDisconnected`, whatever the method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from .._results import SendOutcome
from ..protocol import State
from ._checks import check_int
from ._session import Session

__all__ = ["SessionView"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class SessionView:
    """smtplib's attributes, read from (and written to) the session."""

    _session: Session

    def _run(
        self, operation: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Awaitable[_T]:
        """Run ``operation`` through :meth:`Session.run`, once connected.

        Every command needs a connection: smtplib's
        ``SMTPServerDisconnected("please run connect() first")`` comes from every method
        alike, saying that asmtp's constructor does not connect.
        """
        session = self._session
        if not session.is_connected:
            raise session.not_connected()
        return session.run(operation, *args, **kwargs)

    @property
    def local_hostname(self) -> str | None:
        """The name given in EHLO/HELO (the host's FQDN when not set)."""
        return self._session.local_hostname

    @local_hostname.setter
    def local_hostname(self, value: str | None) -> None:
        self._session.local_hostname = value

    @property
    def timeout(self) -> float | None:
        """Seconds each connect, write or complete reply may take (``None``: forever)."""
        return self._session.deadlines.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._session.deadlines.timeout = value

    @property
    def source_address(self) -> tuple[str, int] | None:
        """The local address to connect from."""
        return self._session.source_address

    @property
    def port(self) -> int:
        """The server's port."""
        return self._session.port

    @property
    def debuglevel(self) -> int:
        """The transcript level set by :meth:`set_debuglevel`."""
        return self._session.transcript.debuglevel

    @property
    def does_esmtp(self) -> bool:
        """True after a 250 reply to EHLO."""
        return self._session.does_esmtp

    @property
    def esmtp_features(self) -> dict[str, str]:
        """The extensions the last EHLO advertised, lower-cased, as smtplib."""
        return self._session.esmtp_features

    @property
    def ehlo_resp(self) -> bytes | None:
        """The text of the last EHLO reply."""
        return self._session.ehlo_resp

    @property
    def helo_resp(self) -> bytes | None:
        """The text of the last HELO reply."""
        return self._session.helo_resp

    @property
    def command_encoding(self) -> str:
        """``"ascii"``, or ``"utf-8"`` once a MAIL with SMTPUTF8 was sent."""
        return self._session.command_encoding

    @property
    def use_chunking(self) -> bool:
        """Send bodies with BDAT when the server advertises CHUNKING (RFC 3030)."""
        return self._session.use_chunking

    @use_chunking.setter
    def use_chunking(self, value: bool) -> None:
        self._session.use_chunking = value

    @property
    def state(self) -> State | None:
        """The core's :class:`~asmtp.protocol.State`, or ``None`` when not connected."""
        return self._session.state

    @property
    def is_connected(self) -> bool:
        """True while a transport is open."""
        return self._session.is_connected

    @property
    def is_encrypted(self) -> bool:
        """True when the connection runs over TLS (SMTP_SSL, or after STARTTLS)."""
        return self._session.is_encrypted

    @property
    def last_outcome(self) -> SendOutcome | None:
        """What became of the last send on this connection.

        Useful after a cancellation, which cannot carry it: ``accepted`` is ``False`` when
        the server cannot have taken the message, ``None`` when unknown.
        """
        progress = self._session.last_progress
        return progress.outcome() if progress is not None else None

    def set_debuglevel(self, debuglevel: int) -> None:
        """Print this connection's transcript to stderr when ``debuglevel`` > 0, as smtplib.

        Level 2 prefixes each line with the time; 0 stops it. Only this connection is
        affected: the ``asmtp`` logger is left as the application configured it (at DEBUG
        it gets every connection's transcript). AUTH data is always redacted.
        """
        check_int("debuglevel", debuglevel)
        self._session.transcript.debuglevel = debuglevel

    def has_extn(self, opt: str) -> bool:
        """Whether the server advertised the extension ``opt`` (case-insensitive)."""
        return self._session.has_extn(opt)
