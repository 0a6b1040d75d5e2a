"""EHLO/LHLO replies parsed into service extensions.

Owns the reading of the lines after the first of a ``250`` EHLO reply (RFC 5321 §4.1.1.1)::

    ehlo-line    = ehlo-keyword *( SP ehlo-param )
    ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")

Keywords are case-insensitive. Parsing follows smtplib's ``ehlo()`` so that
``esmtp_features`` is the same dict smtplib would build, including the old ``AUTH=`` form.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping

__all__ = ["Extensions"]

_OLD_AUTH = re.compile(rb"auth=(.*)", re.IGNORECASE)
# Longer replies are parsed each time: the cache holds at most 32 of this size.
_CACHED_REPLY_BYTES = 4096
_KEYWORD = re.compile(rb"(?P<feature>[A-Za-z0-9][A-Za-z0-9\-]*) ?")


class Extensions(Mapping[str, str]):
    """The server's extensions: lower-case keyword to its parameter string.

    A read-only mapping equal to smtplib's ``esmtp_features``, plus typed accessors for the
    extensions the core acts on.
    """

    __slots__ = ("_features",)

    def __init__(self, features: Mapping[str, str] | None = None) -> None:
        self._features: dict[str, str] = dict(features or {})

    @classmethod
    def from_ehlo_lines(cls, lines: tuple[bytes, ...]) -> Extensions:
        """Parse the text lines of a positive EHLO/LHLO reply (the first line is the greeting)."""
        if sum(map(len, lines)) <= _CACHED_REPLY_BYTES:
            # A server says the same EHLO to every connection: parsed once per text.
            return cls(_parsed(lines[1:]))
        return cls(_parse(lines[1:]))

    def __getitem__(self, keyword: str) -> str:
        return self._features[keyword.lower()]

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.lower() in self._features

    def __iter__(self) -> Iterator[str]:
        return iter(self._features)

    def __len__(self) -> int:
        return len(self._features)

    def __repr__(self) -> str:
        return f"Extensions({self._features!r})"

    @property
    def size(self) -> int | None:
        """The SIZE limit (RFC 1870): ``0`` means no fixed limit; ``None`` if not advertised."""
        if "size" not in self._features:
            return None
        value = self._features["size"].split(" ", 1)[0]
        return int(value) if value.isdigit() else 0

    @property
    def pipelining(self) -> bool:
        """PIPELINING (RFC 2920): commands may be sent in groups."""
        return "pipelining" in self._features

    @property
    def chunking(self) -> bool:
        """CHUNKING (RFC 3030): BDAT may replace DATA."""
        return "chunking" in self._features

    @property
    def binarymime(self) -> bool:
        """BINARYMIME (RFC 3030): ``BODY=BINARYMIME`` with BDAT."""
        return "binarymime" in self._features

    @property
    def eightbitmime(self) -> bool:
        """8BITMIME (RFC 6152)."""
        return "8bitmime" in self._features

    @property
    def smtputf8(self) -> bool:
        """SMTPUTF8 (RFC 6531): UTF-8 addresses and headers."""
        return "smtputf8" in self._features

    @property
    def dsn(self) -> bool:
        """DSN (RFC 3461): NOTIFY, RET, ENVID and ORCPT parameters."""
        return "dsn" in self._features

    @property
    def starttls(self) -> bool:
        """STARTTLS (RFC 3207)."""
        return "starttls" in self._features

    @property
    def enhanced_status_codes(self) -> bool:
        """ENHANCEDSTATUSCODES (RFC 2034)."""
        return "enhancedstatuscodes" in self._features

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        """Advertised SASL mechanisms, upper-case, in the server's order, without repeats."""
        seen: dict[str, None] = {}
        for name in self._features.get("auth", "").split():
            seen.setdefault(name.upper(), None)
        return tuple(seen)


@functools.lru_cache(maxsize=32)
def _parsed(lines: tuple[bytes, ...]) -> dict[str, str]:
    """:func:`_parse`, remembered (callers copy the dict)."""
    return _parse(lines)


def _parse(lines: tuple[bytes, ...]) -> dict[str, str]:
    """EHLO extension lines (the greeting line left out) as smtplib's ``esmtp_features``."""
    features: dict[str, str] = {}
    for text in lines:
        # As smtplib: getreply() strips each line, ehlo() strips parameters as str.
        line = text.strip(b" \t\r\n")
        old_auth = _OLD_AUTH.match(line)
        if old_auth:
            params = old_auth.group(1).decode("latin-1")
            features["auth"] = features.get("auth", "") + " " + params
            continue
        match = _KEYWORD.match(line)
        if match is None:
            continue
        feature = match.group("feature").decode("ascii").lower()
        params = line[match.end("feature") :].decode("latin-1").strip()
        if feature == "auth":
            features["auth"] = features.get("auth", "") + " " + params
        else:
            features[feature] = params
    return features
