"""``benchmarks/_page.py``: the results land between the performance page's markers."""

from __future__ import annotations

from pathlib import Path

from benchmarks._page import END_MARK, START_MARK, write_docs


def test_the_results_replace_the_last_ones_and_the_page_keeps_its_own_text(
    tmp_path: Path,
) -> None:
    page = tmp_path / "performance.md"
    page.write_text(f"# Method\n\n{START_MARK}\n\nold figures\n{END_MARK}\n\n## Where\n\nkept\n")
    write_docs("new figures\n", page)
    assert page.read_text() == (
        f"# Method\n\n{START_MARK}\n\nnew figures\n\n{END_MARK}\n\n## Where\n\nkept\n"
    )


def test_a_page_without_markers_gets_the_results_at_its_end(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text("# Method\n\ntext\n")
    write_docs("figures\n", page)
    assert page.read_text() == f"# Method\n\ntext\n\n{START_MARK}\n\nfigures\n\n{END_MARK}\n"
