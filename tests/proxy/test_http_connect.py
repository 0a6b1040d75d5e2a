"""HTTP CONNECT on an in-memory wire: the exact request, the answer read to its blank line
and never past it, the answer's size bound at n-1, n and n+1 bytes, refusals."""

from __future__ import annotations

import base64

import pytest

from asmtp._transport import ProxyError
from asmtp._transport._http_connect import (
    MAX_ANSWER_BYTES,
    connect_request,
    open_tunnel,
    read_head,
)
from asmtp.auth import Secret

pytestmark = pytest.mark.anyio

WHERE = "http://proxy:3128"


class FakeWire:
    """The proxy's side: records what was sent; answers ``answer`` one byte per read."""

    def __init__(self, answer: bytes) -> None:
        self.sent = b""
        self._unread = answer

    async def send(self, data: bytes) -> None:
        self.sent += data

    async def receive_byte(self) -> bytes:
        byte, self._unread = self._unread[:1], self._unread[1:]
        return byte

    @property
    def unread(self) -> bytes:
        return self._unread


def test_the_request_names_the_target_and_carries_basic_credentials() -> None:
    request = connect_request("mail.example", 587, "me", Secret("pa:ss"))
    assert request == (
        b"CONNECT mail.example:587 HTTP/1.1\r\n"
        b"Host: mail.example:587\r\n"
        b"User-Agent: asmtp\r\n"
        b"Proxy-Authorization: Basic " + base64.b64encode(b"me:pa:ss") + b"\r\n\r\n"
    )


def test_the_request_brackets_ipv6_and_encodes_international_names() -> None:
    assert connect_request("::1", 25, None, None).startswith(b"CONNECT [::1]:25 HTTP/1.1\r\n")
    assert b"CONNECT xn--bcher-kva.example:25 " in connect_request("bücher.example", 25, None, None)


async def test_the_answer_is_read_to_its_blank_line_and_not_one_byte_more() -> None:
    greeting = b"220 mail.example ESMTP\r\n"
    wire = FakeWire(b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n" + greeting)
    await open_tunnel(wire, "mail.example", 25, username=None, password=None, where=WHERE)
    assert wire.sent.startswith(b"CONNECT mail.example:25 HTTP/1.1\r\n")
    assert wire.unread == greeting


@pytest.mark.parametrize("size", [MAX_ANSWER_BYTES - 1, MAX_ANSWER_BYTES])
async def test_an_answer_up_to_the_limit_is_read(size: int) -> None:
    head = b"HTTP/1.0 200 OK\r\nX: "
    answer = head + b"x" * (size - len(head) - 4) + b"\r\n\r\n"
    assert len(answer) == size
    assert await read_head(FakeWire(answer + b"220"), WHERE) == answer


async def test_an_answer_past_the_limit_is_refused() -> None:
    head = b"HTTP/1.0 200 OK\r\nX: "
    answer = head + b"x" * (MAX_ANSWER_BYTES + 1 - len(head) - 4) + b"\r\n\r\n"
    with pytest.raises(ProxyError, match=f"longer than {MAX_ANSWER_BYTES} bytes"):
        await read_head(FakeWire(answer), WHERE)


@pytest.mark.parametrize(
    ("answer", "message", "code"),
    [
        (
            b"HTTP/1.1 403 Forbidden\r\n\r\n",
            "refused the tunnel to mail.example:25: 403 Forbidden",
            403,
        ),
        (b"HTTP/1.1 407 Proxy Auth\r\n\r\n", "requires a login", 407),
        (b"HTTP/1.1 502\r\n\r\n", "refused the tunnel to mail.example:25: 502", 502),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "no HTTP status line", None),
        (b"HTTP/1.1 200 OK\r\n", "closed the connection before answering", None),
        (b"", "closed the connection before answering", None),
    ],
)
async def test_a_refusal_or_a_broken_answer_raises_proxy_error(
    answer: bytes, message: str, code: int | None
) -> None:
    with pytest.raises(ProxyError, match=message) as caught:
        await open_tunnel(
            FakeWire(answer), "mail.example", 25, username=None, password=None, where=WHERE
        )
    assert caught.value.error_code == code
    assert WHERE in str(caught.value)


async def test_a_proxy_echoing_the_password_does_not_put_it_in_the_error() -> None:
    wire = FakeWire(b"HTTP/1.1 407 bad password s3cret-pw for me\r\n\r\n")
    with pytest.raises(ProxyError) as caught:
        await open_tunnel(
            wire, "mail.example", 25, username="me", password=Secret("s3cret-pw"), where=WHERE
        )
    assert "s3cret-pw" not in str(caught.value)
    assert "refused the login" in str(caught.value)
