"""``benchmarks/_work.py``: reading cachegrind's totals and the cost of one message."""

from __future__ import annotations

from pathlib import Path

from benchmarks._work import Counts

# The header and totals cachegrind writes with --cache-sim=yes --branch-sim=yes (3.19).
_OUTPUT = """\
desc: I1 cache:         32768 B, 64 B, 8-way associative
cmd: python -m benchmarks._worker
events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw Bc Bcm Bi Bim
fl=/tmp/x.c
fn=main
1 5 0 0 0 0 0 0 0 0 0 0 0 0
summary: {}
"""


def _written(tmp_path: Path, name: str, totals: tuple[int, ...]) -> Path:
    path = tmp_path / name
    path.write_text(_OUTPUT.format(" ".join(map(str, totals))))
    return path


def test_totals_are_read_by_their_event_names(tmp_path: Path) -> None:
    #        Ir  I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw Bc Bcm Bi Bim
    totals = (1000, 7, 1, 400, 20, 2, 200, 3, 4, 90, 5, 30, 6)
    counts = Counts.from_file(_written(tmp_path, "one", totals))
    assert counts == Counts(instructions=1000, l1_misses=30, ll_misses=7, mispredicts=11)
    assert counts.estimated_cycles == 1000 + 10 * 30 + 100 * 7 + 15 * 11


def test_one_message_is_the_difference_over_the_extra_messages(tmp_path: Path) -> None:
    fewer = Counts.from_file(
        _written(tmp_path, "400", (5000, 10, 1, 0, 10, 1, 0, 10, 1, 0, 5, 0, 5))
    )
    more = Counts.from_file(
        _written(tmp_path, "1600", (6200, 22, 1, 0, 22, 1, 0, 22, 4, 0, 11, 0, 8))
    )
    assert more.per_message(fewer, 1200) == Counts(
        instructions=1.0, l1_misses=36 / 1200, ll_misses=3 / 1200, mispredicts=9 / 1200
    )
