"""A template's placeholders against the rows' columns, checked before anything is sent."""

from __future__ import annotations

from ._errors import TemplateError
from ._rows import Rows
from ._template import Template

__all__ = ["check_columns"]


def check_columns(rows: Rows, template: Template) -> None:
    """:class:`TemplateError` when a placeholder names no column of a CSV file (JSON
    Lines rows each have their own fields: nothing to check)."""
    columns = rows.columns()
    if columns is None:
        return
    unknown = sorted(template.variables - set(columns))
    if unknown:
        raise TemplateError(
            f"{template.name} uses {', '.join(unknown)}, not a column of "
            f"{rows.path} (its columns: {', '.join(columns)})"
        )
