"""A throwaway certificate authority and a server certificate for the capture server.

trustme is imported when a certificate is first needed, so that servers without TLS need
only aiosmtpd.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["Certificates", "MissingExtra"]


class MissingExtra(ImportError):
    """An optional dependency of asmtp's test kit or command line is not installed."""

    def __init__(self, module: str) -> None:
        super().__init__(
            f"{module} is not installed: pip install 'asmtp[testing]' "
            "(the test kit) or 'asmtp[cli]' (the command line)"
        )


class Certificates:
    """A CA made for this server alone and a certificate it issued for ``names``."""

    def __init__(self, names: Iterable[str]) -> None:
        try:
            import trustme
        except ImportError as exc:
            raise MissingExtra("trustme (needed for TLS)") from exc
        self._ca: Any = trustme.CA()
        unique = dict.fromkeys(_without_brackets(name) for name in names)
        self._cert: Any = self._ca.issue_cert(*unique)

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM-encoded: what a client must trust."""
        pem: bytes = self._ca.cert_pem.bytes()
        return pem

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.ca_pem)
        return path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only, verifying host names."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context


def _without_brackets(name: str) -> str:
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare
