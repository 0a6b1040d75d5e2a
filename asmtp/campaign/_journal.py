"""The journal: one SQLite file saying, for every row, what became of its message.

A row is marked ``in_flight`` and committed before the first byte of its message is
written, so that no stop, not even ``kill -9``, can forget that it may have gone out; its
outcome is written as soon as the reply is in, and committed with the next mark (or after
a few outcomes, or a fraction of a second). The file is in WAL mode, held with an
exclusive lock while a campaign runs (a second runner gets :class:`JournalLocked`).

Durability: with ``synchronous=NORMAL`` (the default, ``durability="process"``) a commit
is in the WAL file before the call returns, so it survives the process being killed; an
operating-system crash or power loss may undo the last commits (never damage the file).
``durability="power"`` syncs every commit to disk (``synchronous=FULL``), at the price of
one ``fsync`` per message.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

from ._errors import InputError, JournalError, JournalLocked, JournalMismatch

__all__ = ["STATES", "Durability", "Journal", "RowRecord"]

Durability = Literal["process", "power"]
"""``"process"``: commits survive the process being killed; ``"power"``: a power cut too."""
STATES: Final = ("pending", "in_flight", "accepted", "refused", "failed", "unknown")
"""Every row is in one of these states."""
APPLICATION_ID: Final = 0x61736D74  # "asmt": `PRAGMA application_id`, so a stray file is told apart
VERSION: Final = 1
_COMMIT_EVERY: Final = 32  # outcomes written before a commit when no mark commits them
_COMMIT_AFTER: Final = 0.2  # seconds an outcome may wait for its commit

_SCHEMA: Final = """
CREATE TABLE campaign (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE rows (
    id TEXT PRIMARY KEY,
    line INTEGER NOT NULL,
    recipient TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    code INTEGER,
    reply TEXT,
    recipients TEXT,
    error TEXT,
    started REAL,
    finished REAL
);
CREATE TABLE runs (run INTEGER PRIMARY KEY, started REAL NOT NULL, ended REAL, how TEXT);
"""

_RECORD: Final = (
    "UPDATE rows SET state = ?, code = ?, reply = ?, recipients = ?, error = ?, finished = ?"
    " WHERE id = ?"
)

RowRecord = dict[str, Any]
"""One row of the journal as a dict: id, line, recipient, state, attempts, code, reply,
recipients (address -> [code, text]), error, started, finished (Unix times)."""


class Journal:
    """The journal file at ``path``, created when missing.

    Raises :class:`JournalLocked` when another process holds it and :class:`JournalError`
    when it is not a campaign journal or is damaged. ``readonly`` opens it for reports
    without taking the lock a running campaign holds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "process",
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        if durability not in ("process", "power"):
            raise ValueError(f"durability must be 'process' or 'power', not {durability!r}")
        if readonly and not self.path.exists():
            raise JournalError(f"{self.path}: no such journal")
        self._uncommitted = 0
        self._oldest = 0.0
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {self.path}: {exc}") from exc
        try:
            self._setup(durability, readonly)
        except BaseException:
            self._db.close()
            raise

    def _setup(self, durability: Durability, readonly: bool) -> None:
        with self._errors():
            if not readonly:
                # The lock is taken at the first read and held until close: one runner.
                self._db.execute("PRAGMA locking_mode = EXCLUSIVE")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise JournalError(f"{self.path}: cannot use WAL mode ({mode})")
            self._db.execute(
                f"PRAGMA synchronous = {'FULL' if durability == 'power' else 'NORMAL'}"
            )
            application = self._db.execute("PRAGMA application_id").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if application == 0 and tables == 0 and not readonly:
                self._db.executescript(
                    f"BEGIN; {_SCHEMA} PRAGMA application_id = {APPLICATION_ID}; "
                    f"PRAGMA user_version = {VERSION}; COMMIT;"
                )
            elif application != APPLICATION_ID:
                raise JournalError(f"{self.path} is not a campaign journal")
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise JournalError(f"{self.path} is damaged: {check}")

    def _errors(self) -> _Translated:
        return _Translated(self.path)

    def close(self) -> None:
        """Commit what is written and close (the lock is released)."""
        try:
            self.commit()
        finally:
            self._db.close()

    # -- the campaign's definition ------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """What the journal keeps of its campaign (empty for a new journal)."""
        with self._errors():
            found = self._db.execute("SELECT key, value FROM campaign").fetchall()
        return {key: json.loads(value) for key, value in found}

    def save_settings(self, settings: Mapping[str, Any]) -> None:
        """Keep ``settings`` (JSON values) with the journal, replacing those of the same key."""
        with self._errors():
            self._db.executemany(
                "INSERT OR REPLACE INTO campaign (key, value) VALUES (?, ?)",
                [(key, json.dumps(value)) for key, value in settings.items()],
            )

    def check_definition(self, wanted: Mapping[str, Any], *, force: bool) -> list[str]:
        """The names of ``wanted``'s entries that differ from the journal's; raises
        :class:`JournalMismatch` naming them unless ``force``."""
        kept = self.settings()
        changed = [key for key, value in wanted.items() if key in kept and kept[key] != value]
        if changed and not force:
            raise JournalMismatch(
                f"{self.path} belongs to a campaign with another {', '.join(changed)}: "
                "resuming would send something else to rows already done "
                "(force it with --force / force=True, or use a new journal)"
            )
        return changed

    # -- rows -------------------------------------------------------------------------

    def add_rows(self, rows: Iterable[tuple[str, int, str | None]]) -> int:
        """Record ``(id, line, recipient)`` rows as pending in one transaction; rows already
        known keep their state. Returns how many were given. :class:`InputError` when an id
        appears twice among them."""
        count = 0
        with self._errors():
            self.commit()
            self._db.execute("BEGIN")
            try:
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")
                self._db.execute("DELETE FROM seen")
                for row_id, line, recipient in rows:
                    count += 1
                    try:
                        self._db.execute("INSERT INTO seen (id) VALUES (?)", (row_id,))
                    except sqlite3.IntegrityError:
                        raise InputError(
                            f"line {line}: the id {row_id!r} was already used"
                        ) from None
                    self._db.execute(
                        "INSERT OR IGNORE INTO rows (id, line, recipient) VALUES (?, ?, ?)",
                        (row_id, line, recipient),
                    )
                self._db.execute("DELETE FROM seen")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return count

    def recover(self) -> int:
        """After a run that stopped without recording them (killed), rows still in flight
        become ``unknown``: their message may have reached the server. Returns how many."""
        with self._errors():
            cursor = self._db.execute(
                "UPDATE rows SET state = 'unknown', error = 'the run stopped while it was in flight'"
                " WHERE state = 'in_flight'"
            )
            self.commit()
            return cursor.rowcount

    def state(self, row_id: str) -> str | None:
        """The row's state, or None when the journal does not know it."""
        found = self._db.execute("SELECT state FROM rows WHERE id = ?", (row_id,)).fetchone()
        return None if found is None else str(found[0])

    def mark_in_flight(self, row_id: str) -> None:
        """The row's message is about to be written: committed before this returns."""
        self._db.execute(
            "UPDATE rows SET state = 'in_flight', attempts = attempts + 1, started = ? "
            "WHERE id = ?",
            (time.time(), row_id),
        )
        self.commit()

    def record(
        self,
        row_id: str,
        state: str,
        *,
        code: int | None = None,
        reply: str | None = None,
        recipients: Mapping[str, tuple[int, str]] | None = None,
        error: str | None = None,
        only_if: str | None = None,
    ) -> None:
        """Write a row's outcome; committed with the next mark, or soon (see the module).

        ``only_if`` writes it only when the row is in that state now.
        """
        values = (
            state,
            code,
            reply,
            None if recipients is None else json.dumps(recipients),
            error,
            time.time(),
            row_id,
        )
        self.begin()
        if only_if is None:
            self._db.execute(_RECORD, values)
        else:
            self._db.execute(_RECORD + " AND state = ?", (*values, only_if))
        if not self._uncommitted:
            self._oldest = time.monotonic()
        self._uncommitted += 1
        if self._uncommitted >= _COMMIT_EVERY or time.monotonic() - self._oldest >= _COMMIT_AFTER:
            self.commit()

    def commit(self) -> None:
        """Commit every write so far (rows are written in autocommit mode otherwise)."""
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._uncommitted = 0

    def begin(self) -> None:
        """Open a transaction for the writes that follow, until :meth:`commit`."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN")

    # -- runs and reports ---------------------------------------------------------------

    def start_run(self) -> int:
        """Record that a run starts now; its number."""
        with self._errors():
            cursor = self._db.execute("INSERT INTO runs (started) VALUES (?)", (time.time(),))
            self.commit()
        assert cursor.lastrowid is not None  # noqa: S101 - an INSERT has one
        return cursor.lastrowid

    def end_run(self, run: int, how: str) -> None:
        """Record that run ``run`` ended now, and ``how`` (completed, interrupted, ...)."""
        with self._errors():
            self._db.execute(
                "UPDATE runs SET ended = ?, how = ? WHERE run = ?", (time.time(), how, run)
            )
            self.commit()

    def counts(self) -> dict[str, int]:
        """How many rows are in each state (every state named, zeros included)."""
        with self._errors():
            found = dict(
                self._db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall()
            )
        return {state: int(found.get(state, 0)) for state in STATES}

    def runs(self) -> list[tuple[int, float, float | None, str | None]]:
        """Every run: its number, start and end (Unix times; no end if it was killed), how."""
        with self._errors():
            return list(self._db.execute("SELECT run, started, ended, how FROM runs ORDER BY run"))

    def rows(self, states: Iterable[str] | None = None) -> Iterator[RowRecord]:
        """Every row (or those in ``states``) in input order, one at a time."""
        query = (
            "SELECT id, line, recipient, state, attempts, code, reply, recipients, error, "
            "started, finished FROM rows"
        )
        wanted = tuple(states) if states is not None else ()
        if wanted:
            query += f" WHERE state IN ({', '.join('?' * len(wanted))})"
        names = ("id", "line", "recipient", "state", "attempts", "code", "reply")
        with self._errors():
            for found in self._db.execute(query + " ORDER BY line", wanted):
                record: RowRecord = dict(zip(names, found[:7], strict=True))
                record["recipients"] = json.loads(found[7]) if found[7] else {}
                record["error"], record["started"], record["finished"] = found[8:]
                yield record


class _Translated:
    """SQLite's errors, as the campaign's: a locked file, a damaged one, one that is not
    a database at all."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if not isinstance(exc, sqlite3.Error):
            return
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
            raise JournalLocked(
                f"{self.path} is in use by another process (a campaign running on it?)"
            ) from exc
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
            raise JournalError(f"{self.path} is not a campaign journal ({text})") from exc
        raise JournalError(f"{self.path}: {text}") from exc
