"""``asmtp unpack``: write each part of a message into a directory, whatever the message says.

A file name in a message is the sender's choice, so it is reduced to one harmless path
component (:func:`safe_name`), and files are created relative to a descriptor of the
directory, exclusively and without following symbolic links: nothing is ever written
outside the directory, and nothing there is overwritten.
"""

from __future__ import annotations

import email.errors
import email.policy
import mimetypes
import os
import re
import sys
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path
from typing import Final

import click

from ._common import ExitCode, UsageFailure

__all__ = ["safe_name", "unpack_command", "write_new"]

NAME_LIMIT: Final = 200
"""Most bytes (UTF-8) kept of a name, below the usual 255-byte limit so a suffix fits."""
SUFFIX_TRIES: Final = 1000
_COMPRESSED: Final = frozenset({"gz", "bz2", "xz", "zst", "z", "br", "lz", "lzma"})
_SEPARATORS: Final = re.compile(r"[/\\:]")
_WINDOWS_DEVICES: Final = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.I)
_CREATE: Final = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL  # fails on any existing entry, a symbolic link included
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_DIRECTORY: Final = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


@click.command("unpack")
@click.option(
    "-d",
    "--directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the parts into DIRECTORY (created if missing).",
)
@click.argument(
    "message", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
def unpack_command(directory: Path, message: Path) -> int:
    """Write every part of MESSAGE (a file, or '-' for standard input) into DIRECTORY.

    Each part that is not itself multipart becomes a file named as the message says
    (RFC 2231 and encoded-word names decoded, reduced to a plain file name) or
    part-NNN.EXT. Nothing is written outside DIRECTORY and no file is overwritten: a
    name already taken gets a -1, -2, ... suffix.

    \b
    Exit status: 0 done; 2 bad command line, unreadable message or unwritable directory.
    """
    try:
        data = sys.stdin.buffer.read() if str(message) == "-" else message.read_bytes()
    except OSError as exc:
        raise UsageFailure(f"cannot read {message}: {exc.strerror or exc}") from exc
    parsed = BytesParser(policy=email.policy.default).parsebytes(data)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        dir_fd = os.open(directory, _DIRECTORY)
    except OSError as exc:
        raise UsageFailure(
            f"cannot use {directory} as the directory: {exc.strerror or exc}"
        ) from exc
    try:
        for number, part in enumerate(_leaves(parsed), 1):
            name = safe_name(_filename(part)) or f"part-{number:03d}{_extension(part)}"
            payload = part.get_payload(decode=True)
            content = payload if isinstance(payload, bytes) else b""
            try:
                written = write_new(dir_fd, directory, name, content)
            except OSError as exc:
                raise UsageFailure(f"cannot write into {directory}: {exc.strerror or exc}") from exc
            # Tab-separated: a name kept by safe_name() holds no tab (nor any control character).
            click.echo(f"{directory / written}\t{len(content)} bytes\t{part.get_content_type()}")
    finally:
        os.close(dir_fd)
    return ExitCode.OK


def _leaves(message: EmailMessage) -> list[Message]:
    return [part for part in message.walk() if not part.is_multipart()]


def _filename(part: Message) -> str | None:
    try:
        return part.get_filename()
    except (email.errors.MessageError, LookupError, ValueError, TypeError):
        return None  # an unparsable name is no name: the part gets a numbered one


def _extension(part: Message) -> str:
    return mimetypes.guess_extension(part.get_content_type()) or ".bin"


def safe_name(raw: str | None) -> str | None:
    """One harmless file name from a name a message gives, or ``None`` when nothing is left.

    Keeps the text after the last ``/``, ``\\`` or ``:`` (directories, absolute paths,
    drive letters, NTFS streams), drops characters that are not printable (NUL, control
    characters, bidirectional overrides), leading and trailing dots and blanks (so
    ``..`` and hidden files are gone), keeps at most :data:`NAME_LIMIT` bytes, and
    prefixes Windows device names (``CON``, ``NUL``...) with ``_``.
    """
    if raw is None:
        return None
    name = _SEPARATORS.split(raw)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip(" .\t")
    if not name:
        return None
    if len(name.encode("utf-8", "surrogatepass")) > NAME_LIMIT:
        stem, dot, extension = name.rpartition(".")
        if not dot or len(extension) > 16:
            stem, extension = name, ""
        tail = f".{extension}" if extension else ""
        budget = NAME_LIMIT - len(tail.encode("utf-8", "surrogatepass"))
        stem = stem.encode("utf-8", "surrogatepass")[:budget].decode("utf-8", "ignore")
        name = stem.rstrip(" .") + tail
    name = name.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    if _WINDOWS_DEVICES.fullmatch(name):
        name = f"_{name}"
    return name


def write_new(dir_fd: int, directory: Path, name: str, content: bytes) -> str:
    """Create a new file for ``content`` in the directory open as ``dir_fd``; its name.

    ``name`` (one path component) or, when taken, ``stem-N.ext``. The file is created
    exclusively and without following a symbolic link, so an entry already there, a
    planted link included, is never written through.
    """
    if name in ("", ".", "..") or _SEPARATORS.search(name):
        raise ValueError(f"not a plain file name: {name!r}")
    stem, dot, extension = name.rpartition(".")
    if not stem:
        stem, dot, extension = name, "", ""
    elif extension.lower() in _COMPRESSED and "." in stem.lstrip("."):
        stem, _, inner = stem.rpartition(".")  # report.csv.gz -> report-1.csv.gz
        extension = f"{inner}.{extension}"
    for attempt in range(SUFFIX_TRIES):
        candidate = name if attempt == 0 else f"{stem}-{attempt}{dot}{extension}"
        try:
            if os.open in os.supports_dir_fd:
                fd = os.open(candidate, _CREATE, 0o666, dir_fd=dir_fd)
            else:  # pragma: no cover - Windows: the name has no separator anyway
                fd = os.open(directory / candidate, _CREATE, 0o666)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        return candidate
    raise FileExistsError(f"{SUFFIX_TRIES} files named like {name!r} already exist")
