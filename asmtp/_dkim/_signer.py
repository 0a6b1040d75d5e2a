"""The public DKIM signing setting: domain, selector, key and choices, checked once.

:class:`DKIMSigner` validates everything when it is built (a bad key or selector fails at
start-up, not on the first send) and makes the ``DKIM-Signature`` field for a header block
and a body hash computed elsewhere (``_body``), so that a body streamed from a file never
has to be in memory. dkimpy (the ``asmtp[dkim]`` extra) does the header canonicalization,
the folding and the RSA and Ed25519 signatures. Performs no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from ._body import BodyHash

__all__ = ["DEFAULT_SIGNED_HEADERS", "Canonicalization", "DKIMSigner"]

Canonicalization = Literal["relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple"]
"""The ``c=`` tag: header canonicalization / body canonicalization (RFC 6376 §3.4)."""

DEFAULT_SIGNED_HEADERS: Final = (
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "in-reply-to",
    "references",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
"""RFC 6376 §5.4.1's list of fields to sign, less the Resent-* and rarer List-* ones, plus
List-Unsubscribe-Post (RFC 8058 §4 requires it signed)."""

# RFC 6376 §5.4.1: fields a relay adds or removes; signing them breaks the signature.
_NEVER_SIGNED: Final = frozenset(
    {"return-path", "received", "comments", "keywords", "bcc", "resent-bcc", "dkim-signature"}
)
# RFC 6376 §3.1: selector = sub-domain *( "." sub-domain ), as in RFC 5321 §4.1.2.
_LABELS: Final = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
# RFC 5322 §3.6.8: field-name = 1*ftext.
_FIELD_NAME: Final = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_FIELD_START: Final = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_PEM: Final = re.compile(rb"-----BEGIN ([A-Z ]+)-----\s+(.*?)\s+-----END \1-----", re.DOTALL)
# RFC 8410 §7: a PKCS#8 Ed25519 private key is this DER prefix and the 32-byte seed.
_ED25519_PKCS8_PREFIX: Final = bytes.fromhex("302e020100300506032b657004220420")
_MIN_RSA_BITS: Final = 1024  # RFC 8301 §3.2: verifiers need not accept less
_TRIAL_MESSAGE: Final = b"From: check@example.org\r\n"


@dataclass(frozen=True)
class DKIMSigner:
    """Sign every message a client sends with DKIM (RFC 6376), for relays that do not.

    ``private_key`` is a PEM RSA key (PKCS#1 or PKCS#8, at least 1024 bits; 2048 is the
    usual size) or an Ed25519 key (PKCS#8 PEM, or the base64 seed ``dknewkey`` writes); it
    selects ``rsa-sha256`` or ``ed25519-sha256`` (RFC 8463). The public key is published at
    ``<selector>._domainkey.<domain>``.

    ``headers`` are the fields signed, each as many times as the message has it;
    ``oversign`` are signed once more, so that none can be added after signing (``From`` by
    default, RFC 6376 §8.15). ``identity`` is the ``i=`` tag (default ``@domain``).

    Needs the ``asmtp[dkim]`` extra. Raises :class:`TypeError` for an argument of the wrong
    type, :class:`ValueError` for a domain, selector, identity or header name that is not
    valid, or a key that cannot sign, and :class:`ModuleNotFoundError` without dkimpy (or
    PyNaCl, for an Ed25519 key).
    """

    domain: str
    selector: str
    private_key: bytes | str = field(repr=False)
    headers: Sequence[str] = DEFAULT_SIGNED_HEADERS
    oversign: Sequence[str] = ("from",)
    canonicalization: Canonicalization = "relaxed/relaxed"
    identity: str | None = None
    _key: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        domain = _checked_name("domain", self.domain)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "selector", _checked_name("selector", self.selector))
        if not isinstance(self.private_key, (bytes, str)):
            raise TypeError(
                f"private_key must be bytes or str, not {type(self.private_key).__name__}"
            )
        for name in ("headers", "oversign"):
            object.__setattr__(self, name, _checked_fields(name, getattr(self, name)))
        if "from" not in self.headers:
            raise ValueError("headers must include 'from' (RFC 6376 §5.4)")
        if self.canonicalization not in get_args(Canonicalization):
            choices = ", ".join(map(repr, get_args(Canonicalization)))
            raise ValueError(
                f"canonicalization must be one of {choices}, not {self.canonicalization!r}"
            )
        if self.identity is not None:
            _check_identity(self.identity, domain)
        object.__setattr__(self, "_key", _load_key(self.private_key))
        self.sign_header_block(_TRIAL_MESSAGE, self.body_hash().digest())  # a key that cannot sign

    @property
    def algorithm(self) -> str:
        """The ``a=`` tag the key gives: ``"rsa-sha256"`` or ``"ed25519-sha256"``."""
        return "ed25519-sha256" if isinstance(self._key, bytes) else "rsa-sha256"

    def body_hash(self) -> BodyHash:
        """A fresh hasher for a body under this signer's body canonicalization."""
        return BodyHash(relaxed=self.canonicalization.endswith("/relaxed"))

    def sign_header_block(self, header_block: bytes, body_hash: bytes) -> bytes:
        """The ``DKIM-Signature`` field (CRLF-terminated, folded) for a message whose header
        block (CRLF line endings, without the empty line) is ``header_block`` and whose
        canonical body hashes to ``body_hash``.

        Raises :class:`ValueError` when the header block has no ``From`` field or a line
        that is not a field.
        """
        import dkim  # the asmtp[dkim] extra, checked when the signer was built
        from dkim.canonicalization import CanonicalizationPolicy

        _check_header_block(header_block)
        algorithm = self.algorithm.encode("ascii")
        message = dkim.DKIM(header_block + b"\r\n", signature_algorithm=algorithm)
        names = [name.lower().decode("ascii", "replace") for name, _ in message.headers]
        if "from" not in names:
            raise ValueError("the message has no From field, which DKIM must sign (RFC 6376 §5.4)")
        include = [name for name in self.headers for _ in range(names.count(name))]
        include += self.oversign
        signed = tuple(name.encode("ascii") for name in include)
        domain = self.domain.encode("ascii")
        canonicalization = self.canonicalization.encode("ascii")
        # The tags in dkimpy's own order, so that its signature of a whole message and ours
        # of the same message are the same bytes.
        fields = [
            (b"v", b"1"),
            (b"a", algorithm),
            (b"c", canonicalization),
            (b"d", domain),
            (b"i", (self.identity or f"@{self.domain}").encode("ascii")),
            (b"q", b"dns/txt"),
            (b"s", self.selector.encode("ascii")),
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(signed)),
            (b"bh", base64.b64encode(body_hash)),
            (b"b", b"0" * 60),  # dkimpy's placeholder: b= then folds onto its own line
        ]
        message.hasher = dkim.HASH_ALGORITHMS[algorithm]
        policy = CanonicalizationPolicy.from_c_value(canonicalization)
        key = self._key
        if isinstance(key, bytes):
            import nacl.signing

            key = nacl.signing.SigningKey(key)
        value = message.gen_header(fields, signed, policy, b"DKIM-Signature", key)
        return b"DKIM-Signature: " + bytes(value)


