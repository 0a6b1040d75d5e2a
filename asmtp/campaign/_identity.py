"""What names a campaign's message wherever it is sent from: its Message-ID and Date.

A row's Message-ID is derived from the campaign and the row's id, so it stays the same
across resumes and across the machines of a distributed campaign: a receiver can tell a
repeat (RFC 5322 §3.6.4).
"""

from __future__ import annotations

import email.utils
import re
import time
from typing import Final

from ._template import Template

__all__ = ["date_header", "default_domain", "message_id"]

_NOT_IN_MSGID: Final = re.compile(r"[^A-Za-z0-9!#$&'*+/=?^_`{|}~-]")


def _escaped(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def message_id(campaign: str, row_id: str, domain: str) -> str:
    """``<campaign.row@domain>``, the row's id %-escaped to a dot-atom's characters."""
    escaped = row_id if row_id.isalnum() else _NOT_IN_MSGID.sub(_escaped, row_id)
    return f"<{campaign}.{escaped}@{domain}>"


def default_domain(sender: str | None, template: Template) -> str:
    """The Message-ID's domain when none is given: the sender's (or the template's
    Sender or From), else ``localhost``."""
    sender = sender or template.static_header("Sender") or template.static_header("From")
    domain = email.utils.parseaddr(sender or "")[1].rpartition("@")[2]
    return domain if domain and domain.isascii() else "localhost"


_last_date: tuple[int, str] = (0, "")


def date_header() -> str:
    """The Date header's value, made once a second (RFC 5322 §3.3)."""
    global _last_date
    now = int(time.time())
    if _last_date[0] != now:
        _last_date = (now, email.utils.formatdate(now))
    return _last_date[1]
