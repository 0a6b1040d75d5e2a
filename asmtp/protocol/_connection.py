"""ClientConnection: the SMTP/LMTP client as a sans-IO state machine.

Owns pairing replies with commands (a FIFO, so PIPELINING is a property of the core), LMTP's
one reply per accepted recipient after the data (RFC 2033 §4.2), and the STARTTLS rules of
RFC 3207 §4.2. Must never perform I/O, sleep, or know about sockets, TLS or event loops.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Final, NoReturn

from ._body import BdatEncoder, DataEncoder, crlf_size
from ._commands import command_line, rcpt_line, redacted_line
from ._errors import BadArgument, LocalProtocolError, RemoteProtocolError, quote
from ._events import (
    NEED_DATA,
    PEER_CLOSED,
    AuthResponse,
    Bdat,
    Command,
    Ehlo,
    EndOfData,
    Helo,
    Lhlo,
    Mail,
    MessageData,
    Raw,
    Rcpt,
    Reply,
    Sentinel,
    answer,
)
from ._extensions import Extensions
from ._ordering import group_problem, order_problem
from ._params import declares_binary
from ._records import Pending, Transaction
from ._replies import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINES,
    ReplyReader,
)
from ._state import (
    AWAIT_GREETING,
    BETWEEN_COMMANDS,
    BODY,
    ERROR,
    MAIL,
    MOVE_CHECKS,
    RCPT,
    READY,
    REOPEN_TRANSACTION,
    TLS_HANDSHAKE,
    TRANSITIONS,
    BdatLast,
    Kind,
    Reopen,
    State,
    raw_kind,
    transition_key,
)

__all__ = ["ClientConnection"]

DEFAULT_MAX_PENDING = 1000

# Commands whose order checks go beyond the transition table (LMTP's greeting, CHUNKING,
# raw lines); message content is checked by the body writer.
_CHECKED: Final = frozenset({Ehlo, Helo, Lhlo, Bdat, Raw})
_CONTENT: Final = frozenset({MessageData, EndOfData})

_HELLO: Final[tuple[Kind, ...]] = (Ehlo, Helo, Lhlo)
_ENDS_OF_DATA: Final[tuple[Kind, ...]] = (EndOfData, BdatLast)
_VERDICT_KINDS: Final[frozenset[Kind]] = frozenset({Ehlo, Helo, Lhlo, Mail, Rcpt})


class ClientConnection:
    """The client side of an SMTP or LMTP conversation, without I/O.

    Three verbs drive it: :meth:`send` turns a command into bytes to write,
    :meth:`receive_data` takes bytes read (``b""`` when the peer closed), and
    :meth:`next_event` returns the next :class:`Reply`, :data:`NEED_DATA` or
    :data:`PEER_CLOSED`. Limits are keyword-only; each raises
    :class:`RemoteProtocolError` when the server exceeds it.
    """

    __slots__ = (
        "_bdat",
        "_encoder",
        "_extensions",
        "_greeted",
        "_peer_closed",
        "_pending",
        "_reader",
        "_sized",
        "_state",
        "_txn",
        "lmtp",
        "max_pending",
    )

    def __init__(
        self,
        *,
        lmtp: bool = False,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_reply_lines: int = DEFAULT_MAX_REPLY_LINES,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.lmtp: bool = lmtp
        self.max_pending: int = max_pending
        self._reader = ReplyReader(
            max_line_length=max_line_length,
            max_reply_lines=max_reply_lines,
            max_reply_bytes=max_reply_bytes,
        )
        self._state = AWAIT_GREETING
        self._pending: deque[Pending] = deque()
        self._extensions: Extensions | None = None
        self._txn: Transaction | None = None
        self._encoder = DataEncoder()
        self._bdat: BdatEncoder | None = None
        """The open transaction's BDAT framing, made by its first chunk."""
        self._sized: bytes | None = None  # a message message_size() found all CRLF
        self._peer_closed = False
        self._greeted = False

    # -- inspection -------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current :class:`State`."""
        return self._state

    @property
    def extensions(self) -> Extensions | None:
        """Extensions from the last positive EHLO/LHLO; ``None`` before it and after STARTTLS."""
        return self._extensions

    @property
    def pending(self) -> tuple[Command, ...]:
        """Commands sent whose replies have not all arrived, oldest first."""
        return tuple(entry.command for entry in self._pending)

    @property
    def pending_count(self) -> int:
        """How many commands still await replies (cheaper than ``len(pending)``)."""
        return len(self._pending)

    @property
    def between_commands(self) -> bool:
        """No reply owed and no body half sent: a command sent now reads its own reply."""
        return not self._pending and self._state in BETWEEN_COMMANDS

    @property
    def buffered(self) -> int:
        """Bytes received that no returned reply holds yet.

        With no command pending, any such byte is unsolicited: :meth:`next_event` tells a
        ``421`` (the server closing) from a protocol error, and :meth:`send` refuses to
        send before they are read.
        """
        return self._reader.buffered

    @property
    def accepted_recipients(self) -> tuple[bytes, ...]:
        """Recipients the server accepted in the open transaction so far."""
        return tuple(self._txn.accepted) if self._txn is not None else ()

    def can_send(self, command: Command) -> bool:
        """Whether :meth:`send` would accept ``command`` now, arguments aside."""
        return self._order_problem(command, transition_key(command)) is None

    # -- sending ----------------------------------------------------------------------

    def send(self, command: Command) -> bytes:
        """Return the bytes for ``command`` and record it as awaiting its reply.

        Raises :class:`LocalProtocolError` (nothing produced, state unchanged) when the
        command is not allowed now, :class:`BadArgument` when an argument would break the
        framing, and :class:`RemoteProtocolError` when no command awaits a reply yet bytes
        from the server are buffered: paired with this command, they would shift every
        later reply by one.
        """
        cls = command.__class__
        if cls is MessageData:
            return self._body(command)  # type: ignore[arg-type]  # cls says so
        kind: Kind = BdatLast if cls is Bdat and command.last else cls  # type: ignore[union-attr]
        # The checks that apply to every command cost one lookup; the rest only matter for
        # a few kinds, or while replies are pending (pipelining).
        pending = self._pending
        if kind not in TRANSITIONS[self._state] or cls in _CHECKED:
            problem = self._order_problem(command, kind)
        elif pending and kind is not EndOfData:
            problem = group_problem(pending, self._extensions, self.max_pending)
        else:
            problem = None
        if problem is not None:
            raise LocalProtocolError(problem)
        if not pending and self._reader.in_reply:
            self._fail(
                "server sent data while no command awaited a reply (unsolicited): "
                + quote(self._reader.unconsumed)
            )
        if cls is EndOfData:
            data = self._encoder.finish()
        elif cls is Bdat:
            bdat = self._bdat
            if bdat is None:
                binary = self._txn is not None and self._txn.binary
                bdat = self._bdat = BdatEncoder(binary=binary)
            framed = bdat.chunk(command.data, last=command.last)  # type: ignore[union-attr]
            if framed is None:
                # Held until more content follows: the body has begun, no reply is awaited.
                self._state = TRANSITIONS[self._state][kind]
                return b""
            data = framed
        elif cls is Raw and self._state is State.AUTH_CHALLENGE:
            # A raw line answering a challenge is a credential: serialise it as one, so
            # that a CR, LF or NUL in it is reported without quoting it, and record it as
            # sensitive, so that the Reply naming it never shows it.
            line = command.line  # type: ignore[union-attr]
            data = command_line(AuthResponse(line))
            command = Raw(line, sensitive=True)
        else:
            data = command_line(command)
        self._record(command, cls, kind)
        return data

    def message_size(self, data: bytes) -> int:
        """``SIZE`` for a message of ``data`` (RFC 1870): :func:`crlf_size`.

        When every line ending is CRLF, sending this same object as the next message
        content skips checking them again, unless the state returns to READY first.
        """
        size = crlf_size(data)
        self._sized = data if size == len(data) else None
        return size

    def _body(self, command: MessageData) -> bytes:
        if self._state is not BODY:
            raise LocalProtocolError(self._order_problem(command, MessageData) or "")
        if not isinstance(command.data, bytes):
            raise BadArgument(f"message data must be bytes, got {type(command.data).__name__}")
        data, sized, self._sized = command.data, self._sized, None
        return self._encoder.encode(data, crlf_only=data is sized)

    def send_all(self, commands: Sequence[Command]) -> bytes:
        """The bytes for several commands written together (a pipelined group), all or none.

        As :meth:`send` for each in turn, but if any is refused (:class:`BadArgument`,
        :class:`LocalProtocolError`) none is recorded and the state is as before the call:
        a bad argument in the last recipient cannot leave the first ones half-sent.
        """
        state, txn, queued = self._state, self._txn, len(self._pending)
        rcpts_pending = txn.rcpts_pending if txn is not None else 0
        send, pending, extensions = self.send, self._pending, self._extensions
        pipelining = extensions is not None and extensions.pipelining
        try:
            data = []
            # True while RCPTs follow a MAIL or RCPT: of send()'s checks, only the group's size.
            in_envelope, open_txn = False, txn
            for command in commands:
                cls = command.__class__
                if cls is Rcpt:
                    if not in_envelope:
                        last, open_txn = pending[-1].kind if pending else None, self._txn
                        in_envelope = pipelining and (last is Rcpt or last is Mail)
                        in_envelope = in_envelope and (self._state is RCPT or self._state is MAIL)
                    if in_envelope and len(pending) < self.max_pending:
                        data.append(rcpt_line(command))  # type: ignore[arg-type]  # cls says so
                        if open_txn is not None:
                            open_txn.rcpts_pending += 1
                        pending.append(Pending(command, Rcpt, open_txn))
                        self._state = RCPT
                        continue
                elif cls in _CONTENT:
                    raise LocalProtocolError(
                        "send_all() takes commands; send message content alone"
                    )
                data.append(send(command))
                in_envelope = False
            return b"".join(data)
        except LocalProtocolError:
            while len(self._pending) > queued:
                self._pending.pop()
            self._state, self._txn = state, txn
            if txn is not None:
                txn.rcpts_pending = rcpts_pending
            raise

    def loggable(self, command: Command) -> bytes:
        """The command as a transcript may show it, with AUTH data redacted.

        A raw line sent while a challenge is open is an AUTH answer and is redacted too.
        """
        if isinstance(command, Raw) and self._state is State.AUTH_CHALLENGE:
            return b"<redacted>"
        return redacted_line(command)

    def _order_problem(self, command: Command, kind: Kind) -> str | None:
        return order_problem(
            self._state,
            command,
            kind,
            lmtp=self.lmtp,
            extensions=self._extensions,
            pending=self._pending,
            max_pending=self.max_pending,
        )

    def _record(self, command: Command, cls: type[Command], table_key: Kind) -> None:
        kind = table_key
        txn = self._txn
        if cls is Mail:
            params = command.params  # type: ignore[union-attr]  # cls says so
            txn = self._txn = Transaction(binary=bool(params) and declares_binary(params))
            self._bdat = None
        elif cls is Rcpt:
            if txn is not None:
                txn.rcpts_pending += 1
        elif cls is Raw:
            kind = raw_kind(command.line, self._state)  # type: ignore[union-attr]  # cls says so
        self._pending.append(Pending(command, kind, txn))
        state = self._state
        next_state = TRANSITIONS[state][table_key]
        if next_state is READY and state is not READY:
            # Leaving a transaction (RSET, end of data, BDAT LAST): replies still arrive for
            # the queued commands, which keep their own reference to the transaction.
            self._txn = None
        if next_state is READY:
            self._sized = None  # sized for a transaction that did not begin (or is over)
        self._state = next_state

    # -- receiving --------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the server; ``b""`` means it closed the connection."""
        if not data:
            self._peer_closed = True
            return
        if self._state is ERROR:
            return  # never used again: keep nothing (memory stays bounded)
        if self._state is TLS_HANDSHAKE:
            self._fail(
                "server sent data after its 220 reply to STARTTLS and before the TLS "
                f"handshake (response injection): {quote(data)}"
            )
        try:
            self._reader.feed(data)
        except RemoteProtocolError:
            self._state = ERROR
            raise

    def next_event(self) -> Reply | Sentinel:
        """The next :class:`Reply`, or :data:`NEED_DATA`, or :data:`PEER_CLOSED`.

        Raises :class:`RemoteProtocolError` for a malformed or oversized reply, an
        unsolicited reply, or bytes injected after STARTTLS.
        """
        if self._state is ERROR:
            raise RemoteProtocolError("the connection had a protocol error and cannot be used")
        try:
            parsed = self._reader.next_reply()
        except RemoteProtocolError:
            self._state = ERROR
            raise
        if parsed is None:
            if self._peer_closed:
                self._state = State.CLOSED
                return PEER_CLOSED
            return NEED_DATA
        code, lines = parsed
        return self._dispatch(code, lines)

    def _dispatch(self, code: int, lines: tuple[bytes, ...]) -> Reply:
        if self._state is AWAIT_GREETING:
            self._state = State.GREETED
            return Reply(code, lines)
        pending = self._pending
        if not pending:
            if code in (221, 421):
                # RFC 5321 §3.8, §4.2.2: the server is closing the channel. Postfix says 221
                # to a command line it would not take, such as body bytes read as commands.
                self._state = State.CLOSED
                return Reply(code, lines)
            self._fail(f"unsolicited reply {code} {quote(b' '.join(lines))}")
        entry = pending[0]
        if self.lmtp and entry.kind in _ENDS_OF_DATA:
            # RFC 2033 §4.2: one reply per recipient accepted, each naming it.
            reply = answer(code, lines, entry.command, entry.lmtp_recipient())
            entry.answered += 1
            if entry.answered >= entry.lmtp_replies_expected():
                pending.popleft()
        else:
            command = entry.command
            reply = answer(code, lines, command)
            pending.popleft()
            if code < 300 and entry.txn is not None and command.__class__ is entry.kind:
                # An accepted RCPT or MAIL (no raw line), the most frequent replies, makes no move.
                if command.__class__ is Rcpt:
                    txn = entry.txn
                    txn.rcpts_pending -= 1  # as txn.recipient_answered(address, True)
                    txn.accepted.append(command.address)
                    return reply
                if command.__class__ is Mail:
                    entry.txn.mail_answered(True)
                    return reply
        self._apply_reply(entry, reply)
        if code == 421:
            # RFC 5321 §3.8: the server is closing; nothing queued will be answered.
            self._state = State.CLOSED
            pending.clear()
        return reply

    def _apply_reply(self, entry: Pending, reply: Reply) -> None:
        """Record what ``reply`` says of its command, then make the move the table gives."""
        kind = entry.kind
        raw = entry.command.__class__ is Raw
        if kind in _VERDICT_KINDS and (not raw or kind in _HELLO):
            self._record_verdict(entry, reply)
        moves = MOVE_CHECKS.get((kind, self._state))
        if moves is None:
            return
        txn, code = entry.txn, reply.code
        for move_raw, codes, own_transaction, target in moves:
            if (
                (move_raw is None or move_raw is raw)
                and code in codes
                and (not own_transaction or (txn is not None and self._txn is txn))
            ):
                self._arrive(target, entry)
                return

    def _record_verdict(self, entry: Pending, reply: Reply) -> None:
        """What a reply tells whatever the state: extensions, the transaction's counts."""
        kind, txn, ok = entry.kind, entry.txn, reply.is_positive
        if kind in _HELLO:
            if ok:
                # As smtplib: only a 250 EHLO reply lists extensions.
                ehlo_250 = kind is not Helo and reply.code == 250
                self._extensions = (
                    Extensions.from_ehlo_lines(reply.lines) if ehlo_250 else Extensions()
                )
        elif txn is None:
            return
        elif kind is Mail:
            txn.mail_answered(ok)
        elif kind is Rcpt:
            command = entry.command
            assert isinstance(command, Rcpt)  # noqa: S101 - raw lines do not get here
            txn.recipient_answered(command.address, ok)

    def _arrive(self, target: State | Reopen, entry: Pending) -> None:
        """Enter ``target`` with what entering it implies."""
        if target is REOPEN_TRANSACTION:
            target = self._txn.reopened_state() if self._txn is not None else READY
        command = entry.command
        if target is READY:
            self._txn = self._sized = None
        elif target is BODY:
            self._encoder = DataEncoder()
        elif isinstance(command, Raw) and entry.kind is Mail:
            # A raw MAIL the server accepted opens the transaction the reply reveals.
            self._txn = Transaction(mail_accepted=True, binary=declares_binary(command.line))
            self._bdat = None
        elif isinstance(command, Raw) and entry.kind is Rcpt and self._txn is not None:
            address = command.line.split(b":", 1)[-1].strip().split(b" ", 1)[0]
            self._txn.accepted.append(address.strip(b"<>"))
        self._state = target
        if target is TLS_HANDSHAKE and self._reader.in_reply:
            self._fail(
                "server sent data after its 220 reply to STARTTLS and before the "
                "TLS handshake (response injection)"
            )

    # -- TLS and failure --------------------------------------------------------------

    def tls_established(self) -> None:
        """Tell the core the STARTTLS handshake completed.

        Everything learned before TLS is forgotten (RFC 3207 §4.2): the client must say
        EHLO again.
        """
        if self._state is not TLS_HANDSHAKE:
            raise LocalProtocolError(f"no STARTTLS handshake is due in state {self._state.name}")
        self._state = State.GREETED
        self._extensions = None
        self._txn = None

    def fail(self) -> None:
        """Mark the connection unusable, e.g. after a transport error or cancellation."""
        self._state, self._sized = ERROR, None

    def _fail(self, message: str) -> NoReturn:
        self._state, self._sized = ERROR, None
        raise RemoteProtocolError(message)
