"""A raw SMTP conversation over a socket, for what no client library will send (bad BDAT)."""

from __future__ import annotations

import socket
from typing import Final

TIMEOUT: Final = 5.0


class Wire:
    """A blocking socket that sends bytes and reads whole (possibly multi-line) replies."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """The next reply, lines joined by LF, without line endings ('' if closed)."""
        lines: list[bytes] = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return b"\n".join(lines)
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                return b"\n".join(lines)

    def command(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.reply()

    def chunk(self, command_and_data: bytes) -> bytes:
        """Send a BDAT command with its data as given (no line ending added); the reply."""
        self.send(command_and_data)
        return self.reply()

    def closed(self) -> bool:
        """True when the server has closed its side (after any pending bytes)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
