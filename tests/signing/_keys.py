"""Keys and a DNS stand-in for the DKIM tests, made once per run."""

from __future__ import annotations

import base64
import functools
import warnings
from typing import Final

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

DOMAIN: Final = "example.org"
_PEM: Final = serialization.Encoding.PEM
_NONE: Final = serialization.NoEncryption()


@functools.cache
def rsa_key(bits: int = 2048, pkcs: str = "PKCS8") -> bytes:
    """A PEM RSA private key (PKCS#8, or PKCS#1 with ``pkcs="PKCS1"``)."""
    private_format = (
        serialization.PrivateFormat.PKCS8
        if pkcs == "PKCS8"
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return rsa.generate_private_key(65537, bits).private_bytes(_PEM, private_format, _NONE)


@functools.cache
def ed25519_key() -> bytes:
    """A PKCS#8 PEM Ed25519 private key."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, _NONE)


def ed25519_seed(pem: bytes) -> bytes:
    """The base64 seed of a PEM Ed25519 key, as dkimpy's ``dknewkey`` writes it."""
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw)


def record(pem: bytes) -> bytes:
    """The DKIM TXT record publishing ``pem``'s public half."""
    key = serialization.load_pem_private_key(pem, None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public)
    assert isinstance(key, rsa.RSAPrivateKey)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def verify(message: bytes, selector: str, pem: bytes) -> bool:
    """dkimpy's verdict on ``message``, ``pem``'s public key at ``selector`` for DOMAIN."""
    name = f"{selector}._domainkey.{DOMAIN}.".encode()
    txt = record(pem)

    def lookup(query: bytes, timeout: int = 5) -> bytes | None:
        return txt if query.rstrip(b".") + b"." == name else None

    with warnings.catch_warnings():
        # dkimpy's verifier logs str % bytes (a BytesWarning, an error under python -bb).
        warnings.simplefilter("ignore", BytesWarning)
        return bool(dkim.verify(message, dnsfunc=lookup))
