"""The README and docs pages: runnable examples run, commands and diagrams stay current."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_RUNNABLE = re.compile(r"<!-- runnable -->\n```python\n(.*?)```", re.S)
_PORT = "8025"  # the port the examples use for a local test server


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, match in enumerate(_RUNNABLE.finditer(page.read_text(encoding="utf-8"))):
            found.append((f"{page.name}#{number}", match.group(1)))
    return found


def test_the_pages_have_runnable_examples() -> None:
    names = {name.split("#")[0] for name, _ in _examples()}
    assert {"README.md", "quickstart.md", "protocol.md"} <= names


@pytest.mark.parametrize(("name", "code"), _examples(), ids=[n for n, _ in _examples()])
def test_runnable_example_runs_against_a_local_server(
    name: str, code: str, smtpd_server_factory: SMTPDServerFactory
) -> None:
    """Each example runs as written, with only the server's port changed."""
    server = smtpd_server_factory()
    result = subprocess.run(  # noqa: S603 - our own interpreter and our own docs
        [sys.executable, "-c", code.replace(_PORT, str(server.port))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n\s*(.*?)\n\s*```", readme, re.S)
    test_command = next(c.strip() for c in commands if "nox -s tests" in c)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_state_diagram_in_the_docs_matches_the_transition_table() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import gen_state_diagram
    finally:
        sys.path.remove(str(ROOT / "docs"))
    page = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert gen_state_diagram.render(page) == page, "run: python docs/gen_state_diagram.py"
