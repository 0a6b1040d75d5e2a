"""Flattening an email message for the wire: Bcc removed, every header line checked.

Owns the one conversion of an :class:`email.message.Message` into bytes, for ``sendmail``
and its relatives given a message object and for ``send_message``. ``Bcc`` and
``Resent-Bcc`` never leave (every recipient would learn the hidden ones), and no header can
add a line of its own: ``email``'s generator writes a value's line breaks as they are on
interpreters without the CVE-2024-6923 fix, so ``"x\\r\\nBcc: y"`` would become a field and
``"x\\r\\n\\r\\ny"`` would end the header block early. The caller's message is never changed.
Performs no I/O.
"""

from __future__ import annotations

import copy
import email.generator
import email.message
import io
import re
from collections.abc import Sequence
from email.policy import Policy
from typing import Final

from ..errors import MalformedHeaderError

__all__ = ["flatten"]

# RFC 5322 §3.6.8: field-name = 1*ftext; ftext = %d33-57 / %d59-126 (printable, no colon).
_FIELD_NAME: Final = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_FIELD_START: Final = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
# Every line boundary str.splitlines() knows, since the generator may fold with it; a lone CR
# or LF becomes CRLF on the wire (RFC 5321 §2.3.8), so each one ends a line too.
_BREAK: Final = r"\r\n|\r(?!\n)|[\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]"
# RFC 5322 §2.2.3: inside a field a line break must be folding whitespace, a break followed
# by SP or HT; and §3.2.2: a continuation line must not be whitespace alone (some parsers
# take it for the end of the header block).
_UNFOLDED_BREAK: Final = re.compile(
    rf"(?:{_BREAK})(?![ \t]+[^ \t\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029])"
)
_WIRE_LINE_END: Final = re.compile(rb"\r\n|\r|\n")
# A continuation line of whitespace alone, which email's folder writes when it refolds a
# value ending in whitespace (an encoded word on the line before, say).
_WHITESPACE_LINE: Final = re.compile(rb"\r\n[ \t]+(?=\r\n)")
_QUOTE_LIMIT: Final = 60


def flatten(
    msg: email.message.Message,
    *,
    utf8: bool = False,
    add: Sequence[tuple[str, str]] = (),
) -> bytes:
    """``msg`` as bytes with CRLF line ends, less ``Bcc`` and ``Resent-Bcc``, plus the
    header fields ``add`` (at the end of the header block).

    ``utf8`` writes non-ASCII headers as UTF-8 (RFC 6532) rather than as encoded words.
    Raises :class:`MalformedHeaderError` for a header that would not come out as one field.
    """
    outgoing = copy.copy(msg)  # del rebinds the copy's header list: the caller's stays whole
    del outgoing["Bcc"]
    del outgoing["Resent-Bcc"]
    for name, value in add:
        outgoing[name] = value  # appended to the copy's own list, after the del above
    policy = msg.policy.clone(utf8=True) if utf8 else msg.policy  # type: ignore[call-arg]
    for part in outgoing.walk():  # the generator writes every part with the top one's policy
        for name, value in part.raw_items():
            _check_field(name, _as_generated(policy, name, value))
    with io.BytesIO() as buffer:
        email.generator.BytesGenerator(buffer, policy=policy).flatten(outgoing, linesep="\r\n")
        data = _without_whitespace_lines(buffer.getvalue())
    _check_header_block(data, outgoing)
    return data


def _without_whitespace_lines(data: bytes) -> bytes:
    """``data`` less the header block's continuation lines of whitespace alone.

    Such a line only carries whitespace that unfolding would leave at the end of a value
    or beside other whitespace, and RFC 5322 §3.2.2 has no place for it (some parsers take
    it for the end of the header block). The body is left as it is.
    """
    end = data.find(b"\r\n\r\n")
    if end == -1 or data.startswith(b"\r\n"):  # no header block, or one without fields
        return data
    head, dropped = _WHITESPACE_LINE.subn(b"", data[: end + 2])
    return head + data[end + 2 :] if dropped else data


def _as_generated(policy: Policy, name: str, value: object) -> str:
    """The text the generator folds for a header: what a line break could hide in.

    A parsed message keeps each header's source; a generator with an ``EmailPolicy`` may
    refold it from its decoded form, in which an encoded word can carry a CR or LF that is
    then written raw (CVE-2024-6923). Only such a source, holding ``=?``, is decoded here.
    """
    text = str(value)
    factory = getattr(policy, "header_factory", None)
    if factory is None or hasattr(value, "name") or "=?" not in text:
        return text
    return str(factory(name, text))


def _check_field(name: str, value: str) -> None:
    """Refuse a header whose name is not ftext or whose value has an unfolded line break."""
    if not _FIELD_NAME.fullmatch(name):
        raise MalformedHeaderError(
            f"header name {_shorten(name)} is not printable ASCII without a colon (RFC 5322 §3.6.8)"
        )
    if _UNFOLDED_BREAK.search(value):
        raise MalformedHeaderError(
            f"header {_shorten(name)} has a line break not followed by a space or tab, "
            f"which would add a line to the header block: {_shorten(value)}"
        )


def _check_header_block(data: bytes, msg: email.message.Message) -> None:
    """The flattened header block holds ``msg``'s fields, in order, and nothing else.

    Every line up to the first blank one, split as the server will (any CR, LF or CRLF),
    starts a field or folds one; the fields are the message's own, so no value added one or
    ended the block early. Checked on the bytes themselves, whatever the generator did.
    """
    expected = [name.lower().encode("ascii") for name in msg.keys()]
    if "Content-Transfer-Encoding" not in msg:
        # The generator adds one itself when it re-encodes an 8-bit body for a 7-bit policy.
        expected.append(b"content-transfer-encoding")
    start, number, fields = 0, 0, 0
    for end in _WIRE_LINE_END.finditer(data):
        line = data[start : end.start()]
        start, number = end.end(), number + 1
        if not line:
            break  # the blank line that ends the header block
        if line[:1] in (b" ", b"\t"):
            problem = "" if fields and line.strip(b" \t") else "is not a folded continuation"
        elif (field := _FIELD_START.match(line)) is None:
            problem = "is neither a header field nor a folded continuation"
        elif fields < len(expected) and line[: field.end() - 1].lower() == expected[fields]:
            fields, problem = fields + 1, ""
        else:
            problem = "is a field the message does not have there"
        if problem:
            raise MalformedHeaderError(
                f"line {number} of the flattened header block {problem}: {_shorten(line)}"
            )
    if fields < len(msg):
        raise MalformedHeaderError(
            f"the flattened header block ends before the message's header "
            f"{_shorten(msg.keys()[fields])}"
        )


def _shorten(text: str | bytes) -> str:
    """``repr`` of ``text``, truncated for an error message."""
    if len(text) > _QUOTE_LIMIT:
        return f"{text[:_QUOTE_LIMIT]!r}..."
    return repr(text)
