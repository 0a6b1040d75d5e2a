"""Bulk campaigns: a message per row of a list, sent once, through any stop or crash."""

from __future__ import annotations

from ._errors import (
    CampaignError,
    InputError,
    JournalError,
    JournalLocked,
    JournalMismatch,
    RenderError,
    TemplateError,
)
from ._journal import STATES, Durability, Journal
from ._progress import Progress
from ._rows import Row, Rows, RowsFormat
from ._runner import Campaign, Problem
from ._template import Template

__all__ = [
    "STATES",
    "Campaign",
    "CampaignError",
    "Durability",
    "InputError",
    "Journal",
    "JournalError",
    "JournalLocked",
    "JournalMismatch",
    "Problem",
    "Progress",
    "RenderError",
    "Row",
    "Rows",
    "RowsFormat",
    "Template",
    "TemplateError",
]
