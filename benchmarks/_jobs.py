"""What is measured: message shapes, the job a worker process runs, and what it reports.

Jobs and measurements cross a process boundary as JSON, so they are plain dataclasses of
JSON types.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

__all__ = [
    "LOCAL_HOSTNAME",
    "SENDER",
    "SHAPES",
    "Job",
    "Layout",
    "Measurement",
    "Shape",
    "make_message",
    "recipients",
    "write_message_files",
]

SENDER: Final = "bench@example.org"
LOCAL_HOSTNAME: Final = "bench.localhost"
"""Every client says EHLO with this name, so none pays for a ``getfqdn()`` lookup."""

Kind = Literal["throughput", "roundtrip", "memory"]


@dataclass(frozen=True)
class Shape:
    """A message shape: total size in bytes, recipients, and messages per measurement."""

    key: str
    title: str
    size: int
    recipients: int
    count: int
    quick_count: int


SHAPES: Final = (
    Shape("1k", "1 KB message, 1 recipient", 1024, 1, 4000, 200),
    Shape("100k", "100 KB message, 1 recipient", 100 * 1024, 1, 1500, 60),
    Shape("1k-10rcpt", "1 KB message, 10 recipients", 1024, 10, 2500, 120),
)


def recipients(count: int) -> list[str]:
    """``count`` distinct recipient addresses."""
    return [f"rcpt{n}@example.com" for n in range(count)]


def make_message(size: int) -> bytes:
    """A plain-text message of exactly ``size`` bytes, CRLF line endings, no leading dots."""
    header = (
        f"From: <{SENDER}>\r\n"
        "To: <rcpt0@example.com>\r\n"
        "Subject: asmtp benchmark\r\n"
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        "Message-ID: <bench@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode("ascii")
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body_size = max(size - len(header), len(line))
    body = (line * (body_size // len(line) + 1))[: body_size - 2] + b"\r\n"
    return header + body


def write_message_files(directory: Path, size: int) -> tuple[Path, Path]:
    """Write the message twice: CRLF (for the Python clients) and LF (``smtp-source -F``,
    which appends CRLF to each line itself)."""
    message = make_message(size)
    crlf = directory / f"message-{size}.eml"
    lf = directory / f"message-{size}.lf"
    crlf.write_bytes(message)
    lf.write_bytes(message.replace(b"\r\n", b"\n"))
    return crlf, lf


@dataclass(frozen=True)
class Layout:
    """Where a worker process's objects land in memory: its hash seed and environment size.

    Both move a Python client's speed by a fifth to a third, in modes: the string hash seed
    (``PYTHONHASHSEED``) orders every dict and set, and the size of the environment shifts
    the stack and what is allocated after it. One fixed layout can put one client, or one
    commit, in its fast mode and another in its slow one. So each repetition runs every
    case at the same layout, a different one per repetition, and figures are means.
    """

    hash_seed: int
    padding: int
    """Bytes of filler in the worker's environment."""

    @classmethod
    def for_repetition(cls, number: int) -> Layout:
        """The layout of repetition ``number``: the same in every run."""
        return cls(hash_seed=number, padding=random.Random(number).randrange(4096))

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` with this layout's hash seed and padding added."""
        return {
            **base,
            "PYTHONHASHSEED": str(self.hash_seed),
            "ASMTP_BENCH_PADDING": "x" * self.padding,
        }


@dataclass(frozen=True)
class Job:
    """One measurement, run in a fresh worker process.

    ``client`` is asmtp, aiosmtplib, smtplib or smtp-source; ``mode`` how it is used
    (``single``, ``workers``, ``pool``, ``send``, ``threads``, ``sessions``); ``loop`` the
    event loop (asyncio, uvloop, trio; ``threads`` or ``C`` for the others).
    """

    kind: Kind
    client: str
    mode: str
    loop: str
    host: str
    port: int
    messages: int
    recipients: int
    message_file: str
    concurrency: int = 1
    source: str = "bytes"
    """Memory jobs: send the message as ``bytes`` or streamed from a ``file``."""
    probe: str = "rss"
    """Memory jobs: ``rss`` (``ru_maxrss``) or ``tracemalloc``."""
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


@dataclass(frozen=True)
class Measurement:
    """What a worker reports: wall seconds and client CPU seconds for ``messages``.

    Memory jobs also report ``growth`` (bytes above the baseline at the peak) and
    ``size`` (the message size).
    """

    elapsed: float
    cpu: float
    messages: int
    growth: int = 0
    size: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cpu_per_message(self) -> float:
        """Client CPU seconds per message."""
        return self.cpu / self.messages if self.messages else 0.0
