"""Upload progress (``on_progress``): DATA and BDAT, bodies in memory, in files and streamed.

aiosmtpd receives the DATA bodies; BDAT (which aiosmtpd lacks) goes to scripted servers
that check every byte. Each test checks the exact calls: a bar sees the body's size when
it is known, at most one call per 64 KiB, and a last call with ``sent == total``.
"""

from __future__ import annotations

import email.message
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import asmtp
from support.aiosmtpd_server import RecordingHandler
from support.steps import ExpectBytes, ExpectLine, smtp_script

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory, SMTPDServerFactory

pytestmark = pytest.mark.anyio

SENDER, RECIPIENT = "a@progress.test", "b@progress.test"
LINE = b"x" * 510 + b"\r\n"  # a chunk of 256 KiB ends at the end of a line
BODY = LINE * 1200  # 600 KiB: two whole chunks and a part
CHUNK = 256 * 1024
CALLS_IN_MEMORY = [(CHUNK, len(BODY)), (2 * CHUNK, len(BODY)), (len(BODY), len(BODY))]

Calls = list[tuple[int, "int | None"]]


def recorder() -> tuple[Calls, Callable[[int, int | None], None]]:
    calls: Calls = []
    return calls, lambda sent, total: calls.append((sent, total))


async def _pieces(count: int, size: int) -> AsyncIterator[bytes]:
    """``count`` pieces of ``size`` bytes (a multiple of 500), in lines of 500 bytes."""
    for _ in range(count):
        yield (b"y" * 498 + b"\r\n") * (size // 500)


def _check_streamed(calls: Calls, total: int) -> None:
    """Bounded and monotonic: the size unknown until the end, then ``(total, total)``."""
    assert calls[-1] == (total, total)
    assert all(known is None for _, known in calls[:-1])
    sent = [0] + [each for each, _ in calls]
    assert all(later - earlier >= 64 * 1024 for earlier, later in itertools.pairwise(sent[:-1]))
    assert len(calls) <= total // (64 * 1024) + 1


async def _smtp_sendmail(port: int, msg: object, on_progress: Any) -> None:
    async with asmtp.SMTP("127.0.0.1", port, timeout=5) as smtp:
        await smtp.sendmail(SENDER, RECIPIENT, msg, on_progress=on_progress)


async def _oneshot_sendmail(port: int, msg: object, on_progress: Any) -> None:
    await asmtp.sendmail(
        SENDER, RECIPIENT, msg, host="127.0.0.1", port=port, tls="none", on_progress=on_progress
    )


async def _pool_sendmail(port: int, msg: object, on_progress: Any) -> None:
    async with asmtp.SMTPPool("127.0.0.1", port, tls="none", timeout=5) as pool:
        await pool.sendmail(SENDER, RECIPIENT, msg, on_progress=on_progress)


SENDS = {"SMTP": _smtp_sendmail, "one-shot": _oneshot_sendmail, "pool": _pool_sendmail}


@pytest.mark.parametrize("send", SENDS.values(), ids=SENDS.keys())
async def test_data_body_in_memory_reports_each_chunk_then_the_whole(
    smtpd_server_factory: SMTPDServerFactory, send: Any
) -> None:
    server = smtpd_server_factory(RecordingHandler(advertise_pipelining=True))
    calls, on_progress = recorder()
    await send(server.port, BODY, on_progress)
    assert calls == CALLS_IN_MEMORY
    assert server.handler.deliveries[0].content == BODY


async def test_a_small_message_gets_one_call(smtpd_server_factory: SMTPDServerFactory) -> None:
    server = smtpd_server_factory(RecordingHandler())
    calls, on_progress = recorder()
    await _smtp_sendmail(server.port, b"Subject: small\r\n\r\nhi\r\n", on_progress)
    assert calls == [(22, 22)]


async def test_send_message_reports_the_flattened_size(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler())
    message = email.message.EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, RECIPIENT, "big"
    message.set_content("y" * 300_000)
    calls, on_progress = recorder()
    async with asmtp.SMTP("127.0.0.1", server.port, timeout=5) as smtp:
        await smtp.send_message(message, on_progress=on_progress)
    size = len(server.handler.deliveries[0].content)
    assert calls[0][1] == calls[-1][1] == calls[-1][0]
    assert len(calls) == 2 and calls[0][0] == CHUNK
    assert calls[-1][0] == size


async def test_data_body_streamed_is_reported_at_most_every_64_kib(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler())
    calls, on_progress = recorder()
    await _smtp_sendmail(server.port, _pieces(300, 1000), on_progress)
    _check_streamed(calls, 300_000)
    assert len(calls) == 5  # every 66 pieces of 1000 bytes, then the end
    assert len(server.handler.deliveries[0].content) == 300_000


async def test_a_file_body_reports_its_size(
    smtpd_server_factory: SMTPDServerFactory, tmp_path: Path
) -> None:
    server = smtpd_server_factory(RecordingHandler())
    path = tmp_path / "message.eml"
    path.write_bytes(BODY)
    calls, on_progress = recorder()
    with path.open("rb") as file:
        await _smtp_sendmail(server.port, file, on_progress)
    assert calls == CALLS_IN_MEMORY


def _bdat_script(sizes: list[int]) -> Iterator[tuple[Any, bytes]]:
    """Lock-step BDAT of chunks of ``sizes``, the last marked LAST."""
    yield ExpectLine(b"EHLO"), b"250-scripted.test\r\n250 CHUNKING\r\n"
    yield ExpectLine(b"MAIL"), b"250 ok\r\n"
    yield ExpectLine(b"RCPT"), b"250 ok\r\n"
    for index, size in enumerate(sizes):
        last = b" LAST" if index == len(sizes) - 1 else b""
        yield ExpectBytes(len(b"BDAT %d%s\r\n" % (size, last)) + size), b"250 ok\r\n"
    yield ExpectLine(b"QUIT"), b"221 bye\r\n"


@pytest.mark.parametrize("streamed", [False, True], ids=["in-memory", "streamed"])
async def test_bdat_reports_each_chunk_once_written(
    memory_server_factory: MemoryServerFactory, streamed: bool
) -> None:
    """The core holds a chunk until it knows whether it is the last: each is counted once
    it is written, not when it is handed over."""
    sizes = [CHUNK, CHUNK, len(BODY) - 2 * CHUNK] if not streamed else [200_000] * 3
    server = memory_server_factory(smtp_script(_bdat_script(sizes)))
    calls, on_progress = recorder()
    msg = BODY if not streamed else _pieces(3, 200_000)
    async with asmtp.SMTP(server.host, server.port, timeout=5, connector=server.connector) as smtp:
        await smtp.sendmail(SENDER, RECIPIENT, msg, on_progress=on_progress)
    server.check()
    if streamed:
        assert calls == [(200_000, None), (400_000, None), (600_000, 600_000)]
    else:
        assert calls == CALLS_IN_MEMORY