def _check_header_block(header_block: bytes) -> None:
    """Each line starts a field or folds one (RFC 5322 §2.2), as dkimpy's parser needs."""
    for number, line in enumerate(header_block.split(b"\r\n")[:-1], 1):
        if not (_FIELD_START.match(line) or (number > 1 and line[:1] in (b" ", b"\t"))):
            raise ValueError(
                f"the message cannot be DKIM-signed: line {number} of its header block is "
                f"not a field: {line[:60]!r}"
            )


def _checked_name(name: str, value: object) -> str:
    """A domain or selector as ASCII labels (an internationalized name as its A-labels)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    text = value.rstrip(".")
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{name} {value!r} is not a valid domain name") from None
    if not _LABELS.fullmatch(text) or any(len(label) > 63 for label in text.split(".")):
        raise ValueError(f"{name} {value!r} is not a valid domain name (RFC 6376 §3.1)")
    return text


def _checked_fields(name: str, value: object) -> tuple[str, ...]:
    """Header field names, lower-cased; none a relay changes (RFC 6376 §5.4.1)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of header names, not {type(value).__name__}")
    fields: list[str] = []
    for each in value:
        if not isinstance(each, str) or not _FIELD_NAME.fullmatch(each):
            raise ValueError(f"{name}: {each!r} is not a header field name (RFC 5322 §3.6.8)")
        if each.lower() in _NEVER_SIGNED:
            raise ValueError(
                f"{name}: {each!r} is changed in transit and must not be signed (RFC 6376 §5.4.1)"
            )
        fields.append(each.lower())
    return tuple(fields)


def _check_identity(identity: object, domain: str) -> None:
    """RFC 6376 §3.5: ``i=`` is ``[local-part] "@" domain``, the domain ``d=`` or below it."""
    if not isinstance(identity, str):
        raise TypeError(f"identity must be a str or None, not {type(identity).__name__}")
    local, at, where = identity.rpartition("@")
    where = where.lower()
    # ASCII only: the signature field must not need SMTPUTF8 of its own.
    bad_local = not local.isascii() or any(c in local for c in " \t\r\n;=")
    if not at or bad_local or not _LABELS.fullmatch(where):
        raise ValueError(f"identity {identity!r} is not [local-part]@domain (RFC 6376 §3.5)")
    if where != domain.lower() and not where.endswith("." + domain.lower()):
        raise ValueError(f"identity {identity!r} must be at {domain} or a subdomain of it")


def _load_key(private_key: bytes | str) -> object:
    """The key as dkimpy signs with it: an RSA key (its parsed form) or an Ed25519 seed."""
    try:
        import dkim.crypto
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "DKIM signing needs dkimpy: pip install 'asmtp[dkim]'", name="dkim"
        ) from None
    data = private_key.encode("ascii", "replace") if isinstance(private_key, str) else private_key
    data = data.replace(b"\r\n", b"\n").strip()
    pem = _PEM.search(data)
    try:
        der = base64.b64decode(pem.group(2) if pem else data, validate=pem is None)
    except (binascii.Error, ValueError):
        der = b""
    if pem is None and len(der) == 32:
        return _ed25519(der)
    if pem is not None and len(der) == 48 and der.startswith(_ED25519_PKCS8_PREFIX):
        return _ed25519(der[len(_ED25519_PKCS8_PREFIX) :])
    if pem is None or "PUBLIC" in pem.group(1).decode("ascii"):
        raise ValueError(
            "private_key is neither a PEM RSA or Ed25519 private key nor a base64 Ed25519 seed"
        )
    try:
        key = dkim.crypto.parse_pem_private_key(data)
    except dkim.crypto.UnparsableKeyError as exc:
        raise ValueError(f"private_key is not a usable RSA private key: {exc}") from None
    bits = int(key["modulus"]).bit_length()
    if bits < _MIN_RSA_BITS:
        raise ValueError(f"the RSA key has {bits} bits; DKIM needs at least 1024 (RFC 8301 §3.2)")
    return key


def _ed25519(seed: bytes) -> bytes:
    """An Ed25519 seed, once PyNaCl (which dkimpy signs with) is known to be there."""
    try:
        import nacl.signing  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "Ed25519 DKIM keys need PyNaCl: pip install 'asmtp[dkim]'", name="nacl"
        ) from None
    return seed
