"""The clients under test, each driven the way its users would drive it.

Every function sends ``Workload.messages`` copies of one message and checks that no
recipient was refused. Timing and CPU accounting wrap them in :mod:`benchmarks._worker`,
except for ``smtp-source``, a child process measured here with ``RUSAGE_CHILDREN``.
"""

from __future__ import annotations

import asyncio
import resource
import smtplib
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiosmtplib
import anyio

import asmtp

from ._jobs import LOCAL_HOSTNAME, SENDER, Job, Measurement
from ._servers import postfix_tool

__all__ = [
    "ASYNC_CLIENTS",
    "SYNC_CLIENTS",
    "WorkCounter",
    "Workload",
    "smtp_source",
]

_SOURCE_TIMEOUT: Final = 300.0
_BATCH: Final = 100
"""Messages per ``sendmail_many`` call in the batched single-connection case."""


@dataclass(frozen=True)
class Workload:
    """What to send, where, how many times, and over how many connections."""

    host: str
    port: int
    payload: bytes
    recipients: list[str]
    messages: int
    concurrency: int = 1


class WorkCounter:
    """The shared queue of (identical) messages that worker tasks pull from."""

    def __init__(self, messages: int) -> None:
        self._left = messages
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Claim the next message; False once all are claimed. Cheap for tasks."""
        if self._left <= 0:
            return False
        self._left -= 1
        return True

    def take_threadsafe(self) -> bool:
        """:meth:`take` for threads."""
        with self._lock:
            return self.take()


def _refused(result: Mapping[str, object]) -> None:
    if result:
        raise RuntimeError(f"recipients refused: {dict(result)!r}")


# -- asmtp (asyncio, uvloop and trio through anyio) ------------------------------------------


def _asmtp_client(w: Workload) -> asmtp.SMTP:
    return asmtp.SMTP(w.host, w.port, local_hostname=LOCAL_HOSTNAME)


async def asmtp_single(w: Workload) -> None:
    async with _asmtp_client(w) as smtp:
        for _ in range(w.messages):
            _refused(await smtp.sendmail(SENDER, w.recipients, w.payload))


async def asmtp_workers(w: Workload) -> None:
    work = WorkCounter(w.messages)

    async def worker() -> None:
        async with _asmtp_client(w) as smtp:
            while work.take():
                _refused(await smtp.sendmail(SENDER, w.recipients, w.payload))

    async with anyio.create_task_group() as group:
        for _ in range(w.concurrency):
            group.start_soon(worker)


async def asmtp_batched(w: Workload) -> None:
    """One connection, ``sendmail_many`` in batches: each MAIL rides with the previous end."""
    item = asmtp.Outgoing(SENDER, w.recipients, w.payload)
    async with _asmtp_client(w) as smtp:
        left = w.messages
        while left:
            count = min(left, _BATCH)
            for result in await smtp.sendmail_many([item] * count):
                if isinstance(result, Exception):
                    raise result
                _refused(result)
            left -= count


async def asmtp_pool(w: Workload) -> None:
    """One task per message, as a web app or a mailing loop would, over ``SMTPPool``.

    The tasks are the event loop's own, as a web server's request tasks are: under
    asyncio (and uvloop) ``asyncio.gather``, exactly as ``aiosmtplib_send`` spawns its
    tasks; under trio an anyio task group.
    """
    async with asmtp.SMTPPool(
        w.host,
        w.port,
        tls="none",
        local_hostname=LOCAL_HOSTNAME,
        max_connections=w.concurrency,
    ) as pool:

        async def send_one() -> None:
            _refused(await pool.sendmail(SENDER, w.recipients, w.payload))

        if _on_asyncio():
            await asyncio.gather(*(send_one() for _ in range(w.messages)))
            return
        async with anyio.create_task_group() as group:
            for _ in range(w.messages):
                group.start_soon(send_one)


async def asmtp_send(w: Workload) -> None:
    """``asmtp.sendmail()`` (a connection per message), ``concurrency`` at a time, as
    ``aiosmtplib_send`` runs aiosmtplib's one-shot ``send()``: under asyncio the same
    ``asyncio.Semaphore`` (anyio's checkpoints twice per acquire, harness cost that would
    count against asmtp only)."""
    on_asyncio = _on_asyncio()
    limit = asyncio.Semaphore(w.concurrency) if on_asyncio else anyio.Semaphore(w.concurrency)

    async def send_one() -> None:
        async with limit:
            _refused(
                await asmtp.sendmail(
                    SENDER,
                    w.recipients,
                    w.payload,
                    host=w.host,
                    port=w.port,
                    tls="none",
                    local_hostname=LOCAL_HOSTNAME,
                )
            )

    if on_asyncio:
        await asyncio.gather(*(send_one() for _ in range(w.messages)))
        return
    async with anyio.create_task_group() as group:
        for _ in range(w.messages):
            group.start_soon(send_one)


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# -- aiosmtplib (asyncio and uvloop) -----------------------------------------------------


def _aiosmtplib_client(w: Workload) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=w.host, port=w.port, local_hostname=LOCAL_HOSTNAME, start_tls=False
    )


async def aiosmtplib_single(w: Workload) -> None:
    async with _aiosmtplib_client(w) as smtp:
        for _ in range(w.messages):
            errors, _ = await smtp.sendmail(SENDER, w.recipients, w.payload)
            _refused(errors)


async def aiosmtplib_workers(w: Workload) -> None:
    work = WorkCounter(w.messages)

    async def worker() -> None:
        async with _aiosmtplib_client(w) as smtp:
            while work.take():
                errors, _ = await smtp.sendmail(SENDER, w.recipients, w.payload)
                _refused(errors)

    await asyncio.gather(*(worker() for _ in range(w.concurrency)))


async def aiosmtplib_send(w: Workload) -> None:
    """``aiosmtplib.send()`` (a connection per message), ``concurrency`` at a time."""
    semaphore = asyncio.Semaphore(w.concurrency)

    async def send_one() -> None:
        async with semaphore:
            errors, _ = await aiosmtplib.send(
                w.payload,
                sender=SENDER,
                recipients=w.recipients,
                hostname=w.host,
                port=w.port,
                local_hostname=LOCAL_HOSTNAME,
                start_tls=False,
            )
            _refused(errors)

    await asyncio.gather(*(send_one() for _ in range(w.messages)))


# -- a raw asyncio client: the Python floor ------------------------------------------------


class _RawProtocol(asyncio.Protocol):
    """Just enough SMTP for smtp-sink: counts reply lines, wakes the sender per step."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.want = 0
        self.got: list[bytes] = []
        self.ready: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line[3:4] != b"-":  # the last line of a reply
                self.got.append(line[:3])
        if len(self.got) >= self.want and self.ready is not None and not self.ready.done():
            self.ready.set_result(None)

    async def replies(self, count: int) -> list[bytes]:
        self.want = count
        if len(self.got) < count:
            self.ready = asyncio.get_running_loop().create_future()
            await self.ready
        got, self.got = self.got[:count], self.got[count:]
        return got


