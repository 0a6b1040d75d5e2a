"""``asmtp bulk send`` against Postfix: 10,000 rows, killed, stopped, resumed, counted.

Recipients Postfix refuses for good (an unknown user: 550) and for now (``busy``: 450)
are among the rows. The command runs as a process, is stopped with SIGKILL, SIGTERM and
SIGINT at points the seed picks, and is resumed; then the messages Postfix delivered to
the Maildir, found by the Message-ID each row's message carries, are held against the
journal: every row not refused arrived, none twice unless the journal once called it
unknown, and the journal's accepted rows are exactly the rows that arrived.
"""

from __future__ import annotations

import functools
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from interop import _kit
from interop._postfix_dovecot import BUSY
from interop.realservers import Servers
from support.campaigns import Plan, Runs, check, delivered, signals_for, unknown_rows

pytestmark = [pytest.mark.server("Postfix 3.7"), pytest.mark.feature("bulk campaign")]

ROWS = 10_000


def _past(moment: float) -> bool:
    return time.monotonic() >= moment


def _arrived(maildir: Path, campaign: str, expected: set[str], wait: float = 30.0) -> Counter[str]:
    """The campaign's rows in ``maildir``, once every ``expected`` row is there (bounded)."""
    deadline = time.monotonic() + wait
    while True:
        raw = (path.read_bytes() for sub in ("new", "cur") for path in (maildir / sub).iterdir())
        found = delivered(raw, campaign)
        if expected <= set(found) or time.monotonic() > deadline:
            time.sleep(0.5)  # and anything Postfix was still delivering twice
            raw = (
                path.read_bytes() for sub in ("new", "cur") for path in (maildir / sub).iterdir()
            )
            return delivered(raw, campaign)
        time.sleep(0.2)


def test_campaign_killed_stopped_and_resumed_delivers_each_row_once_through_postfix(
    servers: Servers, tmp_path: Path
) -> None:
    seed = int.from_bytes(_kit.token().encode()[:4], "big") % 1000
    rng = random.Random(seed)
    plan = Plan(
        ROWS,
        good=lambda n: servers.address("user"),
        refused=lambda n: f"nobody@{servers.domain}",
        busy=lambda n: BUSY,
    )
    rows, template = plan.write(tmp_path, servers.address("sender"))
    journal = tmp_path / "campaign.db"
    runs = Runs(
        [
            *("--rows", str(rows), "--id-column", "id", "--template", str(template)),
            *("--journal", str(journal), "--host", servers.host),
            *("--port", str(servers.smtp_port), "--tls", "none", "--helo", _kit.ME),
            *("--retries", "1", "--grace", "10"),
        ],
        journal,
    )
    unknown_ever: set[str] = set()
    for how in signals_for(seed):
        stop_at = time.monotonic() + rng.uniform(0.8, 2.5)
        code = runs.interrupt(how, functools.partial(_past, stop_at))
        states = runs.states()
        in_flight = {row for row, state in states.items() if state == "in_flight"}
        if how == signal.SIGKILL:
            assert code == -signal.SIGKILL, f"seed {seed}: {runs.stderr[-1]}"
            unknown_ever |= in_flight
        else:
            assert code == 130, f"seed {seed}: {runs.stderr[-1]}"
            assert not in_flight and unknown_rows(states) <= unknown_ever
    assert runs.run() == 1, runs.stderr[-1]  # through: the refused and busy rows remain
    unknown_ever |= unknown_rows(runs.states())
    if unknown_ever:
        runs.run("--resend-unknown")
    states = runs.states()
    accepted = {row for row, state in states.items() if state == "accepted"}
    arrived = _arrived(servers.maildir("user"), runs.campaign_id(), accepted)
    check(plan, states, arrived, unknown_ever)
