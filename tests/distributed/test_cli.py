"""``asmtp bulk enqueue`` and ``asmtp bulk report --redis`` against a real Redis (the real
command group, run in this process)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cli._kit import Result, invoke

from support.redis_server import RedisServer, free_port


def _asmtp(*args: str) -> Result:
    return invoke(["bulk", *args])


def _files(tmp_path: Path) -> list[str]:
    rows = tmp_path / "people.csv"
    rows.write_text("id,email\na,a@example.com\nb,b@example.com\nc,c@example.com\n")
    template = tmp_path / "t.eml"
    template.write_text("From: news@example.org\nSubject: Hi\n\nHello {{ email }}\n")
    return ["--rows", str(rows), "--id-column", "id", "--template", str(template)]


def test_enqueue_twice_then_report(tmp_path: Path, redis_server: RedisServer) -> None:
    where = ["--redis", redis_server.url, "--campaign", "news"]
    first = _asmtp("enqueue", *_files(tmp_path), *where, "--batch-size", "2")
    assert first.code == 0, first.stderr
    assert first.stdout.startswith("enqueued 3 row(s) in 2 job(s); 0 left")
    again = _asmtp("enqueue", *_files(tmp_path), *where)
    assert again.stdout.startswith("enqueued 0 row(s) in 0 job(s); 3 left")
    report = _asmtp("report", *where)
    assert report.code == 1  # not every row accepted (yet)
    assert "pending" in report.stdout and "3" in report.stdout
    table = _asmtp("report", *where, "--csv", "-")
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [(r["id"], r["state"], r["recipient"]) for r in rows] == [
        ("a", "pending", "a@example.com"),
        ("b", "pending", "b@example.com"),
        ("c", "pending", "c@example.com"),
    ]


def test_mistakes_are_one_line_and_an_exit_status(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    down = _asmtp("enqueue", *_files(tmp_path), "--redis", nowhere, "--campaign", "x")
    assert down.code == 3
    assert down.stderr.startswith(f"asmtp bulk enqueue: cannot reach Redis at {nowhere}")
    assert down.stderr.count("\n") == 1
    assert "Traceback" not in down.stderr
    unknown = _asmtp("report", "--redis", redis_server.url, "--campaign", "nope")
    assert unknown.code == 2
    assert "no campaign 'nope'" in unknown.stderr
    both = _asmtp("report", "--redis", redis_server.url)
    assert both.code == 2
    assert "--redis URL and --campaign NAME" in both.stderr
