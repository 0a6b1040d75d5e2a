"""Argument checks at the public API's edge: a wrong type is a TypeError saying what to pass.

Python would otherwise fail later and elsewhere (``AttributeError: 'bytes' object has no
attribute 'get_all'``), or not at all: a ``str`` of options is iterated character by
character, and a ``str`` of several recipients reaches only the first of them. Each check
names the argument and its expected type, never the value (it may be a secret). Pure.
"""

from __future__ import annotations

import email.utils
import ssl
from collections.abc import Iterable, Sequence
from typing import Final, get_args

from ..protocol import BadArgument, Param
from ._addresses import is_bare

__all__ = [
    "check_bool",
    "check_context",
    "check_int",
    "check_options",
    "check_port",
    "check_seconds",
    "check_sequence_of_text",
    "check_source_address",
    "check_text",
    "recipients",
]

_PARAM_TYPES: Final = get_args(Param)


def _fail(name: str, expected: str, value: object) -> TypeError:
    return TypeError(f"{name} must be {expected}, not {type(value).__name__}")


def check_text(name: str, value: object, *, optional: bool = False) -> None:
    """``value`` is a ``str`` (or ``None`` when ``optional``)."""
    if isinstance(value, str) or (optional and value is None):
        return
    raise _fail(name, "a str or None" if optional else "a str", value)


def check_int(name: str, value: object) -> None:
    """``value`` is an ``int`` (not a ``bool``)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(name, "an int", value)


def check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise _fail(name, "True or False", value)


def check_port(value: object) -> None:
    """``value`` is a port number, 0 meaning the default."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail("port", "an int (0 for the default port)", value)
    if not 0 <= value <= 65535:
        raise ValueError(f"port must be between 0 and 65535, not {value}")


def check_seconds(name: str, value: object) -> None:
    """``value`` is a number of seconds or ``None``."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return
    raise _fail(name, "a number of seconds or None", value)


def check_source_address(value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    ):
        return
    raise _fail("source_address", "a (host, port) tuple or None", value)


def check_context(value: object) -> None:
    if value is not None and not isinstance(value, ssl.SSLContext):
        raise _fail("context", "an ssl.SSLContext or None", value)


def check_options(name: str, value: object) -> None:
    """``value`` is a sequence of ESMTP parameters, not one parameter as a ``str``."""
    if value.__class__ is tuple and not value:  # the default (): nothing to check
        return
    if isinstance(value, (str, bytes)):
        raise TypeError(
            f"{name} must be a list of ESMTP parameters, not one {type(value).__name__}: "
            f"pass [{value!r}]"
        )
    if not isinstance(value, Iterable):
        raise _fail(name, "a list of ESMTP parameters", value)
    for index, option in enumerate(value):
        if not isinstance(option, _PARAM_TYPES):
            raise _fail(f"{name}[{index}]", "a str, bytes or asmtp.protocol parameter", option)


def recipients(value: object, name: str = "to_addrs") -> tuple[str, ...]:
    """The recipients ``value`` names: one address as a ``str``, or an iterable of them.

    A ``str`` holding several addresses (``"a@x, b@y"``) raises :class:`BadArgument` (a
    ``ValueError``): taken as one address, the message would reach only the first. A display
    name may hold a comma inside quotes (``'"Doe, Jane" <jane@x>'`` is one address).
    """
    if isinstance(value, str):
        if is_bare(value):
            return (value,)  # one local@domain: nothing to split, no parse needed
        found = [address for _, address in _lenient_getaddresses(value) if address]
        if len(found) > 1:
            listed = ", ".join(repr(address) for address in found)
            raise BadArgument(
                f"{name} is one str holding {len(found)} addresses ({listed}): pass a list, "
                "one address per item (a display name with a comma must be in quotes)"
            )
        return (value,)
    if value.__class__ not in (list, tuple) and (
        isinstance(value, bytes) or not isinstance(value, Iterable)
    ):
        raise _fail(name, "an address (str) or a list of addresses", value)
    addresses = tuple(value)
    for index, address in enumerate(addresses):
        if not isinstance(address, str):
            raise _fail(f"{name}[{index}]", "a str", address)
    return addresses


def _lenient_getaddresses(text: str) -> list[tuple[str, str]]:
    """What :func:`email.utils.getaddresses` finds in ``text``, leniently: Pythons with the
    CVE-2023-27043 fix are strict by default and give nothing at all for ``"a@x; b@y"``."""
    try:
        return email.utils.getaddresses([text], strict=False)
    except TypeError:  # a Python without the fix has no strict= and is lenient
        return email.utils.getaddresses([text])


def check_sequence_of_text(name: str, value: object) -> Sequence[str] | None:
    """``value`` is ``None`` or a sequence of ``str`` (not a single ``str``)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(name, "a list of str or None", value)
    for index, item in enumerate(value):
        check_text(f"{name}[{index}]", item)
    return value
