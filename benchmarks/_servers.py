"""The servers the clients talk to, and their lifetimes.

- :class:`SmtpSink`: Postfix's ``smtp-sink`` on 127.0.0.1, started and stopped by PID.
- :class:`Helpers`: a helper process (this module run with ``-m``) serving a loopback
  delay proxy in front of the sink and of a tiny scripted server that advertises
  PIPELINING and CHUNKING (``smtp-sink`` does not offer CHUNKING).

Every wait here is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = [
    "Helpers",
    "SmtpSink",
    "ensure_postfix",
    "free_port",
    "machine_user_seconds",
    "postfix_tool",
]

_POSTFIX_TOOLS: Final = ("smtp-sink", "smtp-source")
_START_TIMEOUT: Final = 10.0
_STOP_TIMEOUT: Final = 5.0
_HELPER_LIFETIME: Final = 900.0
_INSTALL_ATTEMPTS: Final = 6
_INSTALL_RETRY_PAUSE: Final = 20.0
_COUNTER = re.compile(rb"mesg=(\d+)")


def postfix_tool(name: str) -> str | None:
    """The path of a Postfix test tool (``/usr/sbin`` is often not on a user's PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    return found


def ensure_postfix() -> None:
    """Make sure ``smtp-sink`` and ``smtp-source`` exist; as root on Debian, install Postfix.

    Postfix is installed unconfigured ("No configuration"): only its test tools are used.
    A dpkg lock held by another installer is waited for, a bounded number of times.
    """
    if all(postfix_tool(tool) for tool in _POSTFIX_TOOLS):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(
            "smtp-sink and smtp-source (Postfix) are needed: install Postfix "
            "(Debian/Ubuntu: apt-get install postfix, choosing 'No configuration')"
        )
    print("Installing postfix for smtp-sink and smtp-source ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["debconf-set-selections"],  # noqa: S607 - a system tool, found on PATH
        input=b"postfix postfix/main_mailer_type select No configuration\n",
        check=True,
        timeout=60,
    )
    commands = (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=120", "postfix"],
    )
    for attempt in range(1, _INSTALL_ATTEMPTS + 1):
        outputs = [
            subprocess.run(  # noqa: S603 - fixed commands
                command, env=env, capture_output=True, timeout=900, check=False
            )
            for command in commands
        ]
        if all(tool for tool in map(postfix_tool, _POSTFIX_TOOLS)):
            return
        detail = outputs[-1].stderr.decode(errors="replace").strip()[-500:]
        print(f"  attempt {attempt} failed: {detail}", file=sys.stderr)
        time.sleep(_INSTALL_RETRY_PAUSE)
    raise SystemExit("could not install postfix (is another apt-get holding the lock?)")


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            return conn.recv(512).startswith(b"220")
    except OSError:
        return False


def _wait_greeting(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if _greets(port):
            return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process this module started, by its PID: TERM, then KILL after a bound."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT)


class SmtpSink:
    """``smtp-sink -c`` on 127.0.0.1 at an ephemeral port, advertising PIPELINING.

    The running counters (``-c``) go to a log file, so :meth:`messages` can check that
    every message of a measurement arrived; :meth:`cpu_seconds` reads the sink's own CPU
    time from ``/proc``, to show it was not the bottleneck.
    """

    def __init__(self) -> None:
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, attempts: int = 5) -> None:
        sink = postfix_tool("smtp-sink")
        if sink is None:
            raise SystemExit("smtp-sink not found")
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        for _ in range(attempts):
            self.port = free_port()
            # -c: running counters; -m: connections served at once; backlog 1000.
            command = [sink, "-c", "-m", "512", *user, f"127.0.0.1:{self.port}", "1000"]
            process = subprocess.Popen(  # noqa: S603 - our own command line
                command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
            )
            if _wait_greeting(self.port, process):
                self._process = process
                return
            _stop(process)
        raise RuntimeError("smtp-sink did not start")

    def stop(self) -> None:
        if self._process is not None:
            _stop(self._process)
            self._process = None
        self._log.close()

    def messages(self) -> int:
        """Messages received so far (the sink's own ``mesg=`` counter)."""
        self._log.flush()
        size = self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, size - 256))
        found = _COUNTER.findall(self._log.read())
        return int(found[-1]) if found else 0

    def wait_messages(self, expected: int, timeout: float = 2.0) -> int:
        """Wait (bounded) until the counter reaches ``expected``; return what it shows."""
        deadline = time.monotonic() + timeout
        count = self.messages()
        while count < expected and time.monotonic() < deadline:
            time.sleep(0.02)
            count = self.messages()
        return count

    def cpu_times(self) -> tuple[float, float]:
        """The sink's user and system CPU seconds so far."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return 0.0, 0.0
        fields = stat.rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def cpu_seconds(self) -> float:
        """The sink's user + system CPU seconds so far."""
        return sum(self.cpu_times())


