"""OpenDKIM as the verifying milter of Postfix's ``dkim_port``, with keys made for the run.

The chain a test exercises::

    asmtp (signs) --SMTP--> Postfix (dkim_port) --milter--> OpenDKIM (Mode v)
          --> Maildir, with "Authentication-Results: mx.example.test; dkim=pass ..."

No DNS is asked: OpenDKIM reads the public keys from the file named by ``TestPublicKeys``
(opendkim.conf(5): "Names a file from which public keys should be read"), one line per key,
``<selector>._domainkey.<domain> <TXT record>``. :class:`TestKeys` makes an RSA and an
Ed25519 key pair for ``example.test`` and writes that file; OpenDKIM 2.11 verifies both
``rsa-sha256`` and ``ed25519-sha256`` (``opendkim -V`` lists them). Installed with apt on
first use; runs in the foreground as root, stopped by its PID.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from interop import _daemon, _debs
from interop._daemon import StartError, Unavailable

__all__ = ["OpenDKIM", "TestKeys", "start", "stop"]

OPENDKIM: Final = "/usr/sbin/opendkim"
PACKAGES: Final = ("opendkim",)
AUTHSERV_ID: Final = "mx.example.test"
STARTUP_BUDGET: Final = 30.0
STOP_BUDGET: Final = 10.0
RSA_SELECTOR: Final = "rsa"
ED25519_SELECTOR: Final = "ed"


@dataclasses.dataclass(frozen=True)
class TestKeys:
    """Private keys (PEM) for ``domain``, and the TXT records publishing their halves."""

    domain: str
    rsa_pem: bytes
    ed25519_pem: bytes

    @classmethod
    def generate(cls, domain: str) -> TestKeys:
        pkcs8 = serialization.PrivateFormat.PKCS8
        none = serialization.NoEncryption()
        pem = serialization.Encoding.PEM
        return cls(
            domain,
            rsa.generate_private_key(65537, 2048).private_bytes(pem, pkcs8, none),
            ed25519.Ed25519PrivateKey.generate().private_bytes(pem, pkcs8, none),
        )

    def records(self) -> dict[str, str]:
        """``<selector>._domainkey.<domain>`` -> its TXT record (RFC 6376 §3.6.1, RFC 8463 §4)."""
        rsa_key = serialization.load_pem_private_key(self.rsa_pem, None)
        ed_key = serialization.load_pem_private_key(self.ed25519_pem, None)
        assert isinstance(rsa_key, rsa.RSAPrivateKey)
        assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
        rsa_public = rsa_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        ed_public = ed_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {
            f"{RSA_SELECTOR}._domainkey.{self.domain}": (
                f"v=DKIM1; k=rsa; p={base64.b64encode(rsa_public).decode()}"
            ),
            f"{ED25519_SELECTOR}._domainkey.{self.domain}": (
                f"v=DKIM1; k=ed25519; p={base64.b64encode(ed_public).decode()}"
            ),
        }


@dataclasses.dataclass(frozen=True)
class OpenDKIM:
    """The running milter: its socket, keys, PID and log."""

    state_dir: str
    socket: str
    keys: TestKeys
    pid: int
    log: str
    startup_seconds: float


def _conf(socket: Path, keys_file: Path) -> str:
    return f"""\
# OpenDKIM verifying for asmtp's interop tests (_opendkim.py): no DNS, no signing.
Mode v
Socket local:{socket}
UMask 000
Syslog no
Background no
AuthservID {AUTHSERV_ID}
AlwaysAddARHeader yes
TestPublicKeys {keys_file}
"""


def start(socket: str, domain: str, log: Callable[[str], None] = print) -> OpenDKIM:
    """Install OpenDKIM if needed and start it on ``socket`` (whose directory it owns).

    Raises :class:`Unavailable` when this host cannot run it and :class:`StartError`,
    holding its log, when its socket does not appear in time.
    """
    _daemon.check_root("OpenDKIM")
    began = time.monotonic()
    installed = _debs.install(PACKAGES, log)
    if installed:
        log(f"installed {' '.join(installed)} in {time.monotonic() - began:.1f} s")
    if not Path(OPENDKIM).exists():
        raise Unavailable(f"{OPENDKIM} is missing after installing {' '.join(PACKAGES)}")
    home = Path(socket).parent
    home.mkdir(mode=0o755, exist_ok=True)
    keys = TestKeys.generate(domain)
    keys_file = home / "public-keys"
    _daemon.write(keys_file, "".join(f"{name} {txt}\n" for name, txt in keys.records().items()))
    config = home / "opendkim.conf"
    _daemon.write(config, _conf(Path(socket), keys_file))
    log_file = home / "opendkim.log"
    pid = _daemon.spawn([OPENDKIM, "-f", "-v", "-x", str(config)], log_file)
    milter = OpenDKIM(str(home), socket, keys, pid, str(log_file), 0.0)
    deadline = began + STARTUP_BUDGET
    while not Path(socket).is_socket():
        if time.monotonic() > deadline or not _daemon.alive(pid, "opendkim"):
            stop(milter, log)
            report = _daemon.logs_report({"opendkim": str(log_file)})
            raise StartError(f"OpenDKIM did not open {socket}\n{report}")
        time.sleep(0.02)
    milter = dataclasses.replace(milter, startup_seconds=round(time.monotonic() - began, 3))
    log(f"opendkim started in {milter.startup_seconds:.2f} s on {socket}")
    return milter


def stop(milter: OpenDKIM, log: Callable[[str], None] = print) -> None:
    """Stop the milter by its PID."""
    _daemon.terminate(milter.pid, "opendkim", STOP_BUDGET, log)
