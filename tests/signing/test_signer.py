"""DKIMSigner: its checks at construction, and signatures identical to dkimpy's own.

asmtp hashes the body itself (chunk by chunk) and lets dkimpy sign the header block; the
result must be byte for byte what dkimpy's ``DKIM.sign`` makes of the whole message, for
RSA and Ed25519, whatever the message, and the same for a file as for bytes.
"""

from __future__ import annotations

import io
import re
import time
from typing import Any
from unittest import mock

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asmtp
from asmtp._dkim._apply import SignedFile, sign_bytes
from signing._keys import DOMAIN, ed25519_key, ed25519_seed, rsa_key, verify

NOW = 1_700_000_000
MESSAGE = (
    b"From: Ann <ann@example.org>\r\nTo: bob@example.net\r\nSubject: hello   there\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <1@example.org>\r\n\r\n"
    b"Hello  Bob,\r\n.dot\r\n\r\n\r\n"
)


def keys() -> dict[str, bytes]:
    return {"rsa": rsa_key(), "ed25519": ed25519_key()}


def dkimpy_signature(message: bytes, algorithm: str, key: bytes, headers: list[bytes]) -> bytes:
    """dkimpy's own DKIM-Signature for the whole message (the key as dkimpy takes it)."""
    private = key if algorithm == "rsa" else ed25519_seed(key)
    signer = dkim.DKIM(message)
    return bytes(
        signer.sign(
            b"sel",
            DOMAIN.encode(),
            private,
            signature_algorithm=b"rsa-sha256" if algorithm == "rsa" else b"ed25519-sha256",
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=headers,
        )
    )


def read_all(file: SignedFile) -> bytes:
    out = []
    while block := file.read(7):
        out.append(block)
    return b"".join(out)


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_signature_is_dkimpys_and_verifies(algorithm: str) -> None:
    key = keys()[algorithm]
    signer = asmtp.DKIMSigner(domain=DOMAIN, selector="sel", private_key=key)
    assert signer.algorithm == ("rsa-sha256" if algorithm == "rsa" else "ed25519-sha256")
    with mock.patch.object(time, "time", return_value=NOW):
        ours = sign_bytes(signer, MESSAGE)
        headers = [b"from", b"subject", b"date", b"message-id", b"to", b"from"]
        theirs = dkimpy_signature(MESSAGE, algorithm, key, headers)
    assert ours == theirs + MESSAGE
    assert verify(ours, "sel", key)


_LINES = st.sampled_from(
    [b"", b" ", b"\t", b"a  b", b".", b"..x", b"\xc3\xa9t\xc3\xa9 ", b"x" * 90, b"  lead"]
)
_ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r"])
BODIES = st.lists(st.tuples(_LINES, _ENDINGS), max_size=12).map(
    lambda lines: b"".join(line + end for line, end in lines)
)


@settings(max_examples=60, deadline=None)
@given(
    body=BODIES,
    tail=st.sampled_from([b"", b"no final newline", b"  "]),
    subject=st.text(st.characters(codec="ascii", exclude_characters="\r\n"), max_size=30),
    algorithm=st.sampled_from(["rsa", "ed25519"]),
)
def test_any_message_signs_as_dkimpy_signs_its_wire_form(
    body: bytes, tail: bytes, subject: str, algorithm: str
) -> None:
    key = keys()[algorithm]
    signer = asmtp.DKIMSigner(domain=DOMAIN, selector="sel", private_key=key)
    message = b"From: a@example.org\nSubject: " + subject.encode() + b"\n\n" + body + tail
    wire = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    wire += b"" if wire.endswith(b"\r\n") else b"\r\n"
    with mock.patch.object(time, "time", return_value=NOW):
        ours = sign_bytes(signer, message)
        theirs = dkimpy_signature(wire, algorithm, key, [b"from", b"subject", b"from"])
        from_file = read_all(_signed_file(signer, message))
    assert ours == theirs + wire
    assert from_file == ours
    assert verify(ours, "sel", key)


def _signed_file(signer: asmtp.DKIMSigner, message: bytes) -> SignedFile:
    from asmtp._dkim._apply import _sign_file

    file = io.BytesIO(b"ignored prefix" + message)
    file.seek(len(b"ignored prefix"))  # signed and sent from where the file stood
    return _sign_file(signer, file)


@pytest.mark.parametrize(
    ("message", "what"),
    [
        (b"From: a@example.org", "no header/body separator, no line ending"),
        (b"From: a@example.org\r\n\r\n", "an empty body"),
        (b"Subject: x\nFrom: a@example.org\n\n" + b"line\n" * 100_000, "a body of many chunks"),
    ],
)
def test_a_file_is_sent_as_the_bytes_signed(message: bytes, what: str) -> None:
    signer = asmtp.DKIMSigner(domain=DOMAIN, selector="sel", private_key=rsa_key())
    with mock.patch.object(time, "time", return_value=NOW):
        assert read_all(_signed_file(signer, message)) == sign_bytes(signer, message), what
    assert verify(sign_bytes(signer, message), "sel", rsa_key())


def test_from_is_oversigned_and_headers_are_signed_as_often_as_present() -> None:
    signer = asmtp.DKIMSigner(domain=DOMAIN, selector="sel", private_key=rsa_key())
    signed = sign_bytes(
        signer, b"From: a@example.org\r\nTo: b@x\r\nTo: c@x\r\nX-Other: 1\r\n\r\nhi"
    )
    field = re.search(rb"h=([^;]*);", signed.replace(b"\r\n ", b" "))
    assert field is not None
    assert field[1].split(b" : ") == [b"from", b"to", b"to", b"from"]
    # Adding a From after signing breaks the signature (RFC 6376 §8.15).
    assert verify(signed, "sel", rsa_key())
    assert not verify(b"From: evil@example.com\r\n" + signed, "sel", rsa_key())


