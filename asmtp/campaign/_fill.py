"""A compiled placeholder template: Jinja2's, or a join when it is only ``{{ field }}``s.

Most campaign templates hold nothing but text and ``{{ name }}``: for those, Jinja2's own
parser finds the pieces once, and rendering a row joins them, with exactly Jinja2's
result (``str`` of the value, escaped where the environment autoescapes, an undefined
field an error) at a fraction of the cost of a render context per row. Anything else
(filters, expressions, blocks) renders with Jinja2, sandboxed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import jinja2
import jinja2.meta
import jinja2.nodes
from markupsafe import escape

from ._errors import RenderError

__all__ = ["Fill"]

_FAILURES: Final = (jinja2.exceptions.TemplateError, ArithmeticError, LookupError, TypeError)


class Fill:
    """``source`` compiled in ``env``; :meth:`render` raises :class:`RenderError` naming
    ``where``. :class:`jinja2.TemplateSyntaxError` when ``source`` is not a template."""

    def __init__(self, env: jinja2.Environment, source: str, where: str) -> None:
        self.where = where
        parsed = env.parse(source)
        self.variables = frozenset(jinja2.meta.find_undeclared_variables(parsed) - set(env.globals))
        self._escape = bool(env.autoescape)
        self._pieces = _pieces(parsed, env)
        self._jinja = None if self._pieces is not None else env.from_string(source)

    def render(self, fields: Mapping[str, Any]) -> str:
        if self._pieces is None:
            assert self._jinja is not None  # noqa: S101 - one or the other
            return self._render_jinja(fields)
        out: list[str] = []
        for text, name in self._pieces:
            if name is None:
                out.append(text)
                continue
            try:
                value = fields[name]
            except KeyError:
                raise RenderError(f"{self.where}: '{name}' is undefined") from None
            out.append(escape(value) if self._escape else str(value))
        return "".join(out)

    def _render_jinja(self, fields: Mapping[str, Any]) -> str:
        assert self._jinja is not None  # noqa: S101 - called only then
        try:
            return self._jinja.render(fields)
        except jinja2.UndefinedError as exc:
            raise RenderError(f"{self.where}: {exc.message}") from None
        except _FAILURES as exc:
            raise RenderError(f"{self.where}: {type(exc).__name__}: {exc}") from None


def _pieces(
    parsed: jinja2.nodes.Template, env: jinja2.Environment
) -> list[tuple[str, str | None]] | None:
    """``(text, None)`` and ``("", field)`` pieces when the template is only text and
    plain ``{{ field }}`` outputs (of no global name); else None."""
    pieces: list[tuple[str, str | None]] = []
    for statement in parsed.body:
        if not isinstance(statement, jinja2.nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, jinja2.nodes.TemplateData):
                pieces.append((node.data, None))
            elif (
                isinstance(node, jinja2.nodes.Name)
                and node.ctx == "load"
                and node.name not in env.globals
            ):
                pieces.append(("", node.name))
            else:
                return None
    return pieces
