"""The ``asmtp`` click group and its commands."""

from __future__ import annotations

import click

from .. import __version__
from ._bulk import bulk_group
from ._common import MainGroup
from ._send import send_command
from ._sink import sink_command
from ._unpack import unpack_command

__all__ = ["cli"]


@click.group(cls=MainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="asmtp")
def cli() -> None:
    """Send mail from the shell (one message, or one per row of a list), unpack it,
    or catch it with a local server.

    \b
    Exit status of every command:
      0  done (every recipient accepted)
      1  the server refused some or all recipients, the sender or the message
      2  bad command line or input (missing option, unreadable file, bad address)
      3  connection, TLS or authentication failure
    130  interrupted (Ctrl-C; SIGTERM for bulk send)
    """


cli.add_command(send_command)
cli.add_command(unpack_command)
cli.add_command(sink_command)
cli.add_command(bulk_group)
