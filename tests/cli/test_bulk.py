"""``asmtp bulk send`` and ``asmtp bulk report`` as a user runs them: outputs, errors, exit codes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from asmtp.campaign import Journal
from asmtp.testing import CaptureServer
from cli._kit import free_port, run

TEMPLATE = "From: News <news@example.org>\nSubject: Hi {{ name }}\n\nHello {{ name }}\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rows = tmp_path / "people.csv"
    rows.write_text(
        "id,email,name\n1,a@example.com,Ada\n2,b@gone.example,Bob\n3,c@example.com,Cy\n"
    )
    template = tmp_path / "welcome.eml"
    template.write_text(TEMPLATE)
    return {"rows": rows, "template": template, "journal": tmp_path / "welcome.db"}


def _send(files: dict[str, Path], *extra: str) -> list[str]:
    return [
        *("bulk", "send", "--rows", str(files["rows"]), "--id-column", "id"),
        *("--template", str(files["template"]), "--journal", str(files["journal"]), *extra),
    ]


def _server(server: CaptureServer) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(server.port), "--tls", "none"]


def test_send_then_report(files: dict[str, Path], smtp_sink: CaptureServer) -> None:
    smtp_sink.refuse_recipient("*@gone.example", "550 5.1.1 No such user")
    result = run(_send(files, *_server(smtp_sink)))
    assert result.code == 1, result.stderr  # a row was refused
    assert result.stdout.splitlines() == [
        "3/3 rows done: 2 accepted, 1 refused, 0 failed, 0 unknown"
    ]
    # Not a terminal: plain progress lines, not a bar.
    assert result.stderr.splitlines()[-1].startswith("asmtp bulk: 3/3 rows done")
    assert sorted(m.rcpt_tos for m in smtp_sink.messages) == [
        ("a@example.com",),
        ("c@example.com",),
    ]

    again = run(_send(files, *_server(smtp_sink)))
    assert again.code == 1 and len(smtp_sink.messages) == 2  # resumed: nothing left to send

    report = run(["bulk", "report", str(files["journal"])])
    assert report.code == 1
    assert "│ accepted  │    2 │ 66.7% │" in report.stdout
    assert "run 2:" in report.stdout and "completed" in report.stdout
    exported = run(["bulk", "report", str(files["journal"]), "--csv", "-"])
    records = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["id"], r["state"], r["code"]) for r in records] == [
        ("1", "accepted", "250"),
        ("2", "refused", "550"),
        ("3", "accepted", "250"),
    ]
    assert records[1]["recipients"] == "b@gone.example=550"


def test_dry_run_lists_the_rows_that_cannot_be_sent_and_sends_nothing(
    files: dict[str, Path], tmp_path: Path
) -> None:
    files["rows"].write_text("id,email,name\n1,a@example.com,Ada\n2,not-an-address,Bob\n")
    result = run(_send(files, "--dry-run"))
    assert result.code == 2
    assert result.stdout.splitlines() == [
        "line 3 (id 2): To: not an address (user@domain): 'not-an-address'",
        "dry run: 1 row(s) cannot be sent",
    ]
    assert not files["journal"].exists()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("template", "welcome.eml uses nmae, not a column of"),
        ("journal", "welcome.db is not a campaign journal"),
        ("rows", "line 3: 2 fields, the header names 3"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_sent(
    files: dict[str, Path], change: str, error: str
) -> None:
    if change == "template":
        files["template"].write_text(TEMPLATE.replace("{{ name }}\n\n", "{{ nmae }}\n\n"))
    elif change == "journal":
        files["journal"].write_bytes(b"garbage " * 1000)
    else:
        files["rows"].write_text("id,email,name\n1,a@example.com,Ada\n2,b@example.com\n")
    with CaptureServer() as server:
        result = run(_send(files, *_server(server)))
        assert server.connections == 0
    assert result.code == 2
    assert len(result.error_lines) == 1 and error in result.stderr, result.stderr
    assert result.stderr.startswith("asmtp bulk send: ")


def test_a_journal_in_use_is_refused(files: dict[str, Path], smtp_sink: CaptureServer) -> None:
    held = Journal(files["journal"])
    try:
        result = run(_send(files, *_server(smtp_sink)))
        report = run(["bulk", "report", str(files["journal"])])
    finally:
        held.close()
    assert result.code == 2 and "welcome.db is in use by another process" in result.stderr
    assert report.code == 2 and len(report.error_lines) == 1
    assert smtp_sink.messages == []


def test_an_unreachable_server_is_exit_3_with_nothing_sent(files: dict[str, Path]) -> None:
    port = free_port()
    result = run(_send(files, "--host", "127.0.0.1", "--port", str(port), "--tls", "none"))
    assert result.code == 3
    assert result.error_lines == [
        f"asmtp bulk send: cannot connect to 127.0.0.1:{port}: Connection refused"
    ]
    journal = Journal(files["journal"], readonly=True)
    assert journal.counts()["pending"] == 3
    journal.close()


@pytest.mark.parametrize("rate", ["0", "fast", "-1/s"])
def test_a_bad_rate_is_a_usage_error(files: dict[str, Path], rate: str) -> None:
    result = run(_send(files, "--rate", rate))
    assert result.code == 2 and len(result.error_lines) == 1 and "--rate" in result.stderr
