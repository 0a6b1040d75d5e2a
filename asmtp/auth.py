"""SASL mechanisms as pure objects that step through challenges (RFC 4954).

A mechanism turns server challenges into responses, raw bytes both ways (the client does the
base64). It performs no I/O, so it can be tested byte for byte and users can add their own:
any object with a ``name``, ``initial_response()``, ``respond(challenge)`` and
``success(data)`` works. Secrets live in :class:`Secret`, whose repr never shows them.
A mechanism whose ``respond()`` is slow (SCRAM's key derivation) sets ``blocking = True``
and the client runs that step in a worker thread, so this module stays free of I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Final, Protocol

__all__ = [
    "SCRAM_MAX_ITERATIONS",
    "SCRAM_MIN_ITERATIONS",
    "CramMD5",
    "Login",
    "Mechanism",
    "OAuthBearer",
    "Plain",
    "SASLError",
    "SASLServerNotGenuine",
    "ScramSHA256",
    "Secret",
    "XOAuth2",
]


# A str that UTF-8 cannot encode holds a lone surrogate, as os.environ and sys.argv build
# for undecodable bytes ("surrogateescape"); its UnicodeEncodeError would quote the text.
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_NOT_UNICODE: Final = (
    "is not valid Unicode text: it holds a lone surrogate, as os.environ gives for "
    "undecodable bytes (its value is not shown)"
)


class SASLError(Exception):
    """The server's side of the exchange is malformed or failed verification."""


class SASLServerNotGenuine(SASLError):
    """The server failed to prove it knows the password (SCRAM's ``v=``): an impostor."""


class Secret:
    """Holds a password or token; ``repr`` and ``str`` never reveal it.

    The value is kept masked with a random pad, so tools that dump objects' attributes
    (error reporters capturing frame locals) do not find it either. ``Secret(secret)``
    copies another :class:`Secret`.
    """

    __slots__ = ("_masked", "_pad")
    _masked: bytes
    _pad: bytes

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            self._masked, self._pad = value._masked, value._pad
            return
        # "surrogatepass" keeps any str, even one os.environ built from undecodable bytes;
        # reveal() gives it back unchanged and the mechanisms refuse it with a clear error.
        data = value.encode("utf-8", "surrogatepass")
        self._pad = secrets.token_bytes(len(data))
        self._masked = _xor(data, self._pad)

    def reveal(self) -> str:
        """The secret itself, for the mechanism that must send it."""
        return _xor(self._masked, self._pad).decode("utf-8", "surrogatepass")

    def utf8(self, what: str = "secret") -> bytes:
        """The secret as UTF-8 bytes.

        Raises :class:`ValueError` naming ``what``, never quoting the secret, when it holds
        a lone surrogate (as ``os.environ`` gives for undecodable bytes).
        """
        text = self.reveal()
        if _LONE_SURROGATE.search(text) is None:
            return text.encode("utf-8")
        del text  # a traceback keeps this frame's locals
        raise ValueError(f"the {what} {_NOT_UNICODE}")

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


class Mechanism(Protocol):
    """What :meth:`asmtp.SMTP.auth` needs from a SASL mechanism.

    Optionally, ``blocking = True`` says that ``respond()`` may take long (key stretching):
    the client then calls it in a worker thread, bounded by its ``timeout``.
    """

    name: str

    def initial_response(self) -> bytes | None:
        """The response sent with AUTH itself (RFC 4954 §4), or ``None`` to wait for a challenge."""
        ...

    def respond(self, challenge: bytes) -> bytes:
        """The response to one decoded ``334`` challenge; raises :class:`SASLError` on bad input."""
        ...

    def success(self, data: bytes | None) -> None:
        """Called when the server says the client is authenticated (``235``, or ``503``).

        Raises :class:`SASLError` if the server did not prove itself.
        """
        ...


class _Simple:
    """Base for mechanisms that need no final verification."""

    name = ""

    def success(self, data: bytes | None) -> None:
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} mechanism>"


class Plain(_Simple):
    """PLAIN (RFC 4616): ``authzid NUL authcid NUL password`` in one message.

    Raises :class:`ValueError` (never quoting the password) for text UTF-8 cannot encode.
    """

    name = "PLAIN"

    def __init__(self, user: str, password: str | Secret, authzid: str = "") -> None:
        password = Secret(password)  # no frame holds it in the clear from here on
        password.utf8("password")
        self._message = Secret(
            f"{_text(authzid, 'authzid')}\0{_text(user, 'user name')}\0{password.reveal()}"
        )

    def initial_response(self) -> bytes:
        return self._message.utf8()

    def respond(self, challenge: bytes) -> bytes:
        # A server that withholds the initial response prompt sends an empty challenge.
        return self.initial_response()


