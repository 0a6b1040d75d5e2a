"""One SMTP or LMTP conversation: the core, the transport, deadlines and the transcript.

Owns everything that touches the byte stream. The layers above (session commands, TLS and
AUTH, the mail transaction) send commands and read replies through :class:`Session`'s
methods and never reach the transport or the core's internals. A public call runs through
:meth:`Session.run`, which admits one task at a time and turns any failure into what the
caller sees (``_failures``), closing the connection when the conversation is out of step.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, ParamSpec, TypeVar

import anyio
import anyio.lowlevel

from .._transport import Transport, address_text, default_ssl_context
from ..errors import SMTPProtocolError, SMTPServerDisconnected
from ..protocol import (
    NEED_DATA,
    PEER_CLOSED,
    Auth,
    AuthResponse,
    BadArgument,
    ClientConnection,
    Command,
    EndOfData,
    Extensions,
    LocalProtocolError,
    MessageData,
    Raw,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Sentinel,
    State,
    command_line,
)
from ._advice import NEVER_CONNECTED, NOT_CONNECTED, check_greeting, no_greeting_advice
from ._deadlines import Deadlines
from ._dial import new_core, open_transport
from ._failures import Cleanup, translate
from ._hooks import UNWATCHED, ConnectionWatch, watch_connection
from ._hostname import default_local_hostname
from ._progress import Progress
from ._running import clock, current_task, now, task_lookup
from ._settings import ClientSettings
from ._transcript import Transcript
from ._unsolicited import idle_and_clean, take_unsolicited

__all__ = ["Session"]


_P = ParamSpec("_P")
_T = TypeVar("_T")
_GONE: Final = (State.CLOSED, State.ERROR)  # a name: State.X is slow on Python 3.11


class Session:
    """One conversation with one server, driven by commands from the layers above.

    Holds what smtplib keeps on an ``SMTP`` object between commands (the EHLO answer and
    extensions, the command encoding) so that :class:`asmtp.SMTP` can show it.
    """

    __slots__ = (
        "__weakref__",
        "_core",
        "_owner",
        "_task",
        "_transport",
        "_watching",
        "command_encoding",
        "deadlines",
        "does_esmtp",
        "ehlo_after_tls",
        "ehlo_resp",
        "esmtp_features",
        "helo_resp",
        "host",
        "last_progress",
        "local_hostname",
        "port",
        "progress",
        "settings",
        "source_address",
        "transcript",
        "use_chunking",
        "watch",
    )

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.host = settings.host
        self.port = settings.port
        self.local_hostname = settings.local_hostname
        self.deadlines = Deadlines(settings.timeout)
        self.source_address = settings.source_address
        self.transcript = Transcript()
        self.use_chunking = settings.chunking
        self.does_esmtp = False
        self.esmtp_features: dict[str, str] = {}
        self.ehlo_resp: bytes | None = None
        self.helo_resp: bytes | None = None
        self.command_encoding = "ascii"
        self.progress: Progress | None = None
        """The send in flight, which replies and failures report to."""
        self.ehlo_after_tls: tuple[bytes, tuple[int, bytes]] | None = None
        """The name and reply of the EHLO STARTTLS just said, until another command goes out."""
        self.last_progress: Progress | None = None
        self.watch: ConnectionWatch = UNWATCHED
        """The observer's view of this connection (kept after the close, for the last send)."""
        self._watching: ConnectionWatch = UNWATCHED
        self._core: ClientConnection | None = None
        self._transport: Transport | None = None
        self._owner: object | None = None
        self._task: Callable[[], object] = current_task  # bound to the connection's loop

    # -- what the conversation is ------------------------------------------------------

    @property
    def where(self) -> str:
        """``host:port``, or a Unix socket's path, for messages."""
        return address_text(self.host, self.port)

    @property
    def state(self) -> State | None:
        """The core's state, or ``None`` when never connected."""
        return self._core.state if self._core is not None else None

    @property
    def is_connected(self) -> bool:
        """True while a transport is open."""
        return self._transport is not None

    @property
    def is_encrypted(self) -> bool:
        """True when the connection runs over TLS."""
        return self._transport is not None and self._transport.is_tls

    @property
    def extensions(self) -> Extensions | None:
        """What the last EHLO/LHLO advertised (``None`` before it and after STARTTLS)."""
        return self._core.extensions if self._core is not None else None

    @property
    def pending_count(self) -> int:
        """Commands sent whose replies have not all arrived."""
        return self._core.pending_count if self._core is not None else 0

    @property
    def lmtp(self) -> bool:
        """True for an LMTP conversation (RFC 2033)."""
        return self.settings.lmtp

    def has_extn(self, name: str) -> bool:
        """Whether the server advertised extension ``name`` (case-insensitive)."""
        return name.lower() in self.esmtp_features

    def between_commands(self) -> bool:
        """No reply owed and no body half sent: the next command reads its own reply."""
        return self._core is not None and self._core.between_commands

    def reusable(self) -> bool:
        """Whether a command may be sent now: connected, no reply owed, nothing unread.

        Reads, without waiting, what the server sent since its last reply: a stray reply, a
        421 or a close marks the conversation unusable. A pool asks before reusing one.
        """
        core, transport = self._core, self._transport
        if core is None or transport is None or not core.between_commands:
            return False
        if core.state is State.CLOSED:
            return False
        return idle_and_clean(core, transport, self._note)

    def take_unsolicited(self) -> None:
        """Read what the server sent while no reply was owed, before the next command."""
        take_unsolicited(*self._require(), self._note)

    # -- running a public call -------------------------------------------------------

    async def run(
        self, operation: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """Run ``operation`` as the connection's only user, translating its failures.

        A connection holds one conversation: a second task using it concurrently gets
        :class:`RuntimeError`. Any failure that leaves the conversation out of step closes
        the connection, so no later command can read an earlier command's reply.
        """
        # None: called from another loop than the connection's; ask that loop instead.
        task = self._task() or current_task()
        if self._owner == task:
            return await operation(*args, **kwargs)
        if self._owner is not None:
            raise RuntimeError(
                "this SMTP connection is in use by another task; use one connection per task "
                "(or asmtp's one-shot functions, or SMTPPool)"
            )
        self._owner = task
        self.transcript.begin()
        try:
            return await operation(*args, **kwargs)
        except BaseException as exc:
            translated, cleanup = translate(exc, self.progress)
            closing = cleanup is Cleanup.CLOSE or (
                cleanup is Cleanup.CLOSE_IF_OUT_OF_STEP and not self.between_commands()
            )
            # A send's failure is the send's to report, unless it costs the connection.
            if closing or self.progress is None:
                self._watching.failed(translated)
            if closing:
                await self.abort()
            if translated is exc:
                raise
            raise translated from exc
        finally:
            self._owner = None
            self.progress = None
            self.transcript.end()

    def start_send(self, on_start: Callable[[], object] | None = None) -> Progress:
        """A fresh :class:`Progress` that replies and failures report to; ``on_start`` is
        called just before the message's first byte is written."""
        self.progress = self.last_progress = Progress(on_start)
        return self.progress

    # -- connecting and closing ------------------------------------------------------

    async def open(self, host: str, port: int) -> Reply:
        """Connect to ``host``:``port`` (a Unix socket when ``host`` is a path) and read the
        greeting."""
        await self.close()
        self.deadlines.clock = clock()  # a connection belongs to the loop that opened it
        self._task = task_lookup()
        self.host, self.port = host, port
        self.watch = self._watching = watch_connection(self)
        # As smtplib raises it, before connecting (for a Unix socket too: port 0).
        sys.audit("smtplib.connect", self, host, port)
        try:
            reply = await self._open()
        except BaseException as exc:
            self._watching.failed(exc)
            await self.abort()
            raise
        self._watching.greeted(reply.code)
        return reply

    async def _open(self) -> Reply:
        if self.transcript.wanted():
            self.transcript.line("connect: %r", self.where.encode())
        self._transport = await open_transport(
            self.settings, self.host, self.port, self.source_address, self.deadlines, self.where
        )
        if self._transport.is_tls:
            self._watching.secured(self._transport.tls_version)
        self._core = new_core(self.settings)
        self.reset_session()
        try:
            if self.local_hostname is None:
                address = self._transport.local_address
                self.local_hostname = await default_local_hostname(address)
            return await self.reply(greeting=True)
        except RemoteProtocolError as exc:
            raise SMTPProtocolError(str(exc)) from exc

    async def close(self) -> None:
        """Close the connection without QUIT."""
        transport, self._transport = self._transport, None
        try:
            if transport is not None:
                await transport.aclose()  # bounded by the transport, and cancel-safe
        finally:
            watching, self._watching = self._watching, UNWATCHED
            watching.closed()
            self.deadlines.clock = now  # the next connection may run in another loop
            self._task = current_task

    async def abort(self) -> None:
        """Mark the conversation unusable and close it."""
        if self._core is not None:
            self._core.fail()
        await self.close()

    def reset_session(self) -> None:
        """Forget what EHLO said (after connecting, STARTTLS or QUIT)."""
        self.ehlo_resp = self.helo_resp = None
        self.esmtp_features = {}
        self.does_esmtp = False
        self.command_encoding = "ascii"

    async def start_tls(self, context: ssl.SSLContext | None, server_hostname: str | None) -> None:
        """Run the STARTTLS handshake after the server's 220 and tell the core."""
        core, transport = self._require()
        # RFC 3207 §4.2: nothing received before the handshake may be read after it. Plain
        # text the transport holds goes to the core now, which refuses it as an injection.
        self.take_unsolicited()
        deadline = self.deadlines.step()
        try:
            await transport.start_tls(context or default_ssl_context(), server_hostname, deadline)
        except TimeoutError:
            raise TimeoutError(
                f"the TLS handshake took longer than {self.deadlines.named(deadline)}"
            ) from None
        core.tls_established()
        self.reset_session()
        self._watching.secured(transport.tls_version)

    # -- sending ----------------------------------------------------------------------

    def not_connected(self) -> SMTPServerDisconnected:
        """smtplib's error for a command without a connection, saying how to make one."""
        return SMTPServerDisconnected(NEVER_CONNECTED if self._core is None else NOT_CONNECTED)

    def _require(self) -> tuple[ClientConnection, Transport]:
        if self._core is None or self._transport is None:
            raise self.not_connected()
        if self._core.state in _GONE:
            raise SMTPServerDisconnected("Server not connected")
        return self._core, self._transport

    def send(self, command: Command) -> bytes:
        """The bytes for ``command``, recorded as awaiting its reply.

        Like smtplib, a command out of order is still sent (as a raw line, which keeps the
        framing checks) and the server judges it: ``rcpt()`` before ``mail()`` gets 503.
        """
        core, transport = self._require()
        self.ehlo_after_tls = None
        if command.__class__ is not MessageData and not core.pending_count:
            take_unsolicited(core, transport, self._note)
        logging_on = self.transcript.wanted()
        if logging_on:
            line = core.loggable(command)
        try:
            data = core.send(command)
        except BadArgument:
            raise
        except LocalProtocolError:
            if isinstance(command, (Raw, MessageData, EndOfData)):
                raise
            sensitive = isinstance(command, (Auth, AuthResponse))
            command = Raw(command_line(command).rstrip(b"\r\n"), sensitive=sensitive)
            line = core.loggable(command) if logging_on else b""
            data = core.send(command)
        if logging_on:
            self.transcript.line("send: %r", line)
        return data

    def send_all(self, commands: Sequence[Command]) -> bytes:
        """The bytes for a pipelined group; a refused argument leaves nothing recorded."""
        core, transport = self._require()
        self.ehlo_after_tls = None
        if not core.pending_count:
            take_unsolicited(core, transport, self._note)
        lines = [core.loggable(command) for command in commands] if self.transcript.wanted() else []
        data = core.send_all(commands)
        for line in lines:
            self.transcript.line("send: %r", line)
        return data

    def message_size(self, data: bytes) -> int:
        """``SIZE`` for ``data`` as the message: :meth:`ClientConnection.message_size`."""
        return self._require()[0].message_size(data)

    async def write(self, data: bytes) -> None:
        """Write bytes the core produced."""
        # The state may already be CLOSED: QUIT's own bytes still have to go out.
        transport = self._transport
        if transport is None:
            raise self.not_connected()
        # smtplib raises it for each write too; ours may hold several pipelined commands.
        sys.audit("smtplib.send", self, data)
        deadline = self.deadlines.step()
        try:
            await transport.send(data, deadline)
        except TimeoutError:
            raise TimeoutError(
                f"writing to {self.where} took longer than {self.deadlines.named(deadline)}"
            ) from None

    async def exchange(self, command: Command) -> Reply:
        """Send one command and read its reply."""
        await self.write(self.send(command))
        return await self.reply()

    # -- receiving --------------------------------------------------------------------

    async def reply(self, *, greeting: bool = False) -> Reply:
        """The next reply; :class:`SMTPServerDisconnected` when the server closed.

        For the ``greeting``, first bytes that start a TLS record raise at once, and the
        errors for no greeting say when the port expects implicit TLS.
        """
        core = self._core
        if core is None or self._transport is None:
            raise self.not_connected()
        event = core.next_event()
        if event.__class__ is not Reply:
            return await self._await_reply(core, event, greeting)
        self._note(event)
        if event.code == 421:  # RFC 5321 §3.8: the server is closing the channel; so do we
            await self.close()
        return event

    async def read_pending(self, leave: int = 0) -> list[Reply]:
        """Read the replies owed until ``leave`` commands still wait, or the server closes.

        Replies already received are taken straight from the core; only a missing one is
        waited for.
        """
        core = self._core
        if core is None:
            raise self.not_connected()
        replies: list[Reply] = []
        while core.pending_count > leave:
            event = core.next_event()
            if event.__class__ is not Reply:
                replies.append(await self._await_reply(core, event, False))
                continue
            self._note(event)
            if event.code == 421:
                await self.close()
            replies.append(event)
        return replies

    async def _await_reply(
        self, core: ClientConnection, event: Reply | Sentinel, greeting: bool
    ) -> Reply:
        """Read until the core has a whole reply (``event`` said it has none yet)."""
        transport = self._transport
        if transport is None:
            raise self.not_connected()
        if event is NEED_DATA:
            # One deadline for the whole reply, so a server dribbling bytes (slowloris)
            # cannot stretch it: the reply must be complete within `timeout`.
            deadline = self.deadlines.step()
            try:
                while event is NEED_DATA:
                    data = await transport.receive(deadline)
                    if greeting and data:
                        greeting = False
                        check_greeting(data, self.where, self.port, self.is_encrypted)
                    core.receive_data(data)
                    event = core.next_event()
            except TimeoutError:
                what = "greeting" if greeting else "complete reply"
                advice = no_greeting_advice(greeting, self.port, self.is_encrypted)
                raise TimeoutError(
                    f"no {what} from {self.where} within {self.deadlines.named(deadline)}" + advice
                ) from None
        if event is PEER_CLOSED:
            advice = no_greeting_advice(greeting, self.port, self.is_encrypted)
            closed = SMTPServerDisconnected("Connection unexpectedly closed" + advice)
            self._watching.failed(closed)
            await self.close()
            raise closed
        assert isinstance(event, Reply)  # noqa: S101 - the sentinels are handled above
        self._note(event)
        if event.code == 421:
            await self.close()
        return event

    async def replies_arrived(self) -> list[Reply]:
        """The owed replies that have already arrived, without waiting for more.

        Lets a sender that writes ahead (BDAT chunks) notice a refusal as soon as it is in,
        instead of only after writing its whole window. One turn of the event loop first, so
        that what the socket holds reaches the transport.
        """
        await anyio.lowlevel.checkpoint()
        core, transport = self._require()
        if core.pending_count:
            data = transport.receive_nowait()
            if data:
                core.receive_data(data)
        replies: list[Reply] = []
        while core.pending_count:
            event = core.next_event()
            if not isinstance(event, Reply):
                break  # the rest has not arrived (or the server closed: the next read says)
            self._note(event)
            replies.append(event)
        return replies

    def _note(self, reply: Reply) -> None:
        """Log ``reply``; tell the send in flight it was answered, and record a RCPT verdict."""
        if self.transcript.wanted():
            self.transcript.line("reply: %d %r", reply.code, reply.message)
        progress = self.progress
        if progress is None or reply.command is None:
            return  # a greeting or a reply nobody asked for answers no command of a send
        progress.answered = True
        command = reply.command
        if command.__class__ is Rcpt:
            progress.rcpt_reply(command.address, reply)
