"""OpenTelemetry traces and metrics for asmtp: ``pip install "asmtp[otel]"``.

Call :func:`instrument` once at start-up (or use :class:`AsmtpInstrumentor`, shaped like
OpenTelemetry's instrumentors); every connection and every send from then on is traced
and counted, in every event loop, until :func:`uninstrument`.

Spans, both of kind CLIENT:

- ``smtp connection`` (``lmtp connection``), from before the connect to the close, with
  the events ``smtp.greeting``, ``smtp.ehlo`` (``smtp.helo``, ``smtp.lhlo``), ``smtp.tls``
  and ``smtp.auth``;
- ``smtp send`` (``lmtp send``) per message: :meth:`asmtp.SMTP.sendmail` and
  ``send_message``, each message of ``sendmail_many``, the one-shot functions (the
  connection's span is then its child), and :class:`asmtp.SMTPPool`'s sends (one span for
  the wait, every attempt and the result, in the caller's context).

Attributes follow OpenTelemetry's semantic conventions where they have a name
(``server.address``, ``server.port``, ``network.transport``, ``network.protocol.name``,
``tls.protocol.name``, ``tls.protocol.version``, ``error.type``); the rest are under
``smtp.``: ``smtp.auth.mechanism``, ``smtp.recipients.count``, ``smtp.recipients.refused``,
``smtp.outcome`` (``accepted``, ``refused``, ``failed``, ``unknown``), ``smtp.reply.code``,
``smtp.reply.enhanced_status``, ``smtp.attempts``. No credentials are ever recorded, nor
any reply text or message content; addresses (and exception messages, which can quote
them) only with ``record_addresses=True``.

Metrics: ``smtp.client.messages`` (counter, by ``smtp.outcome``),
``smtp.client.send.duration`` (histogram, seconds) and ``smtp.client.connections``
(up-down counter of open connections).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

try:
    from opentelemetry import metrics, trace
    from opentelemetry.util.types import AttributeValue
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'asmtp.instrumentation.otel needs OpenTelemetry: pip install "asmtp[otel]"'
    ) from exc

from .. import SendOutcome, SendResult, __version__
from .._client import (
    ConnectionWatch,
    Peer,
    SendWatch,
    install_observer,
    uninstall_observer,
)
from ..errors import (
    SMTPDataError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
)
from ..protocol import Reply

__all__ = ["AsmtpInstrumentor", "instrument", "uninstrument"]

_SCOPE: Final = "asmtp"
Attributes = dict[str, AttributeValue]


class AsmtpInstrumentor:
    """asmtp's OpenTelemetry instrumentation, in the shape of OpenTelemetry's instrumentors.

    One instance per process (as ``BaseInstrumentor``): :meth:`instrument` and
    :meth:`uninstrument` switch it on and off, and a second :meth:`instrument` is ignored.
    It depends on ``opentelemetry-api`` alone, not on the contrib
    ``opentelemetry-instrumentation`` package.
    """

    _instance: AsmtpInstrumentor | None = None
    _lock = threading.Lock()

    def __new__(cls) -> AsmtpInstrumentor:
        with cls._lock:
            if cls._instance is None:
                cls._instance = super().__new__(cls)
                cls._instance._instrumented = False
            return cls._instance

    _instrumented: bool

    @property
    def is_instrumented_by_opentelemetry(self) -> bool:
        """Whether :meth:`instrument` is in effect."""
        return self._instrumented

    def instrumentation_dependencies(self) -> Collection[str]:
        """The instrumented packages, as requirement strings."""
        return ("asmtp",)

    def instrument(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        record_addresses: bool = False,
        **kwargs: Any,
    ) -> None:
        """Trace and count every connection and send from now on.

        The providers default to OpenTelemetry's global ones. ``record_addresses=True``
        adds the sender and recipients in full (``smtp.sender``, ``smtp.recipients``) and
        exception messages, which can quote addresses. Other keyword arguments (those
        OpenTelemetry's auto-instrumentation passes) are accepted and ignored.
        """
        if self._instrumented:
            return
        tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider)
        install_observer(_Observer(tracer, meter, record_addresses=record_addresses))
        self._instrumented = True

    def uninstrument(self, **kwargs: Any) -> None:
        """Stop: connections and sends started from now on are not observed."""
        if self._instrumented:
            uninstall_observer()
            self._instrumented = False


def instrument(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    record_addresses: bool = False,
) -> AsmtpInstrumentor:
    """Trace and count every connection and send (see :meth:`AsmtpInstrumentor.instrument`)."""
    instrumentor = AsmtpInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        record_addresses=record_addresses,
    )
    return instrumentor


def uninstrument() -> None:
    """Undo :func:`instrument`."""
    AsmtpInstrumentor().uninstrument()


# -- what the client reports, as spans and metrics ------------------------------------


class _Observer:
    """The client's observer (``asmtp._client._hooks.Observer``) over OpenTelemetry."""

    def __init__(self, tracer: trace.Tracer, meter: metrics.Meter, *, record_addresses: bool):
        self.tracer = tracer
        self.record_addresses = record_addresses
        self.messages = meter.create_counter(
            "smtp.client.messages",
            unit="{message}",
            description="Messages sent, by smtp.outcome: accepted, refused, failed, unknown.",
        )
        self.duration = meter.create_histogram(
            "smtp.client.send.duration",
            unit="s",
            description="How long a send took, from its call to its result.",
        )
        self.connections = meter.create_up_down_counter(
            "smtp.client.connections",
            unit="{connection}",
            description="Connections open to SMTP and LMTP servers.",
        )

    def connection(self, peer: Peer) -> ConnectionWatch:
        return _Connection(self, peer)

    def send(self, peer: Peer, sender: str, recipients: Sequence[str]) -> SendWatch:
        return _Send(self, peer, sender, recipients)


def _server(peer: Peer) -> Attributes:
    """The semantic conventions' attributes for the server ``peer``."""
    attributes: Attributes = {
        "server.address": peer.host,
        "network.protocol.name": "lmtp" if peer.lmtp else "smtp",
    }
    if peer.host.startswith("/"):
        attributes["network.transport"] = "unix"
    else:
        attributes["network.transport"] = "tcp"
        if peer.port:
            attributes["server.port"] = peer.port
    return attributes


def _record_error(span: trace.Span, error: BaseException, with_message: bool) -> None:
    """Status ERROR, ``error.type`` and an ``exception`` event; its message (which may
    quote addresses, never credentials) only when asked for."""
    name = type(error).__qualname__
    span.set_status(trace.Status(trace.StatusCode.ERROR, name))
    span.set_attribute("error.type", name)
    event: Attributes = {"exception.type": name}
    if with_message:
        event["exception.message"] = str(error)
    span.add_event("exception", event)


class _Connection:
    """One connection's span, and its place in the open connections' count."""

    __slots__ = ("_counted", "_observer", "metric_attributes", "span", "span_attributes")

    def __init__(self, observer: _Observer, peer: Peer) -> None:
        self._observer = observer
        self.metric_attributes = _server(peer)
        self.span_attributes: Attributes = {}
        """What sends on this connection copy: TLS version, AUTH mechanism."""
        protocol = "lmtp" if peer.lmtp else "smtp"
        self.span = observer.tracer.start_span(
            f"{protocol} connection",
            kind=trace.SpanKind.CLIENT,
            attributes=self.metric_attributes,
        )
        self._counted = False

    def greeted(self, code: int) -> None:
        self.span.add_event("smtp.greeting", {"smtp.reply.code": code})
        self._observer.connections.add(1, self.metric_attributes)
        self._counted = True

    def hello(self, verb: str, code: int) -> None:
        self.span.add_event(f"smtp.{verb.lower()}", {"smtp.reply.code": code})

    def secured(self, tls_version: str | None) -> None:
        attributes: Attributes = {"tls.protocol.name": "tls"}
        if tls_version is not None:
            attributes["tls.protocol.version"] = tls_version.removeprefix("TLSv")
        self.span_attributes.update(attributes)
        self.span.set_attributes(attributes)
        self.span.add_event("smtp.tls", attributes)

    def authenticated(self, mechanism: str, code: int) -> None:
        self.span_attributes["smtp.auth.mechanism"] = mechanism
        self.span.set_attribute("smtp.auth.mechanism", mechanism)
        self.span.add_event(
            "smtp.auth", {"smtp.auth.mechanism": mechanism, "smtp.reply.code": code}
        )

    def failed(self, error: BaseException) -> None:
        if isinstance(error, Exception):  # a cancellation is no failure of the connection
            _record_error(self.span, error, self._observer.record_addresses)

    def closed(self) -> None:
        if self._counted:
            self._observer.connections.add(-1, self.metric_attributes)
        self.span.end()


class _Send:
    """One message's span, counted and timed when it finishes."""

    __slots__ = ("_observer", "_peer", "_recipients", "_started", "span")

    def __init__(
        self, observer: _Observer, peer: Peer, sender: str, recipients: Sequence[str]
    ) -> None:
        self._observer = observer
        self._peer = peer
        self._recipients = len(recipients)
        attributes = _server(peer)
        if recipients:
            attributes["smtp.recipients.count"] = len(recipients)
        if observer.record_addresses:
            attributes["smtp.sender"] = sender
            attributes["smtp.recipients"] = list(recipients)
        protocol = "lmtp" if peer.lmtp else "smtp"
        self.span = observer.tracer.start_span(
            f"{protocol} send", kind=trace.SpanKind.CLIENT, attributes=attributes
        )
        self._started = time.perf_counter()

    def active(self) -> AbstractContextManager[object]:
        return trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def finished(
        self, result: SendResult | BaseException, connection: ConnectionWatch | None
    ) -> None:
        span = self.span
        outcome, reply, count, attempts = _judge(result)
        attributes: Attributes = {"smtp.outcome": outcome}
        if reply is not None:
            attributes["smtp.reply.code"] = reply[0]
            status = Reply(reply[0], tuple(reply[1].split(b"\n"))).enhanced_status
            if status is not None:
                attributes["smtp.reply.enhanced_status"] = ".".join(map(str, status))
        if count is not None:
            attributes["smtp.recipients.refused"] = count[1]
            if not self._recipients:  # taken from the headers: known now
                attributes["smtp.recipients.count"] = count[0]
        if attempts is not None:
            attributes["smtp.attempts"] = attempts
        metric_attributes = _server(self._peer)  # the port is known once connected
        if isinstance(connection, _Connection):
            metric_attributes = connection.metric_attributes
            attributes.update(connection.span_attributes)
            span.add_link(connection.span.get_span_context())
        attributes.update(metric_attributes)
        span.set_attributes(attributes)
        if isinstance(result, BaseException):
            _record_error(span, result, self._observer.record_addresses)
            metric_attributes = {**metric_attributes, "error.type": type(result).__qualname__}
        span.end()
        metric_attributes = {**metric_attributes, "smtp.outcome": outcome}
        observer = self._observer
        observer.messages.add(1, metric_attributes)
        observer.duration.record(time.perf_counter() - self._started, metric_attributes)


def _judge(
    result: SendResult | BaseException,
) -> tuple[str, tuple[int, bytes] | None, tuple[int, int] | None, int | None]:
    """``(outcome, final reply, (recipients, refused), attempts)`` from what a send gave."""
    attempts = getattr(result, "attempts", None)  # the pool's exceptions carry it
    if isinstance(result, SendResult):
        outcome = result.outcome
        count = (len(outcome.recipients) + len(outcome.refused), len(outcome.refused))
        return "accepted", outcome.reply, count, outcome.attempts
    if isinstance(result, SMTPRecipientsRefused):
        replies = list(result.recipients.values())
        reply = (replies[0][0], _bytes(replies[0][1])) if replies else None
        return "refused", reply, (len(replies), len(replies)), attempts
    sent: object = getattr(result, "outcome", None)
    if isinstance(sent, SendOutcome) and sent.accepted is None:
        return "unknown", sent.reply, None, attempts
    reply = None
    if isinstance(result, SMTPResponseException):
        reply = (result.smtp_code, _bytes(result.smtp_error))
    if isinstance(result, (SMTPSenderRefused, SMTPDataError)):
        return "refused", reply, None, attempts
    if not isinstance(result, Exception):  # cancelled: the message may or may not be in
        return "unknown", reply, None, attempts
    return "failed", reply, None, attempts


def _bytes(text: bytes | str) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "replace")
