"""An aiosmtpd handler that serves every SASL mechanism asmtp speaks, and records AUTH.

PLAIN and LOGIN are aiosmtpd's own, checked by :meth:`AuthHandler.authenticate` (pass it
as the server's ``authenticator``). CRAM-MD5, XOAUTH2, OAUTHBEARER and SCRAM-SHA-256 are
written here from their RFCs through aiosmtpd's ``auth_<NAME>`` hooks (``__`` is ``-``),
plus two hostile ones: ``X-ENDLESS`` (challenges forever) and ``X-GARBLED`` (a challenge
that is not base64). A failure returns ``AuthResult(handled=False)`` so aiosmtpd answers
``535`` (or the configured reply); ``handled=True`` would make it answer nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from secure._scram_server import ScramServer, ScramServerError
from support.aiosmtpd_server import RecordingHandler, ThreadedSMTPServer

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

USER: Final = "alice@example.test"
PASSWORD: Final = "correct horse battery staple"
TOKEN: Final = "ya29.token-for-alice"
LOGIN_ORDER: Final = ("SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN")
"""login()'s documented preference order."""
STANDARD: Final = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER", "SCRAM-SHA-256")
MECHANISMS: Final = (
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "XOAUTH2",
    "OAUTHBEARER",
    "SCRAM-SHA-256",
    "X-ENDLESS",
    "X-GARBLED",
)
"""Every mechanism the handler can serve; the server advertises those not excluded."""

OAUTH_ERROR: Final = b'{"status":"invalid_token","scope":"mail"}'
GARBLED_CHALLENGE: Final = b"%%% not base64 %%%"


def exclude_all_but(advertised: Iterable[str]) -> list[str]:
    """``auth_exclude_mechanism`` for a server that advertises only ``advertised``."""
    keep = set(advertised)
    return [name for name in MECHANISMS if name not in keep]


