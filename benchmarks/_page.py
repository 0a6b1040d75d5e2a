"""The docs' performance page: the results put between its markers."""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["DOCS_PAGE", "ROOT", "write_docs"]

ROOT: Final = Path(__file__).resolve().parent.parent
DOCS_PAGE: Final = ROOT / "docs" / "performance.md"
START_MARK: Final = "<!-- benchmark results: start (written by benchmarks/run.py --write-docs) -->"
END_MARK: Final = "<!-- benchmark results: end -->"


def write_docs(report: str, page: Path = DOCS_PAGE) -> None:
    """Put ``report`` between the markers of the docs page (at its end if it has none).

    The page's own text (the method, where the time goes) is written in the page itself.
    """
    block = f"{START_MARK}\n\n{report}\n{END_MARK}\n"
    text = page.read_text(encoding="utf-8")
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        text = head + block + (f"\n{tail}" if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    page.write_text(text, encoding="utf-8")
