"""Choosing and adapting SASL mechanisms for ``login()`` and ``auth()``.

Owns ``login()``'s preference order, the built-in mechanism for each name, and the adapter
that lets smtplib-style callables stand in for :class:`asmtp.auth.Mechanism` objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeGuard

from ..auth import CramMD5, Login, Mechanism, Plain, ScramSHA256, Secret
from ..errors import SMTPException

__all__ = ["LOGIN_ORDER", "as_mechanism", "builtin_mechanism"]

# SCRAM-SHA-256 proves the server too, so it goes first; then smtplib's own order.
LOGIN_ORDER: Final = ("SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN")


def as_mechanism(name: str, authobject: Mechanism | Callable[..., str | None]) -> Mechanism:
    """``authobject`` itself if it is a :class:`Mechanism`, else smtplib's callable adapted."""
    if is_mechanism(authobject):
        return authobject
    assert callable(authobject)  # noqa: S101 - the union leaves only callables here
    return _CallableMechanism(name, authobject)


def is_mechanism(obj: object) -> TypeGuard[Mechanism]:
    return all(hasattr(obj, name) for name in ("initial_response", "respond", "success"))


class _CallableMechanism:
    """smtplib's authobject: ``f(challenge=None) -> str`` as a :class:`Mechanism`."""

    def __init__(self, name: str, func: Callable[..., str | None]) -> None:
        self.name = name
        self._func = func

    def initial_response(self) -> bytes | None:
        return _utf8(self._func())

    def respond(self, challenge: bytes) -> bytes:
        return _utf8(self._func(challenge)) or b""

    def success(self, data: bytes | None) -> None:
        return None


def _utf8(answer: str | None) -> bytes | None:
    """``answer`` as UTF-8; :class:`ValueError`, never quoting it, if UTF-8 cannot encode it."""
    if answer is None:
        return None
    secret = Secret(answer)
    del answer  # a traceback keeps this frame's locals
    return secret.utf8("answer of the authobject")


def builtin_mechanism(name: str, user: str, secret: Secret) -> Mechanism:
    if name == "SCRAM-SHA-256":
        return ScramSHA256(user, secret)
    if name == "CRAM-MD5":
        return CramMD5(user, secret)
    if name == "PLAIN":
        return Plain(user, secret)
    if name == "LOGIN":
        return Login(user, secret)
    raise SMTPException(f"no built-in mechanism {name!r}; use auth() with a Mechanism object")
