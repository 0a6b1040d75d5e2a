"""The server side of SCRAM-SHA-256 (RFC 5802 §3, §5, §7; RFC 7677), written for the tests.

Independent of ``asmtp.auth``: it shares no code with the client, so a client that agrees
with it (and with RFC 7677's test vector, checked in ``test_mechanisms``) computes the
proof as the RFCs say, not as our own client happens to. It verifies the client proof and
produces ``v=``; ``tamper=True`` flips a bit of the signature to play an impostor server.
No SASLprep (the tests use ASCII names and passwords) and no channel binding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping


class ScramServerError(Exception):
    """The client's message is malformed or does not belong to this exchange."""


def _attributes(text: str) -> dict[str, str]:
    # RFC 5802 §7: attr-val = ALPHA "=" value, separated by commas.
    attrs: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1 or not key.isalpha():
            raise ScramServerError(f"malformed attribute {part!r}")
        attrs[key] = value
    return attrs


def _unescape_name(name: str) -> str:
    # RFC 5802 §5.1: "=2C" is ",", "=3D" is "=", and any other "=" is an error.
    out, i = [], 0
    while i < len(name):
        if name[i] != "=":
            out.append(name[i])
            i += 1
        elif name[i : i + 3] in ("=2C", "=3D"):
            out.append("," if name[i : i + 3] == "=2C" else "=")
            i += 3
        else:
            raise ScramServerError(f"bad escape in user name {name!r}")
    return "".join(out)


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


class ScramServer:
    """One SCRAM-SHA-256 exchange: ``server_first``, ``client_proof_ok``, ``server_final``."""

    def __init__(
        self,
        passwords: Mapping[str, str],
        *,
        salt: bytes | None = None,
        iterations: int = 4096,
        server_nonce: str | None = None,
        tamper: bool = False,
    ) -> None:
        self._passwords = passwords
        self._salt = salt if salt is not None else secrets.token_bytes(16)
        self._iterations = iterations
        self._server_nonce = server_nonce or secrets.token_urlsafe(18)
        self._tamper = tamper
        self.user: str | None = None
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._server_signature: bytes | None = None

    def server_first(self, client_first: bytes) -> bytes:
        """``r=<client nonce + server nonce>,s=<salt>,i=<iterations>`` (RFC 5802 §5.1)."""
        text = client_first.decode("utf-8")
        cbind, authzid, bare = [*text.split(",", 2), "", ""][:3]
        if cbind not in ("n", "y") or (authzid and not authzid.startswith("a=")):
            raise ScramServerError(f"unsupported GS2 header in {text!r}")
        attrs = _attributes(bare)
        if "n" not in attrs or not attrs.get("r"):
            raise ScramServerError(f"client-first without n= or r=: {text!r}")
        self.user = _unescape_name(attrs["n"])
        self._gs2_header = f"{cbind},{authzid},"
        self._client_first_bare = bare
        self._nonce = attrs["r"] + self._server_nonce
        salt = base64.b64encode(self._salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt},i={self._iterations}"
        return self._server_first.encode("utf-8")

    def client_proof_ok(self, client_final: bytes) -> bool:
        """Whether the client proved it knows the password (RFC 5802 §3, verification)."""
        text = client_final.decode("utf-8")
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        if not sep:
            raise ScramServerError(f"client-final without p=: {text!r}")
        attrs = _attributes(without_proof)
        expected_binding = base64.b64encode(self._gs2_header.encode("utf-8")).decode("ascii")
        if attrs.get("c") != expected_binding or attrs.get("r") != self._nonce:
            raise ScramServerError(f"client-final with wrong c= or r=: {text!r}")
        password = self._passwords.get(self.user or "")
        salted = hashlib.pbkdf2_hmac(
            "sha256",
            (password if password is not None else secrets.token_hex(16)).encode("utf-8"),
            self._salt,
            self._iterations,
        )
        auth_message = ",".join(
            (self._client_first_bare, self._server_first, without_proof)
        ).encode("utf-8")
        stored_key = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
        client_signature = _hmac(stored_key, auth_message)
        proof = base64.b64decode(proof_b64, validate=True)
        if len(proof) != len(client_signature):
            return False
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return password is not None and hmac.compare_digest(
            hashlib.sha256(client_key).digest(), stored_key
        )

    def server_final(self) -> bytes:
        """``v=<ServerSignature>``, with one bit flipped when playing an impostor."""
        if self._server_signature is None:
            raise ScramServerError("server_final() before client_proof_ok()")
        signature = bytearray(self._server_signature)
        if self._tamper:
            signature[0] ^= 0x01
        return b"v=" + base64.b64encode(bytes(signature))