async def raw_workers(w: Workload) -> None:
    """A minimal pipelined SMTP client on asyncio's protocols: MAIL, RCPTs and DATA in one
    write, the dot-stuffed body in a second; no checks beyond the reply codes. What any
    asyncio client must spend at least, to compare asmtp's overhead with."""
    work = WorkCounter(w.messages)
    body = w.payload.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n"
    envelope = (
        f"MAIL FROM:<{SENDER}>\r\n".encode()
        + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in w.recipients)
        + b"DATA\r\n"
    )
    loop = asyncio.get_running_loop()

    async def worker() -> None:
        transport, protocol = await loop.create_connection(_RawProtocol, w.host, w.port)
        assert transport is not None
        await protocol.replies(1)
        transport.write(f"EHLO {LOCAL_HOSTNAME}\r\n".encode())
        await protocol.replies(1)
        while work.take():
            transport.write(envelope)
            codes = await protocol.replies(2 + len(w.recipients))
            if codes[-1] != b"354":
                raise RuntimeError(f"refused: {codes!r}")
            transport.write(body)
            if (await protocol.replies(1))[0] != b"250":
                raise RuntimeError("message refused")
        transport.write(b"QUIT\r\n")
        await protocol.replies(1)
        transport.close()

    await asyncio.gather(*(worker() for _ in range(w.concurrency)))


# -- smtplib (threads) -----------------------------------------------------------------------


def smtplib_single(w: Workload) -> None:
    with smtplib.SMTP(w.host, w.port, local_hostname=LOCAL_HOSTNAME) as smtp:
        for _ in range(w.messages):
            _refused(smtp.sendmail(SENDER, w.recipients, w.payload))


