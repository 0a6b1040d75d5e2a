"""What every command shares: exit codes, one-line errors, addresses and listen targets."""

from __future__ import annotations

import email.errors
import enum
import sys
from collections.abc import Sequence
from email.headerregistry import Address, HeaderRegistry
from typing import Any, ClassVar, Final

import click

__all__ = [
    "ConnectionFailure",
    "ExitCode",
    "MainGroup",
    "Refused",
    "SubGroup",
    "UsageFailure",
    "parse_address",
    "parse_host_port",
]


class ExitCode(enum.IntEnum):
    """The exit status of every ``asmtp`` command (documented in docs/cli.md)."""

    OK = 0
    """Done: every recipient accepted the message."""
    REFUSED = 1
    """The server refused some or all recipients, the sender or the message."""
    USAGE = 2
    """Bad command line or input: a missing option, an unreadable file, a bad address."""
    CONNECTION = 3
    """Connection, TLS or authentication failure: nothing, or not all, could be sent."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C."""


class UsageFailure(click.ClickException):
    """The user's input cannot work (exit 2)."""

    exit_code: ClassVar[int] = ExitCode.USAGE


class Refused(click.ClickException):
    """The server refused the message or its sender (exit 1)."""

    exit_code: ClassVar[int] = ExitCode.REFUSED


class ConnectionFailure(click.ClickException):
    """No usable session with the server: connection, TLS or authentication (exit 3)."""

    exit_code: ClassVar[int] = ExitCode.CONNECTION


_NO_ARGS_IS_HELP: Final[Any] = getattr(click.exceptions, "NoArgsIsHelpError", ())


class MainGroup(click.Group):
    """A click group whose errors are one line on stderr, never a traceback.

    Click's own usage errors print the usage and a hint over several lines; a script
    reading stderr gets one line here, ``<command>: <what is wrong>``, and the exit code
    of :class:`ExitCode`.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else ExitCode.OK
        except _NO_ARGS_IS_HELP as exc:
            exc.show()
            code = ExitCode.OK
        except click.Abort:
            click.echo("asmtp: interrupted", err=True)
            code = ExitCode.INTERRUPTED
        except click.ClickException as exc:
            click.echo(_one_line(exc, self.running), err=True)
            code = exc.exit_code
        except BrokenPipeError:  # e.g. `asmtp sink | head`: the reader left
            sys.stdout = None  # no flush error at exit
            code = ExitCode.REFUSED
        if standalone_mode:
            sys.exit(int(code))
        return int(code)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        self.running = f"{ctx.command_path} {name}"  # names the command in error lines
        return name, command, rest

    running = "asmtp"
    """The command running, as error lines name it."""


class SubGroup(click.Group):
    """A group inside :class:`MainGroup` (``asmtp bulk``): errors name the whole command."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        root = ctx.find_root().command
        if isinstance(root, MainGroup):
            root.running = f"{ctx.command_path} {name}"
        return name, command, rest


def _one_line(exc: click.ClickException, command: str) -> str:
    """``command: message`` on one line; usage errors name their command and its help."""
    message = " ".join(exc.format_message().split())
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        path = exc.ctx.command_path
        return f"{path}: {message} (see '{path} --help')"
    return f"{command}: {message}"


_HEADERS: Final = HeaderRegistry()


def parse_address(option: str, value: str) -> Address:
    """The one mailbox in ``value`` (``ada@example.org`` or ``Ada <ada@example.org>``).

    Raises :class:`UsageFailure` naming ``option`` when ``value`` is not exactly one valid
    address: a message with a malformed address is refused before anything is sent.
    """
    if any(ch in value for ch in "\r\n\0"):
        raise UsageFailure(f"{option}: line breaks and NUL are not allowed in {value!r}")
    try:
        header = _HEADERS("To", value)
        addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    except (email.errors.HeaderParseError, IndexError, ValueError) as exc:
        raise UsageFailure(f"{option}: not an address: {value!r} ({exc})") from exc
    defects = [str(defect) for defect in header.defects]
    if len(addresses) != 1 or defects or not addresses[0].username or not addresses[0].domain:
        detail = f" ({'; '.join(defects)})" if defects else ""
        raise UsageFailure(f"{option}: not one address of the form user@domain: {value!r}{detail}")
    address: Address = addresses[0]
    return address


def parse_host_port(option: str, value: str, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` as a pair; UsageFailure when malformed."""
    host, port_text = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not value[end + 1 :].startswith(":")):
            raise UsageFailure(f"{option}: expected [IPv6]:PORT, got {value!r}")
        host, port_text = value[1:end], value[end + 2 :]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    if not port_text:
        if default_port is None:
            raise UsageFailure(f"{option}: expected HOST:PORT, got {value!r}")
        return host or "127.0.0.1", default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageFailure(f"{option}: {port_text!r} is not a port number (0-65535)")
    return host or "127.0.0.1", int(port_text)
