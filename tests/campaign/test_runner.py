"""Campaign.run against the capture server: what is sent, what is recorded, what is resumed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import asmtp
from asmtp.campaign import (
    Campaign,
    Journal,
    JournalError,
    JournalMismatch,
    Progress,
    Rows,
    Template,
    TemplateError,
)
from asmtp.testing import CaptureServer

pytestmark = pytest.mark.anyio

TEMPLATE = (
    "From: News <news@example.org>\nTo: {{ email }}\nSubject: Hi {{ name }}\n\nHello {{ name }}\n"
)


def _campaign(
    tmp_path: Path, rows: str, template: str = TEMPLATE, name: str = "people.csv"
) -> Campaign:
    path = tmp_path / name
    path.write_text(rows, encoding="utf-8")
    source = tmp_path / "t.eml"
    source.write_text(template, encoding="utf-8")
    return Campaign(Rows(path, id_column="id"), Template.from_file(source), tmp_path / "j.db")


def _pool(server: CaptureServer, **options: object) -> asmtp.SMTPPool:
    return asmtp.SMTPPool("127.0.0.1", server.port, tls="none", timeout=5, **options)  # type: ignore[arg-type]


def _states(tmp_path: Path) -> dict[str, dict[str, object]]:
    journal = Journal(tmp_path / "j.db", readonly=True)
    try:
        return {record["id"]: record for record in journal.rows()}
    finally:
        journal.close()


async def test_each_row_is_sent_once_with_a_message_id_of_its_own(
    tmp_path: Path, smtp_sink: CaptureServer
) -> None:
    rows = "id,email,name\n" + "".join(f"u{n},u{n}@example.com,User {n}\n" for n in range(30))
    campaign = _campaign(tmp_path, rows)
    seen: list[Progress] = []
    async with _pool(smtp_sink, max_connections=3) as pool:
        progress = await campaign.run(pool, on_progress=seen.append)
    assert (progress.total, progress.accepted, progress.sent, progress.stopped) == (
        30,
        30,
        30,
        None,
    )
    assert progress.complete and seen[-1] == progress
    ids = sorted(m.message["Message-ID"] for m in smtp_sink.messages)
    assert len(set(ids)) == 30
    assert all(re.fullmatch(r"<[0-9a-f]{16}\.u\d+@example\.org>", i) for i in ids)
    message = next(m for m in smtp_sink.messages if m.rcpt_tos == ("u7@example.com",))
    assert message.subject == "Hi User 7" and message.text == "Hello User 7\n"
    record = _states(tmp_path)["u7"]
    assert (record["state"], record["attempts"], record["code"]) == ("accepted", 1, 250)
    assert record["recipients"] == {"u7@example.com": [250, "2.0.0 OK: message accepted"]}


async def test_refusals_are_recorded_per_recipient_and_not_retried_on_resume(
    tmp_path: Path, smtp_sink: CaptureServer
) -> None:
    smtp_sink.refuse_recipient("*@gone.example", "550 5.1.1 No such user")
    smtp_sink.refuse_recipient("*@busy.example", "451 4.2.1 Try later")
    rows = "id,email,name\n1,a@example.com,A\n2,b@gone.example,B\n3,c@busy.example,C\n"
    campaign = _campaign(tmp_path, rows)
    async with _pool(smtp_sink, retry=asmtp.RetryPolicy(attempts=1)) as pool:
        first = await campaign.run(pool)
        assert (first.accepted, first.refused, first.failed) == (1, 1, 1)
        states = _states(tmp_path)
        assert states["2"]["state"] == "refused" and states["2"]["code"] == 550
        assert states["3"]["state"] == "failed" and states["3"]["code"] == 451
        received = smtp_sink.messages
        smtp_sink.reset()  # the busy mailbox takes mail again
        smtp_sink.refuse_recipient("*@gone.example", "550 5.1.1 No such user")
        second = await campaign.run(pool, resume=True)
    assert (second.accepted, second.refused, second.failed, second.to_send) == (2, 1, 0, 1)
    assert [m.rcpt_tos for m in received + smtp_sink.messages] == [
        ("a@example.com",),
        ("c@busy.example",),
    ]
    assert _states(tmp_path)["3"]["attempts"] == 2


async def test_a_row_that_cannot_be_rendered_fails_before_any_byte_and_the_run_goes_on(
    tmp_path: Path, smtp_sink: CaptureServer
) -> None:
    rows = '{"id": 1, "email": "a@example.com", "name": "A"}\n{"id": 2, "email": "b@example.com"}\n{"id": 3, "email": "nope", "name": "C"}\n'
    campaign = _campaign(tmp_path, rows, name="people.jsonl")
    async with _pool(smtp_sink) as pool:
        progress = await campaign.run(pool)
    assert (progress.accepted, progress.failed) == (1, 2)
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("a@example.com",)]
    states = _states(tmp_path)
    assert states["2"]["error"] == "cannot render: header Subject: 'name' is undefined"
    assert states["3"]["error"] == "cannot render: To: not an address (user@domain): 'nope'"
    assert states["2"]["attempts"] == 0


async def test_rows_whose_fate_is_unknown_are_resent_only_when_asked(
    tmp_path: Path, smtp_sink: CaptureServer
) -> None:
    smtp_sink.stall("data", 3)  # the end of the data goes out; the reply comes too late
    campaign = _campaign(tmp_path, "id,email,name\n1,a@example.com,A\n")
    async with asmtp.SMTPPool("127.0.0.1", smtp_sink.port, tls="none", timeout=0.5) as pool:
        first = await campaign.run(pool)
        assert (first.unknown, first.unknown_rows) == (1, ("1",))
        smtp_sink.reset()
        again = await campaign.run(pool, resume=True)
        assert again.to_send == 0 and smtp_sink.messages == []
        resent = await campaign.run(pool, resume=True, resend_unknown=True)
    assert resent.accepted == 1 and len(smtp_sink.messages) == 1
    journal = Journal(tmp_path / "j.db", readonly=True)
    campaign_id = journal.settings()["campaign"]
    journal.close()
    # The same Message-ID as the first time: the receiver can tell the repeat.
    assert smtp_sink.messages[0].message["Message-ID"] == f"<{campaign_id}.1@example.org>"


async def test_stop_takes_no_further_row_and_leaves_none_in_flight(
    tmp_path: Path, smtp_sink: CaptureServer
) -> None:
    rows = "id,email,name\n" + "".join(f"u{n},u{n}@example.com,U\n" for n in range(3000))
    campaign = _campaign(tmp_path, rows)

    def stop_soon(progress: Progress) -> None:
        if progress.sent >= 100:
            campaign.stop()

    async with _pool(smtp_sink, max_connections=2) as pool:
        progress = await campaign.run(pool, on_progress=stop_soon, progress_interval=0)
    assert progress.stopped == "stopped"
    assert 100 <= progress.accepted < 3000 and progress.pending == 3000 - progress.accepted
    states = [r["state"] for r in _states(tmp_path).values()]
    assert set(states) == {"accepted", "pending"}
    assert len(smtp_sink.messages) == progress.accepted


async def test_a_journal_of_another_campaign_is_refused_unless_forced(
    tmp_path: Path, smtp_sink: CaptureServer
) -> None:
    async with _pool(smtp_sink) as pool:
        await _campaign(tmp_path, "id,email,name\n1,a@example.com,A\n").run(pool)
        again = _campaign(tmp_path, "id,email,name\n1,a@example.com,A\n")
        with pytest.raises(JournalError, match="holds a campaign already: resume it"):
            await again.run(pool)
        changed = _campaign(
            tmp_path, "id,email,name\n1,a@example.com,A\n2,b@example.com,B\n", TEMPLATE + "Bye\n"
        )
        with pytest.raises(JournalMismatch, match="another input, template"):
            await changed.run(pool, resume=True)
        forced = await changed.run(pool, resume=True, force=True)
    assert (forced.total, forced.accepted, forced.to_send) == (2, 2, 1)
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("a@example.com",), ("b@example.com",)]


async def test_a_placeholder_naming_no_column_is_an_error_before_connecting(tmp_path: Path) -> None:
    campaign = _campaign(tmp_path, "id,email\n1,a@example.com\n")
    with CaptureServer() as server:
        async with _pool(server) as pool:
            with pytest.raises(
                TemplateError, match=r"t.eml uses name, not a column of .*people.csv"
            ):
                await campaign.run(pool)
        assert server.connections == 0


async def test_check_renders_every_row_without_sending(tmp_path: Path) -> None:
    campaign = _campaign(
        tmp_path,
        '{"id": 1, "email": "a@example.com", "name": "A"}\n{"id": 2, "email": "x"}\n',
        name="p.jsonl",
    )
    problems = list(campaign.check())
    assert [(p.row.id, p.reason) for p in problems] == [
        ("2", "To: not an address (user@domain): 'x'")
    ]
    assert not (tmp_path / "j.db").exists()
