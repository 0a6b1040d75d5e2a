"""The campaign's rows, streamed from a CSV or JSON Lines file: never all in memory.

A row is its fields, an id that stays the same across runs (a column, or the line the row
starts on) and its recipient. The file is read a row at a time; :meth:`Rows.digest` reads
its bytes once more to tell a resumed campaign whether its input changed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from ._errors import InputError

__all__ = ["MAX_ID_LENGTH", "Row", "Rows", "RowsFormat"]

RowsFormat = Literal["csv", "jsonl"]
"""``"csv"`` (a header line names the fields) or ``"jsonl"`` (a JSON object per line)."""
MAX_ID_LENGTH: Final = 200
"""Longest row id: it goes into the Message-ID header, whose line must stay short."""
_SUFFIXES: Final[dict[str, RowsFormat]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_READ_SIZE: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Row:
    """One row: the ``line`` it starts on (1 is the first line of the file), its ``id`` in
    the journal, and its ``fields`` (strings from CSV; any JSON value from JSON Lines)."""

    line: int
    id: str
    fields: Mapping[str, Any]


class Rows:
    """The rows of one CSV or JSON Lines file.

    ``format`` is ``"csv"`` (the header line names the fields) or ``"jsonl"`` (one JSON
    object per line; blank lines are skipped); by default it follows the file's suffix
    (``.csv``, ``.jsonl``, ``.ndjson``). ``id_column`` names the field holding each row's
    stable id; without it, a row's id is the number of the line it starts on, which stays
    the same only while nothing is inserted above it. ``recipient_column`` names the
    recipient's address (the ``To`` header when the template has none).

    Iterating reads the file again from the start, one row at a time, and raises
    :class:`InputError` (naming the file and line) for a malformed line, a row without an
    id, or an id longer than 200 characters (it goes into the Message-ID).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: RowsFormat | None = None,
        id_column: str | None = None,
        recipient_column: str = "email",
        encoding: str = "utf-8",
    ) -> None:
        self.path = Path(path)
        if format is None:
            found = _SUFFIXES.get(self.path.suffix.lower())
            if found is None:
                raise InputError(
                    f"{self.path}: cannot tell the format from the name: give format='csv' or 'jsonl'"
                )
            format = found
        if format not in ("csv", "jsonl"):
            raise InputError(f"format must be 'csv' or 'jsonl', not {format!r}")
        self.format: RowsFormat = format
        self.id_column = id_column
        self.recipient_column = recipient_column
        self.encoding = encoding

    def __repr__(self) -> str:
        return f"<Rows {self.format} {str(self.path)!r}>"

    def settings(self) -> dict[str, object]:
        """What defines these rows besides their bytes (kept in the journal)."""
        return {
            "format": self.format,
            "id_column": self.id_column,
            "recipient_column": self.recipient_column,
        }

    def columns(self) -> list[str] | None:
        """The CSV header's field names (JSON Lines: None, each row has its own)."""
        if self.format != "csv":
            return None
        try:
            with self.path.open(encoding=self.encoding, newline="") as source:
                return next(csv.reader(source, strict=True), [])
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"cannot read {self.path}: {exc}") from exc

    def digest(self) -> str:
        """SHA-256 of the file's bytes, read in blocks."""
        hasher = hashlib.sha256()
        try:
            with self.path.open("rb") as source:
                while block := source.read(_READ_SIZE):
                    hasher.update(block)
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        return hasher.hexdigest()

    def __iter__(self) -> Iterator[Row]:
        try:
            source = self.path.open(encoding=self.encoding, newline="")
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        with source:
            try:
                if self.format == "csv":
                    yield from self._csv(source)
                else:
                    yield from self._jsonl(source)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{self.path} is not {self.encoding} text ({exc.reason} at byte {exc.start})"
                ) from exc
            except OSError as exc:
                raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from exc

    def _csv(self, source: Any) -> Iterator[Row]:
        reader = csv.reader(source, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise InputError(f"{self.path}, line 1: {exc}") from exc
        if not header:
            raise InputError(f"{self.path}: empty: the first line must name the fields")
        self._check_header(header)
        width = len(header)
        index = header.index(self.id_column) if self.id_column is not None else -1
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader, None)
            except csv.Error as exc:
                raise InputError(f"{self.path}, line {reader.line_num}: {exc}") from exc
            if values is None:
                return
            if not values:
                continue  # a blank line
            if len(values) != width:
                raise InputError(
                    f"{self.path}, line {start}: {len(values)} fields, the header names {width}"
                )
            row_id = values[index] if index >= 0 else str(start)
            yield Row(
                start, self._checked_id(row_id, start), dict(zip(header, values, strict=True))
            )

    def _check_header(self, header: list[str]) -> None:
        if len(set(header)) != len(header):
            twice = sorted({name for name in header if header.count(name) > 1})
            raise InputError(f"{self.path}: the header names {', '.join(twice)} twice")
        for wanted, option in ((self.id_column, "id"), (self.recipient_column, "recipient")):
            if wanted is not None and wanted not in header:
                raise InputError(
                    f"{self.path}: no {option} column {wanted!r} (the header names "
                    f"{', '.join(header)})"
                )

    def _jsonl(self, source: Any) -> Iterator[Row]:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                fields = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{self.path}, line {number}: not JSON: {exc}") from exc
            if not isinstance(fields, dict):
                raise InputError(f"{self.path}, line {number}: not a JSON object")
            if self.id_column is None:
                row_id = str(number)
            else:
                value = fields.get(self.id_column)
                if isinstance(value, bool) or not isinstance(value, (str, int)):
                    raise InputError(
                        f"{self.path}, line {number}: no id: {self.id_column!r} must be a "
                        "string or an integer"
                    )
                row_id = str(value)
            yield Row(number, self._checked_id(row_id, number), fields)

    def _checked_id(self, row_id: str, line: int) -> str:
        if not row_id:
            raise InputError(f"{self.path}, line {line}: the id column {self.id_column!r} is empty")
        if len(row_id) > MAX_ID_LENGTH:
            raise InputError(
                f"{self.path}, line {line}: the id is longer than {MAX_ID_LENGTH} characters"
            )
        return row_id
