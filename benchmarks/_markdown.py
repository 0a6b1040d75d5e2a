"""Markdown tables, and the number formats the report's cells use."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["divide", "mib", "number", "ratio", "table"]


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str) -> list[str]:
    """A Markdown table; ``align`` holds one ``l`` or ``r`` per column."""
    marks = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def divide(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"