def machine_user_seconds() -> float:
    """User CPU seconds spent by the whole machine so far (all CPUs, ``/proc/stat``)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    return (int(fields[1]) + int(fields[2])) / os.sysconf("SC_CLK_TCK")


# -- helper process: delay proxy and a CHUNKING server ------------------------------------


class Helpers:
    """Run this module as a helper process; gives the ports it serves.

    ``sink_proxy`` forwards to the sink and ``chunking_proxy`` to the scripted CHUNKING
    server, each adding ``delay`` seconds in each direction.
    """

    def __init__(self, sink_port: int, delay: float) -> None:
        self.sink_port = sink_port
        self.delay = delay
        self.sink_proxy = 0
        self.chunking = 0
        self.chunking_proxy = 0
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Helpers:
        root = Path(__file__).resolve().parent.parent
        command = [
            sys.executable,
            "-m",
            "benchmarks._servers",
            "--sink-port",
            str(self.sink_port),
            "--delay",
            str(self.delay),
        ]
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], _START_TIMEOUT)
        line = self._process.stdout.readline() if ready else b""
        if not line:
            _stop(self._process)
            raise RuntimeError("the delay proxy did not start")
        ports = json.loads(line)
        self.sink_proxy = ports["sink_proxy"]
        self.chunking = ports["chunking"]
        self.chunking_proxy = ports["chunking_proxy"]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            _stop(self._process)
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy one direction, each piece delivered ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        while True:
            try:
                data = await reader.read(65536)
            except OSError:
                data = b""
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(receive(), deliver())
    except OSError:
        pass


async def _proxy(target_port: int, delay: float) -> asyncio.Server:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(_pump(client_r, server_w, delay), _pump(server_r, client_w, delay))
        finally:
            client_w.close()
            server_w.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


class _ChunkingServer(asyncio.Protocol):
    """Accepts everything; advertises PIPELINING and CHUNKING; understands DATA and BDAT."""

    EHLO: Final = b"250-chunking.localhost\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._chunk_left = 0
        self._chunk_last = False
        self._in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(b"220 chunking.localhost ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buffer += data
        replies: list[bytes] = []
        while self._step(replies):
            pass
        if replies:
            self._transport.write(b"".join(replies))

    def _step(self, replies: list[bytes]) -> bool:
        """Consume one unit of input (a chunk, a DATA body, a command); False: need more."""
        buffer = self._buffer
        if self._chunk_left:
            taken = min(self._chunk_left, len(buffer))
            del buffer[:taken]
            self._chunk_left -= taken
            if self._chunk_left:
                return False
            replies.append(self._chunk_reply())
            return True
        if self._in_data:
            end = buffer.find(b"\r\n.\r\n")
            if end < 0:
                del buffer[: max(0, len(buffer) - 4)]
                return False
            del buffer[: end + 5]
            self._in_data = False
            replies.append(b"250 2.0.0 Ok: queued\r\n")
            return True
        newline = buffer.find(b"\r\n")
        if newline < 0:
            return False
        line = bytes(buffer[:newline])
        del buffer[: newline + 2]
        replies.append(self._command(line))
        if line[:4].upper() == b"QUIT" and self._transport is not None:
            self._transport.write(b"".join(replies))
            replies.clear()
            self._transport.close()
            return False
        return True

    def _chunk_reply(self) -> bytes:
        if self._chunk_last:
            return b"250 2.0.0 Ok: message accepted\r\n"
        return b"250 2.0.0 Ok: chunk received\r\n"

    def _command(self, line: bytes) -> bytes:
        verb = line[:4].upper()
        if verb == b"EHLO":
            return self.EHLO
        if verb == b"DATA":
            self._in_data = True
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb == b"BDAT":
            parts = line.split()
            self._chunk_left = int(parts[1])
            self._chunk_last = len(parts) > 2 and parts[2].upper() == b"LAST"
            return b"" if self._chunk_left else self._chunk_reply()
        if verb == b"QUIT":
            return b"221 2.0.0 Bye\r\n"
        return b"250 2.0.0 Ok\r\n"


async def _serve(sink_port: int, delay: float, lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    chunking = await loop.create_server(_ChunkingServer, "127.0.0.1", 0)
    chunking_port: int = chunking.sockets[0].getsockname()[1]
    sink_proxy = await _proxy(sink_port, delay)
    chunking_proxy = await _proxy(chunking_port, delay)
    ports = {
        "sink_proxy": sink_proxy.sockets[0].getsockname()[1],
        "chunking": chunking_port,
        "chunking_proxy": chunking_proxy.sockets[0].getsockname()[1],
    }
    print(json.dumps(ports), flush=True)
    await asyncio.sleep(lifetime)  # the parent stops us long before, by PID


def main() -> None:
    parser = argparse.ArgumentParser(description="delay proxy and CHUNKING server (helper)")
    parser.add_argument("--sink-port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--lifetime", type=float, default=_HELPER_LIFETIME)
    args = parser.parse_args()
    asyncio.run(_serve(args.sink_port, args.delay, args.lifetime))


if __name__ == "__main__":
    main()
