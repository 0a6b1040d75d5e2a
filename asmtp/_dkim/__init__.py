"""DKIM signing (RFC 6376) of outgoing messages: the setting, the body hash, the signing.

Imports nothing of the client: the client calls :func:`signed` on each message's final bytes.
"""

from ._apply import SignedFile, signed
from ._signer import DEFAULT_SIGNED_HEADERS, Canonicalization, DKIMSigner

__all__ = ["DEFAULT_SIGNED_HEADERS", "Canonicalization", "DKIMSigner", "SignedFile", "signed"]