def test_choices_are_in_the_signature() -> None:
    signer = asmtp.DKIMSigner(
        domain="Example.ORG.",
        selector="s2026",
        private_key=ed25519_seed(ed25519_key()).decode(),
        headers=["From", "Subject"],
        oversign=["from", "subject"],
        canonicalization="simple/simple",
        identity="news@mail.example.org",
    )
    signed = sign_bytes(signer, b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n")
    header = signed.replace(b"\r\n ", b" ").split(b"\r\n")[0]
    for tag in (b"c=simple/simple", b"d=Example.ORG", b"s=s2026", b"i=news@mail.example.org"):
        assert tag in header
    assert b"h=from : subject : from : subject" in header


def test_a_message_without_from_is_refused() -> None:
    signer = asmtp.DKIMSigner(domain=DOMAIN, selector="sel", private_key=rsa_key())
    with pytest.raises(ValueError, match="no From field"):
        sign_bytes(signer, b"Subject: x\r\n\r\nbody\r\n")
    with pytest.raises(ValueError, match="line 1 of its header block is not a field"):
        sign_bytes(signer, b"not a header line\r\n\r\nbody\r\n")


# A key too short to sign with (cryptography refuses to make one).
RSA_512 = b"""-----BEGIN RSA PRIVATE KEY-----
MIIBOQIBAAJBAKamVa//B48HKChZfOgFLU18fYig+OPLh37nrYaRAwRErB6stWbD
nsr1jdrUbt9XNAR9lFyOvv/4RSK4RLDX3sUCAwEAAQJAdTzFQVg/4A4f4Sr7ZVrn
AQEYazsbfV3cx5mDCQ0ROzlV4xum328h07tMnCqgPYrsYbWiz9xdXTNu97Xg0qvz
LQIhAM7dHcO2gDegDFZ+rUZiR5g7dZeYS+/1QR7kRKncO+ofAiEAzjvnJAtH0kV5
Qig2kduyllLYYIEUa+uWyF3GOq9nIpsCIHubNEXVrxeN0tF8MB12bEFShhlnLzja
22aSD1VP+50RAiB4ad9uWyvHKQtAxmv+Q9GFFcACsLs0u+xg9ue78hf8ywIgVLPL
a/gtEiSOcX87l6PgnPus+CiOS4CiCRb5cg2nsDE=
-----END RSA PRIVATE KEY-----
"""
RSA_PUBLIC = (
    b"-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAL\n-----END PUBLIC KEY-----\n"
)


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"domain": 1}, TypeError, "domain must be a str"),
        ({"domain": "exa mple.org"}, ValueError, "not a valid domain name"),
        ({"domain": "-bad.org"}, ValueError, "not a valid domain name"),
        ({"selector": "a_b"}, ValueError, "selector 'a_b' is not a valid"),
        ({"private_key": 42}, TypeError, "private_key must be bytes or str"),
        ({"private_key": b"garbage"}, ValueError, "neither a PEM RSA"),
        ({"private_key": RSA_PUBLIC}, ValueError, "neither a PEM RSA"),
        ({"private_key": RSA_512}, ValueError, "512 bits; DKIM needs at least 1024"),
        (
            {
                "private_key": b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"
            },
            ValueError,
            "not a usable RSA private key",
        ),
        ({"headers": "from"}, TypeError, "sequence of header names"),
        ({"headers": ["subject"]}, ValueError, "must include 'from'"),
        ({"headers": ["from", "Received"]}, ValueError, "must not be signed"),
        ({"headers": ["from", "bad name"]}, ValueError, "not a header field name"),
        ({"oversign": ["bcc"]}, ValueError, "must not be signed"),
        ({"canonicalization": "relaxed"}, ValueError, "canonicalization must be one of"),
        ({"identity": "a@example.com"}, ValueError, "must be at example.org or a subdomain"),
        ({"identity": "no-at-sign"}, ValueError, "not \\[local-part\\]@domain"),
        ({"identity": "jösé@example.org"}, ValueError, "not \\[local-part\\]@domain"),
        ({"identity": b"@example.org"}, TypeError, "identity must be a str"),
    ],
)
def test_bad_settings_are_refused_at_construction(
    arguments: dict[str, Any], error: type[Exception], match: str
) -> None:
    settings = {"domain": DOMAIN, "selector": "sel", "private_key": rsa_key(), **arguments}
    with pytest.raises(error, match=match):
        asmtp.DKIMSigner(**settings)


@pytest.mark.parametrize("pkcs", ["PKCS1", "PKCS8"])
def test_rsa_keys_in_either_pem_format_and_as_str(pkcs: str) -> None:
    key = rsa_key(2048, pkcs) if pkcs == "PKCS1" else rsa_key()
    signer = asmtp.DKIMSigner(domain=DOMAIN, selector="sel", private_key=key.decode())
    assert verify(sign_bytes(signer, MESSAGE), "sel", key)


def test_the_key_is_not_in_the_repr() -> None:
    signer = asmtp.DKIMSigner(domain=DOMAIN, selector="sel", private_key=rsa_key())
    assert "PRIVATE" not in repr(signer)
    assert "example.org" in repr(signer)


def test_without_dkimpy_the_error_names_the_extra() -> None:
    with mock.patch.dict("sys.modules", {"dkim": None, "dkim.crypto": None}):
        with pytest.raises(ModuleNotFoundError, match=r"asmtp\[dkim\]"):
            asmtp.DKIMSigner(domain=DOMAIN, selector="sel", private_key=rsa_key())