class Login(_Simple):
    """LOGIN: the user name, then the password, each as a challenge's answer.

    Raises :class:`ValueError` (never quoting the password) for text UTF-8 cannot encode.
    """

    name = "LOGIN"

    def __init__(self, user: str, password: str | Secret) -> None:
        password = Secret(password)
        password.utf8("password")
        self._user = _text(user, "user name")
        self._password = password
        self._step = 0

    def initial_response(self) -> bytes:
        self._step = 1
        return self._user.encode("utf-8")

    def respond(self, challenge: bytes) -> bytes:
        self._step += 1
        if self._step == 1:
            return self._user.encode("utf-8")
        if self._step == 2:
            return self._password.utf8()
        raise SASLError("LOGIN server sent more than two challenges")


class CramMD5(_Simple):
    """CRAM-MD5 (RFC 2195): ``user SP hex(HMAC-MD5(password, challenge))``.

    Raises :class:`ValueError` (never quoting the password) for text UTF-8 cannot encode.
    """

    name = "CRAM-MD5"

    def __init__(self, user: str, password: str | Secret) -> None:
        password = Secret(password)
        password.utf8("password")
        self._user = _text(user, "user name")
        self._password = password

    def initial_response(self) -> None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if not challenge:
            raise SASLError("CRAM-MD5 needs a non-empty challenge")
        digest = hmac.new(self._password.utf8(), challenge, "md5").hexdigest()
        return f"{self._user} {digest}".encode()


class XOAuth2(_Simple):
    """XOAUTH2 (Google, Microsoft): a bearer token for ``user``.

    On failure the server sends a JSON error as a challenge; the answer is empty, and the
    server then refuses with ``535``. Raises :class:`ValueError` (never quoting the token)
    for text UTF-8 cannot encode.
    """

    name = "XOAUTH2"

    def __init__(self, user: str, token: str | Secret) -> None:
        token = Secret(token)
        token.utf8("token")
        user = _text(user, "user name")
        self._message = Secret(f"user={user}\x01auth=Bearer {token.reveal()}\x01\x01")

    def initial_response(self) -> bytes:
        return self._message.utf8()

    def respond(self, challenge: bytes) -> bytes:
        return b""


class OAuthBearer(_Simple):
    """OAUTHBEARER (RFC 7628 §3.1) with a GS2 header naming ``user``.

    On failure the server sends a JSON error; the answer is a single ``%x01`` (§3.2.3).
    Raises :class:`ValueError` (never quoting the token) for text UTF-8 cannot encode.
    """

    name = "OAUTHBEARER"

    def __init__(self, user: str, token: str | Secret, host: str = "", port: int = 0) -> None:
        token = Secret(token)
        token.utf8("token")
        host = _text(host, "host")
        extra = (f"host={host}\x01" if host else "") + (f"port={port}\x01" if port else "")
        user = _text(user, "user name").replace("=", "=3D").replace(",", "=2C")
        self._message = Secret(f"n,a={user},\x01{extra}auth=Bearer {token.reveal()}\x01\x01")

    def initial_response(self) -> bytes:
        return self._message.utf8()

    def respond(self, challenge: bytes) -> bytes:
        return b"\x01"


SCRAM_MIN_ITERATIONS: Final = 4096
"""RFC 7677 §4: SCRAM-SHA-256 iteration counts below this are refused."""
SCRAM_MAX_ITERATIONS: Final = 65536
"""The default bound on the server's iteration count (Cyrus SASL's), see :class:`ScramSHA256`."""


