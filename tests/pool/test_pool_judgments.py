"""The pool's judgments on a failed send, as plain functions: which failure calls for a new
connection, which one the connection (not the send) was to blame for, and the outcome a
stream reports for each kind of exception."""

from __future__ import annotations

import pytest

from asmtp import SendOutcome
from asmtp._bulk._backoff import died_unanswered, wants_fresh_connection
from asmtp._bulk._stream import failure_outcome
from asmtp.errors import (
    SMTPDataError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTransactionInterrupted,
    SMTPTransactionTimeout,
)

NOT_SENT = SendOutcome(accepted=False)


@pytest.mark.parametrize(
    ("exc", "fresh"),
    [
        (SMTPSenderRefused(452, b"4.5.3 Too many messages", "a@x"), True),
        (SMTPSenderRefused(451, b"4.3.0 try later", "a@x"), True),
        (SMTPSenderRefused(550, b"5.7.1 no", "a@x"), False),  # permanent: not retried at all
        (SMTPDataError(452, b"4.3.1 insufficient storage"), False),
        (SMTPRecipientsRefused({"b@x": (450, b"busy")}), False),
        (ValueError("bad input"), False),
    ],
)
def test_only_a_transient_refusal_of_mail_asks_for_a_new_connection(
    exc: Exception, fresh: bool
) -> None:
    assert wants_fresh_connection(exc) is fresh


@pytest.mark.parametrize(
    ("exc", "answered", "dead"),
    [
        (SMTPTransactionInterrupted("lost", NOT_SENT), False, True),
        (SMTPTransactionInterrupted("lost", NOT_SENT), True, False),  # the server took part
        (SMTPTransactionInterrupted("lost", SendOutcome(accepted=None)), False, False),
        (SMTPTransactionTimeout("slow", NOT_SENT), False, False),  # slow is not dead
        (SMTPServerDisconnected("lost"), False, False),
    ],
)
def test_a_connection_was_dead_only_if_lost_before_anything_of_the_send_was_answered(
    exc: Exception, answered: bool, dead: bool
) -> None:
    assert died_unanswered(exc, answered=answered) is dead


def test_a_failure_with_an_outcome_keeps_it_with_attempts_and_error() -> None:
    exc = SMTPTransactionInterrupted("lost", SendOutcome(None, ("b@x",), body_started=True))
    exc.attempts = 2  # type: ignore[attr-defined]
    outcome = failure_outcome(exc)
    assert (outcome.accepted, outcome.recipients, outcome.attempts) == (None, ("b@x",), 2)
    assert outcome.error is exc


def test_refusals_become_not_accepted_with_what_the_server_said() -> None:
    refused = failure_outcome(SMTPRecipientsRefused({"b@x": (550, b"5.1.1 unknown")}))
    assert (refused.accepted, refused.refused, refused.attempts) == (
        False,
        {"b@x": (550, b"5.1.1 unknown")},
        1,
    )
    sender = failure_outcome(SMTPSenderRefused(553, b"5.7.1 not you", "a@x"))
    assert (sender.accepted, sender.reply) == (False, (553, b"5.7.1 not you"))
    data = failure_outcome(SMTPDataError(554, "5.6.0 rejected"))  # smtplib allows str too
    assert data.reply == (554, b"5.6.0 rejected")
    other = failure_outcome(LookupError("the caller's hook"))
    assert (other.accepted, other.reply, type(other.error)) == (False, None, LookupError)
