"""Sphinx extension: render what the generators would otherwise get wrong.

- A dataclass field with a default factory shows as ``field=<factory>`` in its signature,
  which is not Python, so Sphinx splits the whole signature at each comma; it is shown as
  the factory's call instead (``refused=dict()``).
- Click help is plain text, for a terminal: sphinx-click reads it as reST, where
  ``'*@blocked.example'`` starts emphasis. Its inline markup characters are escaped.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import click
from sphinx.application import Sphinx

_INLINE_MARKUP = re.compile(r"([\\*`|]|_(?=\W|$))")
_HELP_LINE = re.compile(r"^(\s*(?:\| )?)(.*)$")


def show_default_factories(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    if signature is None or "<factory>" not in signature:
        return None
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        return None
    for field in dataclasses.fields(obj):
        if field.default_factory is not dataclasses.MISSING:
            call = f"{getattr(field.default_factory, '__name__', 'factory')}()"
            signature = signature.replace("<factory>", call, 1)
    return signature, return_annotation


def escape_click_help(app: Sphinx, ctx: click.Context, lines: list[str]) -> None:
    for index, line in enumerate(lines):
        if line.lstrip().startswith((".. ", ":")):
            continue  # reST sphinx-click wrote: ``.. option:: --refuse``, ``:default: ...``
        match = _HELP_LINE.match(line)
        if match is not None:
            prefix, text = match.groups()
            lines[index] = prefix + _INLINE_MARKUP.sub(r"\\\1", text)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-signature", show_default_factories)
    for event in ("sphinx-click-process-description", "sphinx-click-process-options"):
        app.connect(event, escape_click_help)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