class AuthHandler(RecordingHandler):
    """RecordingHandler that also serves and records SASL exchanges.

    ``commands`` gains ``"AUTH <MECHANISM>"``; :attr:`attempts` says per AUTH whether it
    carried an initial response, and :attr:`answers` holds the decoded (or raw, for
    ``*``) client answers to the hostile and error challenges. ``failure_replies`` maps a
    mechanism to the reply its failure gets (default ``535 5.7.8 ...``).
    ``scram_server_final`` is ``"valid"``, ``"wrong"`` (a bad ``v=``) or ``"missing"``
    (``235`` without any ``v=``); ``scram_server_first`` rewrites the server-first message
    before it is sent (a tampering server).
    """

    def __init__(
        self,
        *,
        passwords: Mapping[str, str] | None = None,
        tokens: Mapping[str, str] | None = None,
        failure_replies: Mapping[str, str] | None = None,
        scram_server_final: str = "valid",
        scram_server_first: Callable[[bytes], bytes] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.scram_server_first = scram_server_first
        self.passwords = dict(passwords if passwords is not None else {USER: PASSWORD})
        self.tokens = dict(tokens if tokens is not None else {USER: TOKEN})
        self.failure_replies = dict(failure_replies or {})
        self.scram_server_final = scram_server_final
        self._lock = threading.Lock()
        self._attempts: list[tuple[str, bool]] = []
        self._answers: list[bytes] = []

    @property
    def attempts(self) -> list[tuple[str, bool]]:
        """``(mechanism, sent an initial response)`` per AUTH command, in order."""
        with self._lock:
            return list(self._attempts)

    @property
    def mechanisms_tried(self) -> list[str]:
        return [name for name, _ in self.attempts]

    @property
    def answers(self) -> list[bytes]:
        with self._lock:
            return list(self._answers)

    def _answer(self, data: bytes) -> None:
        with self._lock:
            self._answers.append(data)

    def _fail(self, mechanism: str) -> Any:
        return AuthResult(success=False, handled=False, message=self.failure_replies.get(mechanism))

    # aiosmtpd hooks -------------------------------------------------------------------

    async def handle_AUTH(
        self, server: SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> Any:
        mechanism = args[0].upper()
        with self._lock:
            self._attempts.append((mechanism, len(args) > 1))
        self._record(f"AUTH {mechanism}")
        return MISSING  # go on to the auth_<NAME> method

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> Any:
        """aiosmtpd's ``authenticator`` for its built-in PLAIN and LOGIN."""
        assert isinstance(data, LoginPassword)
        expected = self.passwords.get(data.login.decode("utf-8"))
        if expected is not None and hmac.compare_digest(data.password, expected.encode()):
            return AuthResult(success=True, auth_data=data)
        return self._fail(mechanism)

    async def _first(self, server: SMTP, args: list[str]) -> bytes | None:
        """The client's first message: the initial response, or the answer to ``334 ``."""
        if len(args) > 1:
            return b"" if args[1] == "=" else base64.b64decode(args[1], validate=True)
        answer = await server.challenge_auth("")
        return None if answer is MISSING else bytes(answer)

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> Any:
        # RFC 2195: the challenge is a msg-id; the answer is "user SP hex(HMAC-MD5)".
        challenge = f"<{secrets.randbelow(10**9)}.{secrets.randbelow(10**9)}@server.test>"
        answer = await server.challenge_auth(challenge)
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        user, _, digest = bytes(answer).decode("utf-8").rpartition(" ")
        password = self.passwords.get(user)
        if password is not None:
            good = hmac.new(password.encode(), challenge.encode(), hashlib.md5).hexdigest()
            if hmac.compare_digest(digest, good):
                return AuthResult(success=True)
        return self._fail("CRAM-MD5")

    async def _bearer(self, server: SMTP, mechanism: str, message: bytes, user: str) -> Any:
        fields = dict(
            field.split("=", 1) for field in message.decode("utf-8").split("\x01") if field
        )
        token = fields.get("auth", "").removeprefix("Bearer ")
        expected = self.tokens.get(user)
        if expected is not None and hmac.compare_digest(token, expected):
            return AuthResult(success=True)
        # XOAUTH2 and RFC 7628 §3.2.2: a JSON error as a challenge, then the refusal.
        answer = await server.challenge_auth(OAUTH_ERROR)
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        self._answer(bytes(answer))
        return self._fail(mechanism)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> Any:
        message = await self._first(server, args)
        if message is None:
            return AuthResult(success=False, handled=True)
        user = message.split(b"\x01", 1)[0].decode("utf-8").removeprefix("user=")
        return await self._bearer(server, "XOAUTH2", message, user)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> Any:
        # RFC 7628 §3.1: gs2-header ("n,a=user,") then kvpairs separated by %x01.
        message = await self._first(server, args)
        if message is None:
            return AuthResult(success=False, handled=True)
        header, _, rest = message.partition(b"\x01")
        gs2 = header.decode("utf-8").split(",")
        authzid = gs2[1] if len(gs2) == 3 and gs2[0] in ("n", "y") else ""
        user = authzid.removeprefix("a=").replace("=2C", ",").replace("=3D", "=")
        return await self._bearer(server, "OAUTHBEARER", rest, user)

    async def auth_SCRAM__SHA__256(self, server: SMTP, args: list[str]) -> Any:
        client_first = await self._first(server, args)
        if client_first is None:
            return AuthResult(success=False, handled=True)
        scram = ScramServer(self.passwords, tamper=self.scram_server_final == "wrong")
        try:
            server_first = scram.server_first(client_first)
            if self.scram_server_first is not None:
                server_first = self.scram_server_first(server_first)
            client_final = await server.challenge_auth(server_first)
            if client_final is MISSING:
                return AuthResult(success=False, handled=True)
            if not scram.client_proof_ok(bytes(client_final)):
                return self._fail("SCRAM-SHA-256")
        except (ScramServerError, ValueError) as exc:
            await server.push(f"501 5.5.2 {exc}")
            return AuthResult(success=False, handled=True)
        if self.scram_server_final == "missing":
            return AuthResult(success=True)
        # RFC 4954 §4: additional data with success goes in a 334, answered empty.
        empty = await server.challenge_auth(scram.server_final())
        if empty is MISSING:
            self._answer(b"*")
            return AuthResult(success=False, handled=True)
        self._answer(bytes(empty))
        return AuthResult(success=True)

    async def auth_X__ENDLESS(self, server: SMTP, args: list[str]) -> Any:
        while True:
            answer = await server.challenge_auth(b"more")
            if answer is MISSING:  # aiosmtpd already answered "*" with 501
                self._answer(b"*")
                return AuthResult(success=False, handled=True)
            self._answer(bytes(answer))

    async def auth_X__GARBLED(self, server: SMTP, args: list[str]) -> Any:
        answer = await server.challenge_auth(GARBLED_CHALLENGE, encode_to_b64=False)
        self._answer(b"*" if answer is MISSING else bytes(answer))
        return AuthResult(success=False, handled=True)


def start_auth_server(
    factory: SMTPDServerFactory,
    handler: AuthHandler | None = None,
    *,
    advertise: Iterable[str] = STANDARD,
    **options: Any,
) -> ThreadedSMTPServer:
    """aiosmtpd offering AUTH in the clear with the mechanisms in ``advertise`` only."""
    handler = handler if handler is not None else AuthHandler()
    options.setdefault("auth_require_tls", False)
    return factory(
        handler,
        authenticator=handler.authenticate,
        auth_exclude_mechanism=exclude_all_but(advertise),
        **options,
    )


def wire_forms(user: str, secret: str) -> list[str]:
    """``secret`` and the base64 forms that would carry it on the wire (to look for leaks)."""
    forms = [secret, f"\0{user}\0{secret}", f"user={user}\x01auth=Bearer {secret}\x01\x01"]
    return [secret, *(base64.b64encode(form.encode()).decode() for form in forms)]
