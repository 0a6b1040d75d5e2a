"""The message template: an RFC 5322 message whose headers and text parts hold ``{{ field }}``.

Compiled once: the message is parsed, every header value and text part containing Jinja2
markup becomes a template (sandboxed; undefined fields are errors; HTML parts autoescape),
and every other part (attachments) is serialised once, as is. Rendering a row fills in the
templates and joins bytes: no message object is built per row.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import hashlib
import mimetypes
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any, Final

import jinja2
import jinja2.meta
import jinja2.sandbox

import asmtp

from . import _mime
from ._errors import RenderError, TemplateError
from ._fill import Fill

__all__ = ["Template"]

_GENERATED: Final = frozenset(
    {"message-id", "date", "mime-version", "content-type", "content-transfer-encoding"}
)


@dataclass(frozen=True)
class _Header:
    name: str
    static: str | None  # the value, when it has no markup
    template: Fill | None
    line: str = ""  # a static value's encoded line
    addresses: tuple[str, ...] = ()  # a static address header's addr-specs


@dataclass(frozen=True)
class _Text:
    subtype: str
    extra: bytes  # the part's other header lines (Content-Disposition, ...), CRLF-ended
    template: Fill


@dataclass(frozen=True)
class _Static:
    headers: bytes
    body: bytes


@dataclass(frozen=True)
class _Multipart:
    content_type: str
    extra: bytes
    boundary: str
    parts: tuple[_Node, ...]


_Node = _Text | _Static | _Multipart


def _environments() -> tuple[jinja2.Environment, jinja2.Environment]:
    """Sandboxed (row values are data, not code) and strict (a missing field is an error);
    the second escapes HTML, for text/html parts."""

    def make(autoescape: bool) -> jinja2.Environment:
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=autoescape,
            keep_trailing_newline=True,
        )
        env.globals["address"] = _address
        return env

    return make(False), make(True)


class Template:
    """A message for every row: headers and text parts with ``{{ field }}`` placeholders.

    Build it with :meth:`from_file` (an RFC 5322 message file, UTF-8) or
    :meth:`from_message` (an :class:`~email.message.EmailMessage` built in code). Header
    values and ``text/plain`` and ``text/html`` parts are Jinja2 templates rendered in a
    sandbox, with ``StrictUndefined`` (a field the row lacks is an error, not
    an empty string) and autoescaping in HTML parts. Other parts, and ``attachments``
    (paths of files added to every message), are read and encoded once.

    ``Message-ID``, ``Date`` and the MIME headers are written by the campaign; a ``Bcc``
    header's addresses are recipients, never shown. Raises :class:`TemplateError`.
    """

    def __init__(
        self, source: bytes, *, name: str, attachments: Sequence[str | os.PathLike[str]] = ()
    ) -> None:
        self.name = name
        self.source = source
        """The template as given (a message file's bytes)."""
        self.attachments = tuple(Path(path) for path in attachments)
        """The files attached to every message."""
        hasher = hashlib.sha256(source)
        self._text_env, self._html_env = _environments()
        self._variables: set[str] = set()
        if not source.strip():
            raise TemplateError(f"{name}: empty")
        parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(source)
        if parsed.defects:
            raise TemplateError(f"{name}: not a message: {parsed.defects[0]!r}")
        self._headers = tuple(self._header(key, value) for key, value in parsed.items())
        root = self._node(parsed)
        extra = [_attachment(Path(path), hasher) for path in attachments]
        if extra:
            if not (
                isinstance(root, _Multipart) and root.content_type.startswith("multipart/mixed")
            ):
                root = _Multipart("multipart/mixed", b"", _boundary(), (root,))
            root = _Multipart(root.content_type, root.extra, root.boundary, (*root.parts, *extra))
        self._root = root
        self.digest = hasher.hexdigest()
        """SHA-256 of the template and its attachments: a resumed campaign checks it."""
        self._has = {h.name.lower() for h in self._headers}

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, attachments: Sequence[str | os.PathLike[str]] = ()
    ) -> Template:
        """The template in the message file ``path``."""
        try:
            source = Path(path).read_bytes()
        except OSError as exc:
            raise TemplateError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return cls(source, name=str(path), attachments=attachments)

    @classmethod
    def from_message(
        cls, message: Message, *, attachments: Sequence[str | os.PathLike[str]] = ()
    ) -> Template:
        """The template in ``message`` (its header values may hold placeholders)."""
        source = message.as_bytes(policy=email.policy.SMTPUTF8.clone(max_line_length=0))
        return cls(source, name="the template message", attachments=attachments)

    def __repr__(self) -> str:
        return f"<Template {self.name!r}>"

    @property
    def variables(self) -> frozenset[str]:
        """The fields the template uses."""
        return frozenset(self._variables)

    def static_header(self, name: str) -> str | None:
        """The value of header ``name`` when it has no placeholder, else None."""
        for header in self._headers:
            if header.name.lower() == name.lower():
                return header.static
        return None

    # -- compiling ----------------------------------------------------------------------

    def _compile(self, source: str, where: str, html: bool = False) -> Fill:
        env = self._html_env if html else self._text_env
        try:
            fill = Fill(env, source, where)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{self.name}: {where}, line {exc.lineno}: {exc.message}") from exc
        self._variables |= fill.variables
        return fill

    def _header(self, key: str, raw: str) -> _Header:
        try:
            value = str(make_header(decode_header(_mime.unfold(raw))))
        except (ValueError, LookupError, UnicodeError) as exc:
            raise TemplateError(f"{self.name}: header {key}: {exc}") from exc
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if "{" in value:
            return _Header(key, None, self._compile(value, f"header {key}"))
        if key.lower() not in _mime.ADDRESS_HEADERS:
            return _Header(key, value, None, _mime.encode_header(key, value))
        try:
            addresses = _mime.header_addresses(key, value)
        except RenderError as exc:
            raise TemplateError(f"{self.name}: {exc}") from None
        line = _mime.encode_header(key, value, addresses=addresses)
        return _Header(key, value, None, line, tuple(addresses))

    def _node(self, part: Message, top: bool = True) -> _Node:
        extra = b"".join(
            _mime.encode_header(key, _mime.unfold(value)).encode("utf-8")
            for key, value in part.items()
            if not top and key.lower() not in _GENERATED
        )
        if part.is_multipart():
            payload = part.get_payload()
            assert isinstance(payload, list)  # noqa: S101 - is_multipart() says so
            children = tuple(
                self._node(child, top=False) for child in payload if isinstance(child, Message)
            )
            params = [f'{k}="{v}"' for k, v in (part.get_params() or [])[1:] if k != "boundary"]
            content_type = "; ".join([part.get_content_type(), *params])
            return _Multipart(content_type, extra, _boundary(), children)
        maintype, subtype = part.get_content_maintype(), part.get_content_subtype()
        if maintype == "text" and subtype in ("plain", "html") and not part.get_filename():
            data = part.get_payload(decode=True)
            assert isinstance(data, bytes)  # noqa: S101 - a leaf's payload
            charset = part.get_content_charset() or "utf-8"
            try:
                text = data.decode(charset)
            except (LookupError, UnicodeDecodeError) as exc:
                raise TemplateError(
                    f"{self.name}: the text/{subtype} part is not {charset}"
                ) from exc
            return _Text(
                subtype, extra, self._compile(text, f"text/{subtype} part", subtype == "html")
            )
        return _static(part)

    # -- rendering ----------------------------------------------------------------------

    def render(
        self,
        fields: Mapping[str, Any],
        *,
        message_id: str,
        sender: str | None = None,
        recipient: str | None = None,
        date: str | None = None,
    ) -> asmtp.Outgoing:
        """The message for one row, with its envelope, ready for a pool.

        ``To`` is ``recipient`` when the template has no ``To`` header; the envelope
        recipients are the rendered ``To``, ``Cc`` and ``Bcc`` addresses, the envelope
        sender is ``sender``, else the ``Sender`` or ``From`` address. Raises
        :class:`RenderError` for an undefined field, a line break rendered into a header,
        or an address that is not one.
        """
        lines: list[str] = []
        recipients: dict[str, None] = {}
        found_sender: str | None = None
        headers = self._headers
        if "from" not in self._has:
            if sender is None:
                raise RenderError("no From header and no sender")
            headers = (_Header("From", sender, None), *headers)
        if "to" not in self._has:
            if recipient is None:
                raise RenderError("no To header and no recipient")
            headers = (*headers, _Header("To", recipient, None))
        for header in headers:
            lower = header.name.lower()
            if lower in _GENERATED:
                continue
            if header.line and not header.addresses:
                lines.append(header.line)
                continue
            value = self._value(header, fields)
            if lower not in _mime.ADDRESS_HEADERS:
                lines.append(_mime.encode_header(header.name, value))
                continue
            addresses = list(header.addresses) or _mime.header_addresses(header.name, value)
            if lower in ("to", "cc", "bcc"):
                recipients.update(dict.fromkeys(addresses))
            elif lower == "sender" or (lower == "from" and found_sender is None):
                found_sender = addresses[0]
            if lower != "bcc":
                lines.append(
                    header.line or _mime.encode_header(header.name, value, addresses=addresses)
                )
        lines.append(f"Date: {date or email.utils.formatdate()}\r\nMessage-ID: {message_id}\r\n")
        content, body = self._render_node(self._root, fields)
        envelope_sender = sender if sender is not None else found_sender
        assert envelope_sender is not None  # noqa: S101 - From is present or added above
        data = "".join(lines).encode("utf-8") + b"MIME-Version: 1.0\r\n" + content + b"\r\n" + body
        return asmtp.Outgoing(envelope_sender, list(recipients), data)

    def _value(self, header: _Header, fields: Mapping[str, Any]) -> str:
        if header.template is None:
            assert header.static is not None  # noqa: S101 - one or the other
            return header.static
        value = header.template.render(fields)
        _mime.check_header_value(header.name, value)
        return value.strip()

    def _render_node(self, node: _Node, fields: Mapping[str, Any]) -> tuple[bytes, bytes]:
        if isinstance(node, _Static):
            return node.headers, node.body
        if isinstance(node, _Text):
            text = node.template.render(fields)
            headers, body = _mime.text_part(text, node.subtype)
            return headers + node.extra, body
        boundary = node.boundary.encode("ascii")
        pieces: list[bytes] = []
        for child in node.parts:
            headers, body = self._render_node(child, fields)
            if boundary in body:
                raise RenderError("a rendered part holds the multipart boundary")
            pieces += [b"--", boundary, b"\r\n", headers, b"\r\n", body, b"\r\n"]
        pieces += [b"--", boundary, b"--\r\n"]
        content = f'Content-Type: {node.content_type}; boundary="{node.boundary}"\r\n'
        return content.encode("ascii") + node.extra, b"".join(pieces)


def _address(name: object, address: object) -> str:
    """``address(name, email)`` in a template: a mailbox with its display name quoted as
    needed (``"O'Brien, Pat" <pat@example.com>``)."""
    return email.utils.formataddr((str(name), str(address)))


def _boundary() -> str:
    return f"=_asmtp_{secrets.token_hex(16)}"


def _static(part: Message) -> _Static:
    """A part sent as it is in the template: its header lines and its encoded body."""
    if "MIME-Version" in part:
        del part["MIME-Version"]  # the message has one, at the top
    data = part.as_bytes(policy=email.policy.SMTP)
    headers, _, body = data.partition(b"\r\n\r\n")
    return _Static(headers + b"\r\n", body)


def _attachment(path: Path, hasher: Any) -> _Static:
    """``path`` as a base64 attachment, read and encoded once for every message."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"cannot read the attachment {path}: {exc.strerror or exc}") from exc
    hasher.update(path.name.encode("utf-8") + b"\0" + data)
    guessed, encoding = mimetypes.guess_type(path.name)
    maintype, _, subtype = (
        guessed if guessed and not encoding else "application/octet-stream"
    ).partition("/")
    part = EmailMessage()
    part.set_content(data, maintype, subtype, filename=path.name)
    return _static(part)