class ScramSHA256:
    """SCRAM-SHA-256 (RFC 7677, RFC 5802), verifying the server's signature.

    Authentication fails unless the server proves it knows the password too, so a server
    that answers ``235`` without a valid ``v=`` gets :class:`SASLServerNotGenuine`. The
    server chooses the PBKDF2 iteration count: one below 4096 or above ``max_iterations``
    (default :data:`SCRAM_MAX_ITERATIONS`, Cyrus SASL's bound) is refused with
    :class:`SASLError`, so a hostile server cannot make the client compute for minutes.
    ``respond()`` is ``blocking``: the client derives the key in a worker thread. Raises
    :class:`ValueError` (never quoting the password) for text UTF-8 cannot encode.
    """

    name = "SCRAM-SHA-256"
    blocking = True

    def __init__(
        self,
        user: str,
        password: str | Secret,
        *,
        nonce: str | None = None,
        max_iterations: int = SCRAM_MAX_ITERATIONS,
    ) -> None:
        password = Secret(password)
        password.utf8("password")
        if max_iterations < SCRAM_MIN_ITERATIONS:
            raise ValueError(f"max_iterations must be at least {SCRAM_MIN_ITERATIONS}")
        self.max_iterations = max_iterations
        self._user = _text(user, "user name").replace("=", "=3D").replace(",", "=2C")
        self._password = password
        self._nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode("ascii")
        if not _is_printable(self._nonce):
            raise ValueError("the SCRAM nonce must be printable ASCII without a comma")
        self._client_first_bare = f"n={self._user},r={self._nonce}"
        self._server_signature: bytes | None = None
        self._verified = False

    def __repr__(self) -> str:
        return "<ScramSHA256 mechanism>"

    def initial_response(self) -> bytes:
        return ("n,," + self._client_first_bare).encode("utf-8")

    def respond(self, challenge: bytes) -> bytes:
        if self._server_signature is None:
            return self._client_final(challenge)
        self._verify(challenge)
        return b""

    def success(self, data: bytes | None) -> None:
        if not self._verified and data:
            self._verify(data)
        if not self._verified:
            raise SASLServerNotGenuine(
                "the server did not prove it knows the password (no SCRAM v=)"
            )

    def _client_final(self, server_first: bytes) -> bytes:
        attrs = _scram_attributes(server_first)
        if "m" in attrs:
            # RFC 5802 §5.1: a mandatory extension we do not know makes the exchange fail.
            raise SASLError("SCRAM server requires an unsupported extension (m=)")
        nonce, salt = attrs.get("r", ""), attrs.get("s", "")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise SASLError("SCRAM server nonce does not extend the client nonce")
        if not _is_printable(nonce):
            raise SASLError("SCRAM server nonce is not printable ASCII")
        iterations = self._iterations(attrs.get("i", ""))
        try:
            salt_bytes = base64.b64decode(salt, validate=True)
        except ValueError:
            raise SASLError("SCRAM salt is not base64") from None
        if not salt_bytes:
            raise SASLError("SCRAM salt is empty")
        salted = hashlib.pbkdf2_hmac("sha256", self._password.utf8(), salt_bytes, iterations)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = ",".join(
            (self._client_first_bare, server_first.decode("utf-8"), without_proof)
        ).encode("utf-8")
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self._server_signature = hmac.new(server_key, auth_message, "sha256").digest()
        return f"{without_proof},p={base64.b64encode(proof).decode('ascii')}".encode("ascii")

    def _iterations(self, text: str) -> int:
        # RFC 5802 §7: iteration-count = "i=" posit-number; posit-number = %x31-39 *DIGIT.
        # Checked as ASCII text before int(): Unicode digits, signs, spaces and thousands
        # of digits never reach int(), and the bound keeps PBKDF2 from running for minutes.
        if not (text.isascii() and text.isdigit()) or text.startswith("0"):
            raise SASLError("SCRAM iteration count missing or not a positive decimal number")
        limit = self.max_iterations
        if len(text) > len(str(limit)) or int(text) > limit:
            raise SASLError(f"SCRAM iteration count above max_iterations ({limit})")
        if int(text) < SCRAM_MIN_ITERATIONS:
            raise SASLError(f"SCRAM iteration count below {SCRAM_MIN_ITERATIONS} (RFC 7677 §4)")
        return int(text)

    def _verify(self, server_final: bytes) -> None:
        attrs = _scram_attributes(server_final)
        if "e" in attrs:
            raise SASLError(f"SCRAM server error: {attrs['e'][:80]!r}")
        try:
            claimed = base64.b64decode(attrs.get("v", ""), validate=True)
        except ValueError:
            raise SASLError("SCRAM server signature is not base64") from None
        if self._server_signature is None or not hmac.compare_digest(
            claimed, self._server_signature
        ):
            raise SASLServerNotGenuine(
                "SCRAM server signature does not match: the server is not genuine"
            )
        self._verified = True


def _scram_attributes(message: bytes) -> dict[str, str]:
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError("SCRAM message is not UTF-8") from None
    attrs: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise SASLError(f"malformed SCRAM attribute {part[:20]!r}")
        attrs[key] = value
    return attrs


def _is_printable(nonce: str) -> bool:
    # RFC 5802 §7: printable = %x21-2B / %x2D-7E (no comma; the split removed those).
    return bool(nonce) and all("!" <= char <= "~" for char in nonce) and "," not in nonce


def _text(value: str, what: str) -> str:
    """``value`` if UTF-8 can encode it; else :class:`ValueError` naming ``what``."""
    if _LONE_SURROGATE.search(value) is not None:
        raise ValueError(f"the {what} {_NOT_UNICODE}")
    return value


def _xor(data: bytes, pad: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(len(data), "big")
