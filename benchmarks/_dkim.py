"""DKIM signing cost: ``python benchmarks/run.py dkim [--quick]``.

For bodies of growing size, the median time asmtp takes to sign a message in memory (its
own incremental body hash, dkimpy signing the header block) beside dkimpy's ``DKIM.sign``
of the same message, for RSA-2048 and Ed25519; then a file signed by the two-pass path,
with its peak Python memory (tracemalloc) against the file's size. These figures decide
which messages are signed on the event loop and which in a worker thread
(``asmtp._dkim._apply.IN_LOOP_LIMIT``).
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from asmtp import DKIMSigner
from asmtp._dkim._apply import _sign_file, sign_bytes

_HEAD = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: benchmark\r\n\r\n"


def _keys() -> dict[str, tuple[bytes, bytes]]:
    """name -> (PEM for asmtp, key as dkimpy's sign takes it)."""
    none, pem = serialization.NoEncryption(), serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    rsa_pem = rsa.generate_private_key(65537, 2048).private_bytes(pem, pkcs8, none)
    ed = ed25519.Ed25519PrivateKey.generate()
    raw = ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, none)
    return {
        "rsa-sha256": (rsa_pem, rsa_pem),
        "ed25519-sha256": (ed.private_bytes(pem, pkcs8, none), base64.b64encode(raw)),
    }


def _body(size: int) -> bytes:
    """Base64-like text lines of 76 characters, as attachments are sent."""
    rng = random.Random(size)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    line = bytes(rng.choice(alphabet) for _ in range(76)) + b"\r\n"
    return line * (size // len(line) + 1)


def _median(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args(argv)
    sizes = [10_000, 256_000, 1_000_000] if args.quick else [10_000, 256_000, 1_000_000, 10_000_000]
    repeat = 3 if args.quick else 7
    keys = _keys()
    print("| algorithm | body | asmtp (ms) | dkimpy sign (ms) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, (ours, theirs) in keys.items():
        signer = DKIMSigner(domain="example.org", selector="s", private_key=ours)
        for size in sizes:
            message = _HEAD + _body(size)
            mine = _median(lambda: sign_bytes(signer, message), repeat)  # noqa: B023
            reference = _median(
                lambda: dkim.DKIM(message).sign(  # noqa: B023
                    b"s",
                    b"example.org",
                    theirs,  # noqa: B023
                    signature_algorithm=name.encode(),  # noqa: B023
                    canonicalize=(b"relaxed", b"relaxed"),
                ),
                repeat,
            )
            print(
                f"| {name} | {size / 1e6:g} MB | {mine * 1e3:.1f} | {reference * 1e3:.1f} "
                f"| {reference / mine:.2f} |"
            )
    signer = DKIMSigner(domain="example.org", selector="s", private_key=keys["rsa-sha256"][0])
    print("\n| file | two-pass sign (ms) | MB/s | peak Python memory |")
    print("|---:|---:|---:|---:|")
    for size in [10_000_000] if args.quick else [10_000_000, 100_000_000]:
        with tempfile.TemporaryFile() as file:
            body = _body(1_000_000)
            file.write(_HEAD)
            for _ in range(size // len(body)):
                file.write(body)
            file.seek(0)
            tracemalloc.start()
            began = time.perf_counter()
            signed = _sign_file(signer, file)
            while signed.read(256 * 1024):
                pass
            took = time.perf_counter() - began
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        print(
            f"| {size / 1e6:g} MB | {took * 1e3:.0f} | {size / took / 1e6:.0f} | {peak / 1e6:.1f} MB |"
        )
    return 0
