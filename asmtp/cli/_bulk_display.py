"""What a person sees of a campaign: a live bar on a terminal, plain lines elsewhere, a table.

The bar (rich) shows rows done out of the total, the pace, the time left and the count in
each state; when standard error is not a terminal (a log file, CI), a plain line is
written every few seconds instead, so logs stay readable.
"""

from __future__ import annotations

import csv
import datetime
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from asmtp.campaign import STATES
from asmtp.campaign import Progress as CampaignProgress

from ._common import UsageFailure

__all__ = ["Display", "counts_table", "summary_line", "when", "write_csv"]

_PLAIN_EVERY: Final = 5.0
_CSV_FIELDS: Final = (
    "id",
    "line",
    "recipient",
    "state",
    "attempts",
    "code",
    "reply",
    "error",
    "started",
    "finished",
    "recipients",
)


def summary_line(progress: CampaignProgress) -> str:
    """``1200/10000 rows done: 1190 accepted, 10 refused, 0 failed, 0 unknown``."""
    return (
        f"{progress.done}/{progress.total} rows done: {progress.accepted} accepted, "
        f"{progress.refused} refused, {progress.failed} failed, {progress.unknown} unknown"
    )


def _pace(progress: CampaignProgress) -> str:
    eta = progress.eta
    left = "" if eta is None else f", {time.strftime('%H:%M:%S', time.gmtime(eta))} left"
    return f"{progress.rate:,.0f} msg/s{left}"


class Display:
    """Shows a running campaign's progress on standard error (nothing when ``quiet``)."""

    def __init__(self, *, quiet: bool, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._live = not quiet and self._stream.isatty()
        self._bar: Progress | None = None
        self._task: Any = None
        self._next_line = 0.0

    def __enter__(self) -> Display:
        if self._live:
            self._bar = Progress(
                TextColumn("[bold]sending"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[pace]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[counts]}"),
                console=Console(file=self._stream),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("sending", total=None, pace="", counts="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)

    def __call__(self, progress: CampaignProgress) -> None:
        if self._quiet:
            return
        if self._bar is not None:
            counts = (
                f"[green]{progress.accepted} accepted[/] [red]{progress.refused} refused[/] "
                f"[yellow]{progress.failed} failed[/] [magenta]{progress.unknown} unknown[/]"
            )
            self._bar.update(
                self._task,
                total=progress.total,
                completed=progress.done,
                pace=f"{progress.rate:,.0f} msg/s",
                counts=counts,
            )
            return
        now = time.monotonic()
        if (
            now >= self._next_line
            or progress.stopped is not None
            or progress.sent == progress.to_send
        ):
            self._next_line = now + _PLAIN_EVERY
            print(f"asmtp bulk: {summary_line(progress)} ({_pace(progress)})", file=self._stream)
            self._stream.flush()


def counts_table(counts: dict[str, int], title: str) -> Table:
    """Rows per state, with each state's share of the total."""
    total = sum(counts.values())
    table = Table(title=title, title_justify="left")
    table.add_column("state")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    for state in STATES:
        share = f"{counts[state] / total:.1%}" if total else "-"
        table.add_row(state, f"{counts[state]:,}", share)
    table.add_row("total", f"{total:,}", "", style="bold")
    return table


def print_table(table: Table, stream: TextIO | None = None) -> None:
    """A table on ``stream`` (standard output), plain when it is not a terminal."""
    Console(file=stream or sys.stdout, highlight=False).print(table)


def listed(ids: Sequence[str], total: int, limit: int = 20) -> str:
    """``a, b, c`` (and ``... and N more`` of ``total``)."""
    shown = ", ".join(ids[:limit])
    return shown + (f" ... and {total - limit} more" if total > limit else "")


def when(stamp: float) -> str:
    """A Unix time as local date and time, to the second."""
    return datetime.datetime.fromtimestamp(stamp).isoformat(" ", "seconds")


def write_csv(records: Iterable[dict[str, Any]], path: Path) -> None:
    """Every journal record as a CSV line to ``path`` (``-``: standard output)."""
    if str(path) == "-":
        _rows_csv(records, sys.stdout)
        return
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            _rows_csv(records, out)
    except OSError as exc:
        raise UsageFailure(f"--csv: cannot write {path}: {exc.strerror or exc}") from exc


def _rows_csv(records: Iterable[dict[str, Any]], out: TextIO) -> None:
    writer = csv.writer(out)
    writer.writerow(_CSV_FIELDS)
    for record in records:
        for stamp in ("started", "finished"):
            if record[stamp] is not None:
                record[stamp] = when(record[stamp])
        record["recipients"] = " ".join(
            f"{address}={code}" for address, (code, _) in record["recipients"].items()
        )
        writer.writerow([record[name] for name in _CSV_FIELDS])
