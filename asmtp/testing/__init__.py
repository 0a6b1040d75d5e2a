"""A test kit for code that sends mail: a capture server and a pytest plugin.

:class:`CaptureServer` is an SMTP or LMTP server on loopback that accepts mail and records
it, on a thread and event loop of its own, so the code under test may send with any
library (asmtp, aiosmtplib, smtplib, Django) from any event loop or none. It can refuse
senders, recipients or the data, close with ``421``, stall, and offer or hide PIPELINING,
CHUNKING (with a real BDAT), SMTPUTF8, STARTTLS and AUTH. The pytest plugin
(:mod:`asmtp.testing.plugin`) provides it as the ``smtp_sink`` fixture.

Needs the ``testing`` extra (``pip install 'asmtp[testing]'``: aiosmtpd and trustme), but
only when a server starts: importing this package needs the standard library alone.
"""

from __future__ import annotations

from ._assertions import assert_nothing_sent, assert_recipients, assert_sent
from ._received import ReceivedMessage
from ._server import CaptureServer
from ._state import Offer, Script
from ._tls import MissingExtra

__all__ = [
    "CaptureServer",
    "MissingExtra",
    "Offer",
    "ReceivedMessage",
    "Script",
    "assert_nothing_sent",
    "assert_recipients",
    "assert_sent",
]
