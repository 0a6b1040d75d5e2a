"""What can stop a campaign before it sends: every error names the file and what is wrong.

One base class, :class:`CampaignError`, so a caller (and the command line) can catch
them all; none of them is raised once a message is on its way. A problem with one row
(an undefined field, a bad address) is not an exception: it is that row's outcome.
"""

from __future__ import annotations

__all__ = [
    "CampaignError",
    "InputError",
    "JournalError",
    "JournalLocked",
    "JournalMismatch",
    "RenderError",
    "TemplateError",
]


class CampaignError(Exception):
    """A campaign cannot run as asked; nothing was sent because of it."""


class InputError(CampaignError):
    """The rows cannot be read: a missing or unreadable file, a malformed line, a missing
    column, a row without an id or an id used twice."""


class TemplateError(CampaignError):
    """The message template cannot be used: unreadable, not a message, bad Jinja2 syntax,
    or no sender."""


class JournalError(CampaignError):
    """The journal cannot be used: not a campaign journal, damaged, or unwritable."""


class JournalLocked(JournalError):
    """Another process (a campaign running) holds the journal."""


class JournalMismatch(JournalError):
    """The journal belongs to a campaign with another input, template or settings.

    Resuming would send something else to the rows already done; ``force=True`` (``--force``)
    resumes anyway, matching rows by their id.
    """


class RenderError(ValueError):
    """One row cannot become a message: an undefined field, a line break in a header, an
    address that is not one. The campaign records it as that row's outcome and goes on."""
