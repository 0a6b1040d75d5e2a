"""Rows from CSV and JSON Lines: streamed, with stable ids and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from asmtp.campaign import InputError, Journal, Rows


def test_csv_rows_carry_their_fields_and_the_line_they_start_on(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text('id,email,note\n7,a@example.com,"two\nlines"\n\n9,b@example.com,x\n')
    rows = list(Rows(path, id_column="id"))
    assert [(r.line, r.id, r.fields["note"]) for r in rows] == [
        (2, "7", "two\nlines"),
        (5, "9", "x"),
    ]
    assert [r.id for r in Rows(path)] == ["2", "5"]  # without an id column: the line number
    assert Rows(path).columns() == ["id", "email", "note"]


def test_json_lines_rows(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text(
        '{"id": 1, "email": "a@example.com", "tags": ["x"]}\n\n{"id": "b", "email": "b@example.com"}\n'
    )
    rows = list(Rows(path, id_column="id"))
    assert [(r.line, r.id) for r in rows] == [(1, "1"), (3, "b")]
    assert rows[0].fields["tags"] == ["x"]
    assert Rows(path).columns() is None


@pytest.mark.parametrize(
    ("name", "content", "options", "error"),
    [
        ("p.csv", "email,name\n", {"id_column": "id"}, "no id column 'id'"),
        ("p.csv", "id,name\n1,x\n", {"id_column": "id"}, "no recipient column 'email'"),
        (
            "p.csv",
            "id,email\n1,a@x,extra\n",
            {"id_column": "id"},
            "line 2: 3 fields, the header names 2",
        ),
        ("p.csv", "id,email\n,a@x\n", {"id_column": "id"}, "line 2: the id column 'id' is empty"),
        ("p.csv", "id,id\n", {}, "names id twice"),
        ("p.csv", "", {}, "empty"),
        ("p.jsonl", '{"email": "a@x"}\nnot json\n', {}, "line 2: not JSON"),
        ("p.jsonl", "[1, 2]\n", {}, "line 1: not a JSON object"),
        ("p.jsonl", '{"email": "a@x", "id": null}\n', {"id_column": "id"}, "line 1: no id"),
        ("p.txt", "", {}, "cannot tell the format"),
    ],
)
def test_malformed_rows_are_one_clear_error(
    tmp_path: Path, name: str, content: str, options: dict[str, str], error: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=error):
        list(Rows(path, **options))  # type: ignore[arg-type]


def test_an_unreadable_file_or_one_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        Rows(tmp_path / "missing.csv").digest()
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email\nd\xe9j\xe0@example.com\n".encode("latin-1"))
    with pytest.raises(InputError, match="is not utf-8 text"):
        list(Rows(latin))


def test_an_id_used_twice_is_refused_before_the_journal_keeps_any(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,email\n1,a@x.org\n2,b@x.org\n1,c@x.org\n")
    journal = Journal(tmp_path / "j.db")
    with pytest.raises(InputError, match="line 4: the id '1' was already used"):
        journal.add_rows((r.id, r.line, None) for r in Rows(path, id_column="id"))
    assert sum(journal.counts().values()) == 0
    journal.close()


def test_the_digest_changes_with_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("email\na@x.org\n")
    first = Rows(path).digest()
    path.write_text("email\nb@x.org\n")
    assert Rows(path).digest() != first
