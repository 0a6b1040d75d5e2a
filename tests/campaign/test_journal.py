"""The journal file: one runner at a time, damage detected, marks that survive kill -9."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from asmtp.campaign import Journal, JournalError, JournalLocked
from support.campaigns import ROOT


def test_a_second_runner_finds_the_journal_locked(tmp_path: Path) -> None:
    first = Journal(tmp_path / "j.db")
    try:
        with pytest.raises(JournalLocked, match="in use by another process"):
            Journal(tmp_path / "j.db")
        with pytest.raises(JournalLocked):
            Journal(tmp_path / "j.db", readonly=True)
    finally:
        first.close()
    Journal(tmp_path / "j.db").close()  # released on close


@pytest.mark.parametrize(
    "content", [b"not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_damaged_file_is_not_a_journal(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(content)
    with pytest.raises(JournalError, match=r"j\.db"):
        Journal(path)
    assert path.read_bytes() == content  # left as it was


def test_another_sqlite_database_is_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE t (x)")
    other.close()
    with pytest.raises(JournalError, match="is not a campaign journal"):
        Journal(path)


def test_a_mark_survives_kill_9_right_after_it_and_reads_as_unknown(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    script = (
        "import os, signal, sys\n"
        "from asmtp.campaign import Journal\n"
        "journal = Journal(sys.argv[1])\n"
        "journal.add_rows([('a', 2, 'a@example.com'), ('b', 3, 'b@example.com')])\n"
        "journal.record('b', 'accepted', code=250)\n"  # not committed yet: no mark after it
        "journal.mark_in_flight('a')\n"  # commits itself, and the outcome written before
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(  # noqa: S603 - our interpreter
        [sys.executable, "-c", script, str(path)], env=env, timeout=30, check=False
    )
    assert done.returncode == -9
    journal = Journal(path)
    try:
        assert {r["id"]: r["state"] for r in journal.rows()} == {"a": "in_flight", "b": "accepted"}
        assert journal.recover() == 1
        assert journal.counts()["unknown"] == 1
    finally:
        journal.close()
