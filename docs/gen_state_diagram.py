"""Regenerate the state diagram in docs/protocol.md from the core's transition table."""

from __future__ import annotations

import pathlib
import re

from asmtp.protocol._state import mermaid_diagram

PAGE = pathlib.Path(__file__).with_name("protocol.md")
_BLOCK = re.compile(r"(<!-- state-diagram:start -->\n).*?(<!-- state-diagram:end -->)", re.S)


def render(page: str) -> str:
    """``page`` with the diagram block replaced by the current diagram."""
    diagram = "```mermaid\n" + mermaid_diagram() + "```\n"
    return _BLOCK.sub(lambda m: m.group(1) + diagram + m.group(2), page)


if __name__ == "__main__":
    PAGE.write_text(render(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