def smtplib_threads(w: Workload) -> None:
    work = WorkCounter(w.messages)
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            with smtplib.SMTP(w.host, w.port, local_hostname=LOCAL_HOSTNAME) as smtp:
                while work.take_threadsafe():
                    _refused(smtp.sendmail(SENDER, w.recipients, w.payload))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(w.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


# -- Postfix smtp-source (C), the ceiling ---------------------------------------------------


def smtp_source(job: Job) -> Measurement:
    """``smtp-source -d``: ``concurrency`` sessions, each reusing its connection.

    It sends the same message file (``-F``; it appends CRLF to each line itself) with the
    same number of recipients. Its CPU time is the children's rusage delta.
    """
    tool = postfix_tool("smtp-source")
    if tool is None:
        raise RuntimeError("smtp-source not found")
    command = [
        tool,
        "-d",
        "-s",
        str(job.concurrency),
        "-m",
        str(job.messages),
        "-r",
        str(job.recipients),
        "-M",
        LOCAL_HOSTNAME,
        "-f",
        SENDER,
        "-t",
        "rcpt@example.com",
        "-F",
        job.extra["lf_file"],
        f"{job.host}:{job.port}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(  # noqa: S603 - our own command line
        command, check=True, timeout=_SOURCE_TIMEOUT, stdin=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measurement(elapsed=elapsed, cpu=cpu, messages=job.messages)


AsyncClient = Callable[[Workload], Awaitable[None]]
SyncClient = Callable[[Workload], None]

ASYNC_CLIENTS: Final[dict[tuple[str, str], AsyncClient]] = {
    ("asmtp", "single"): asmtp_single,
    ("asmtp", "batch"): asmtp_batched,
    ("asmtp", "workers"): asmtp_workers,
    ("asmtp", "pool"): asmtp_pool,
    ("asmtp", "send"): asmtp_send,
    ("raw", "workers"): raw_workers,
    ("aiosmtplib", "single"): aiosmtplib_single,
    ("aiosmtplib", "workers"): aiosmtplib_workers,
    ("aiosmtplib", "send"): aiosmtplib_send,
}
SYNC_CLIENTS: Final[dict[tuple[str, str], SyncClient]] = {
    ("smtplib", "single"): smtplib_single,
    ("smtplib", "threads"): smtplib_threads,
}


# -- round trips: one open connection, messages timed one after another ------------------


class RoundTripClient:
    """Open a connection and say EHLO (untimed), then send messages one at a time."""

    def __init__(self, job: Job, payload: bytes, recipients: list[str]) -> None:
        self.job = job
        self.payload = payload
        self.recipients = recipients

    async def asmtp(self, messages: int, timer: Callable[[], float]) -> float:
        async with asmtp.SMTP(self.job.host, self.job.port, local_hostname=LOCAL_HOSTNAME) as smtp:
            await smtp.ehlo()
            _refused(await smtp.sendmail(SENDER, self.recipients, self.payload))
            start = timer()
            for _ in range(messages):
                _refused(await smtp.sendmail(SENDER, self.recipients, self.payload))
            return timer() - start

    async def asmtp_many(self, messages: int, timer: Callable[[], float]) -> float:
        """The same messages in one ``sendmail_many`` call (transactions overlapped)."""
        item = asmtp.Outgoing(SENDER, self.recipients, self.payload)
        async with asmtp.SMTP(self.job.host, self.job.port, local_hostname=LOCAL_HOSTNAME) as smtp:
            await smtp.ehlo()
            _refused(await smtp.sendmail(SENDER, self.recipients, self.payload))
            start = timer()
            results = await smtp.sendmail_many([item] * messages)
            elapsed = timer() - start
        for result in results:
            if isinstance(result, Exception):
                raise result
            _refused(result)
        return elapsed

    async def aiosmtplib(self, messages: int, timer: Callable[[], float]) -> float:
        async with aiosmtplib.SMTP(
            hostname=self.job.host,
            port=self.job.port,
            local_hostname=LOCAL_HOSTNAME,
            start_tls=False,
        ) as smtp:
            await smtp.ehlo()
            errors: dict[str, Any]
            errors, _ = await smtp.sendmail(SENDER, self.recipients, self.payload)
            _refused(errors)
            start = timer()
            for _ in range(messages):
                errors, _ = await smtp.sendmail(SENDER, self.recipients, self.payload)
                _refused(errors)
            return timer() - start

    def smtplib(self, messages: int, timer: Callable[[], float]) -> float:
        with smtplib.SMTP(self.job.host, self.job.port, local_hostname=LOCAL_HOSTNAME) as smtp:
            smtp.ehlo()
            _refused(smtp.sendmail(SENDER, self.recipients, self.payload))
            start = timer()
            for _ in range(messages):
                _refused(smtp.sendmail(SENDER, self.recipients, self.payload))
            return timer() - start
