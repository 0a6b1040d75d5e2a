"""The pool's synchronous bookkeeping: idle slots, rate spacing, backoff and what is retryable.

No sockets and no event loop: :class:`Idle`, :class:`RateLimiter`, :func:`retry_delay`,
:class:`ConnectBackoff` and :func:`is_retryable` are plain functions of their inputs (a fake
connection stands in for :class:`asmtp._client.Session`, exposing only ``is_connected``,
``state`` and ``reusable()``).
"""

from __future__ import annotations

import math
import random
import smtplib
import ssl
from dataclasses import dataclass
from typing import cast

import pytest

from asmtp import RetryPolicy, SendOutcome, SendResult, SMTPPool
from asmtp._bulk import is_retryable, retry_delay
from asmtp._bulk._backoff import Admission, ConnectBackoff, own_copy
from asmtp._bulk._idle import Idle, RateLimiter, Slot
from asmtp._client import Session
from asmtp.errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPNotSupportedError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTransactionInterrupted,
    SMTPTransactionTimeout,
    TLSRequiredError,
)
from asmtp.protocol import State


@dataclass
class FakeSession:
    """What Idle reads from a connection; ``unread``: the server wrote while it was idle."""

    is_connected: bool = True
    state: State | None = State.READY
    unread: bool = False

    def reusable(self) -> bool:
        return self.is_connected and not self.unread


def make_slot(*, sent: int = 0, connected: bool = True, state: State | None = State.READY) -> Slot:
    return Slot(cast(Session, FakeSession(connected, state)), sent=sent)


def fake(slot: Slot) -> FakeSession:
    return cast(FakeSession, slot.session)


# -- Idle --------------------------------------------------------------------------------------


def test_empty_pool_says_open_a_connection() -> None:
    idle = Idle(idle_timeout=30.0, max_messages=10)
    assert idle.checkout(now=0.0) == (None, [])
    assert len(idle) == 0


def test_checkin_keeps_a_ready_connection_and_stamps_it() -> None:
    idle = Idle(idle_timeout=30.0, max_messages=10)
    slot = make_slot(sent=1)
    assert idle.checkin(slot, now=5.0) is True
    assert slot.idle_since == 5.0
    assert len(idle) == 1
    assert idle.checkout(now=6.0) == (slot, [])
    assert len(idle) == 0


def test_checkout_reuses_the_newest_connection() -> None:
    idle = Idle(idle_timeout=30.0, max_messages=10)
    older, newer = make_slot(), make_slot()
    idle.checkin(older, now=1.0)
    idle.checkin(newer, now=2.0)
    assert idle.checkout(now=3.0) == (newer, [])
    assert idle.checkout(now=3.0) == (older, [])
    assert idle.checkout(now=3.0) == (None, [])


def test_connection_idle_longer_than_the_timeout_is_expired_not_reused() -> None:
    idle = Idle(idle_timeout=10.0, max_messages=10)
    slot = make_slot()
    idle.checkin(slot, now=0.0)
    assert idle.checkout(now=10.5) == (None, [slot])
    assert len(idle) == 0


def test_idle_exactly_the_timeout_is_still_reused() -> None:
    idle = Idle(idle_timeout=10.0, max_messages=10)
    slot = make_slot()
    idle.checkin(slot, now=0.0)
    assert idle.checkout(now=10.0) == (slot, [])


def test_an_expired_newest_connection_expires_every_older_one() -> None:
    idle = Idle(idle_timeout=10.0, max_messages=10)
    a, b, c = make_slot(), make_slot(), make_slot()
    idle.checkin(a, now=0.0)
    idle.checkin(b, now=1.0)
    idle.checkin(c, now=2.0)
    slot, expired = idle.checkout(now=100.0)
    assert slot is None
    assert sorted(map(id, expired)) == sorted(map(id, [a, b, c]))
    assert len(idle) == 0


def test_fresh_newest_is_reused_while_an_older_expired_one_waits() -> None:
    """Only the newest is looked at; the older expired one goes at a later checkout."""
    idle = Idle(idle_timeout=10.0, max_messages=10)
    old, fresh = make_slot(), make_slot()
    idle.checkin(old, now=0.0)
    idle.checkin(fresh, now=8.0)
    assert idle.checkout(now=12.0) == (fresh, [])
    assert idle.checkout(now=12.0) == (None, [old])


@pytest.mark.parametrize(
    ("connected", "state"),
    [
        pytest.param(False, None, id="disconnected"),
        pytest.param(True, State.CLOSED, id="closed"),
        pytest.param(True, State.MAIL, id="mid-transaction"),
        pytest.param(True, State.BODY, id="mid-body"),
        pytest.param(True, State.ERROR, id="error"),
    ],
)
def test_checkin_drops_a_connection_out_of_step(connected: bool, state: State | None) -> None:
    idle = Idle(idle_timeout=30.0, max_messages=10)
    assert idle.checkin(make_slot(connected=connected, state=state), now=0.0) is False
    assert len(idle) == 0


def test_checkin_drops_a_connection_that_reached_max_messages() -> None:
    idle = Idle(idle_timeout=30.0, max_messages=3)
    assert idle.checkin(make_slot(sent=2), now=0.0) is True
    assert idle.checkin(make_slot(sent=3), now=0.0) is False
    assert idle.checkin(make_slot(sent=4), now=0.0) is False
    assert len(idle) == 1


def test_checkout_discards_a_connection_that_fell_out_of_step_while_idle() -> None:
    """Kept READY, later seen closed: handed back for closing, the next one is reused."""
    idle = Idle(idle_timeout=30.0, max_messages=10)
    good, broken = make_slot(), make_slot()
    idle.checkin(good, now=0.0)
    idle.checkin(broken, now=1.0)
    fake(broken).is_connected = False
    assert idle.checkout(now=2.0) == (good, [broken])


def test_checkout_discards_a_connection_the_server_wrote_to_while_idle() -> None:
    """A 421, a close or a stray reply while idle: closed, never handed out."""
    idle = Idle(idle_timeout=30.0, max_messages=10)
    good, written_to = make_slot(), make_slot()
    idle.checkin(good, now=0.0)
    idle.checkin(written_to, now=1.0)
    fake(written_to).unread = True
    assert idle.checkout(now=2.0) == (good, [written_to])


def test_checkout_discards_a_connection_no_longer_ready() -> None:
    idle = Idle(idle_timeout=30.0, max_messages=10)
    slot = make_slot()
    idle.checkin(slot, now=0.0)
    fake(slot).state = State.CLOSED
    assert idle.checkout(now=1.0) == (None, [slot])


def test_a_greeted_connection_opened_ahead_is_kept_and_reused() -> None:
    """SMTPPool.connect() opens a connection that has not said EHLO yet: in step all the same."""
    idle = Idle(idle_timeout=30.0, max_messages=10)
    slot = make_slot(state=State.GREETED)
    assert idle.checkin(slot, now=0.0)
    assert idle.checkout(now=1.0) == (slot, [])


def test_a_worn_connection_is_never_kept() -> None:
    idle = Idle(idle_timeout=30.0, max_messages=10)
    slot = make_slot()
    slot.worn = True
    assert not idle.checkin(slot, now=0.0)
    assert len(idle) == 0


def test_sweep_takes_out_the_expired_and_the_unusable_and_keeps_the_rest() -> None:
    idle = Idle(idle_timeout=10.0, max_messages=10)
    old, closed, fresh = make_slot(), make_slot(), make_slot()
    idle.checkin(old, now=0.0)
    idle.checkin(closed, now=5.0)
    idle.checkin(fresh, now=6.0)
    fake(closed).unread = True
    assert idle.next_expiry() == 10.0  # the oldest one's
    assert idle.sweep(now=10.0) == [old, closed]
    assert idle.next_expiry() == 16.0
    assert idle.checkout(now=11.0) == (fresh, [])
    assert idle.next_expiry() is None


def test_oldest_takes_out_the_connection_idle_longest() -> None:
    """A retry bound for a new connection closes one idle first when the pool is full."""
    idle = Idle(idle_timeout=30.0, max_messages=10)
    older, newer = make_slot(), make_slot()
    idle.checkin(older, now=1.0)
    idle.checkin(newer, now=2.0)
    assert idle.oldest() == [older]
    assert idle.oldest() == [newer]
    assert idle.oldest() == []
    assert len(idle) == 0


def test_drain_returns_every_idle_connection_once() -> None:
    idle = Idle(idle_timeout=30.0, max_messages=10)
    slots = [make_slot() for _ in range(3)]
    for n, slot in enumerate(slots):
        idle.checkin(slot, now=float(n))
    assert idle.drain() == slots
    assert idle.drain() == []
    assert len(idle) == 0


# -- RateLimiter -------------------------------------------------------------------------------


def test_no_rate_limit_never_waits() -> None:
    limiter = RateLimiter(None)
    assert [limiter.reserve(0.0) for _ in range(100)] == [0.0] * 100


def test_rate_limit_spaces_reservations_by_the_interval() -> None:
    limiter = RateLimiter(20.0)
    waits = [limiter.reserve(0.0) for _ in range(10)]
    assert waits == pytest.approx([n * 0.05 for n in range(10)])


def test_rate_limit_counts_from_now_once_the_schedule_is_past() -> None:
    limiter = RateLimiter(10.0)
    assert limiter.reserve(0.0) == 0.0
    assert limiter.reserve(0.0) == pytest.approx(0.1)
    # Long after: no debt and no credit carried over.
    assert limiter.reserve(5.0) == 0.0
    assert limiter.reserve(5.0) == pytest.approx(0.1)


def test_rate_limit_partly_elapsed_interval_waits_the_rest() -> None:
    limiter = RateLimiter(4.0)
    assert limiter.reserve(10.0) == 0.0
    assert limiter.reserve(10.1) == pytest.approx(0.15)


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_rate_limit_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        RateLimiter(rate)


def test_pool_rejects_bad_limits() -> None:
    with pytest.raises(ValueError):
        SMTPPool("127.0.0.1", 1, max_connections=0)
    with pytest.raises(ValueError):
        SMTPPool("127.0.0.1", 1, max_messages_per_connection=0)
    with pytest.raises(ValueError):
        SMTPPool("127.0.0.1", 1, rate_limit=0)


# -- retry_delay --------------------------------------------------------------------------------


def test_retry_delay_doubles_from_the_base_without_jitter() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.5, max_delay=100.0, jitter=False)
    assert [retry_delay(policy, n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_retry_delay_is_capped_at_max_delay() -> None:
    policy = RetryPolicy(attempts=100, base_delay=1.0, max_delay=5.0, jitter=False)
    assert [retry_delay(policy, n) for n in (3, 4, 5, 50)] == [4.0, 5.0, 5.0, 5.0]


def test_retry_delay_cap_holds_for_huge_attempt_numbers() -> None:
    policy = RetryPolicy(attempts=2000, base_delay=1.0, max_delay=30.0, jitter=False)
    assert retry_delay(policy, 1000) == 30.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 20])
def test_retry_delay_jitter_stays_within_half_to_one_and_a_half(attempt: int) -> None:
    policy = RetryPolicy(attempts=30, base_delay=0.5, max_delay=8.0, jitter=True)
    nominal = min(8.0, 0.5 * 2.0 ** (attempt - 1))
    rng = random.Random(20240601)
    delays = [retry_delay(policy, attempt, rng) for _ in range(2000)]
    assert all(0.5 * nominal <= d < 1.5 * nominal for d in delays)
    # The factor really varies across its range, not stuck at one end.
    assert min(delays) < 0.6 * nominal
    assert max(delays) > 1.4 * nominal


def test_retry_delay_jitter_comes_from_the_given_random() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=60.0, jitter=True)
    first = [retry_delay(policy, n, random.Random(7)) for n in range(1, 5)]
    again = [retry_delay(policy, n, random.Random(7)) for n in range(1, 5)]
    assert first == again
    expected = [min(60.0, 2.0 ** (n - 1)) * (0.5 + random.Random(7).random()) for n in range(1, 5)]
    assert first == pytest.approx(expected)


def test_retry_delay_with_the_default_random_is_within_bounds() -> None:
    policy = RetryPolicy()
    assert all(0.25 <= retry_delay(policy, 1) < 0.75 for _ in range(200))


def test_retry_policy_defaults_match_the_docs() -> None:
    assert RetryPolicy() == RetryPolicy(attempts=3, base_delay=0.5, max_delay=30.0, jitter=True)


# -- ConnectBackoff: the pool's shared backoff from a failing destination -------------------------

STEADY = RetryPolicy(attempts=3, base_delay=1.0, max_delay=3.0, jitter=False)
REFUSED = ConnectionRefusedError(111, "Connection refused")


def _failing(failures: int, *, at: float = 0.0) -> ConnectBackoff:
    """A backoff that saw ``failures`` probes fail, each at ``at`` plus the delays so far."""
    backoff = ConnectBackoff(STEADY)
    now = at
    for _ in range(failures):
        admission = backoff.admit(max(now, backoff.retry_at))
        assert admission.token is not None
        now = max(now, backoff.retry_at)
        assert backoff.failed(admission.token, REFUSED, now, retryable=True)
    return backoff


def test_a_healthy_destination_admits_every_connection_at_once() -> None:
    backoff = ConnectBackoff(STEADY)
    assert [backoff.admit(0.0) for _ in range(3)] == [Admission(token=0)] * 3


def test_a_failure_closes_the_door_until_the_delay_then_one_probe_goes() -> None:
    backoff = _failing(1, at=10.0)
    assert backoff.retry_at == 11.0
    assert backoff.admit(10.25) == Admission(wait=0.75)
    probe = backoff.admit(11.0)
    assert probe.token is not None
    assert backoff.admit(11.5) == Admission(wait=math.inf)  # until the probe settles
    backoff.opened()
    assert backoff.admit(11.5).token is not None
    assert (backoff.failures, backoff.error) == (0, None)


def test_the_connections_of_one_round_count_as_one_failure() -> None:
    backoff = ConnectBackoff(STEADY)
    wave = [backoff.admit(0.0).token for _ in range(10)]
    counted = [
        backoff.failed(token, REFUSED, 0.0, retryable=True) for token in wave if token is not None
    ]
    assert counted == [True] + [False] * 9
    assert (backoff.failures, backoff.failed_total) == (1, 1)


def test_failures_in_a_row_grow_the_delay_to_its_cap_and_then_give_up() -> None:
    backoff = ConnectBackoff(STEADY)
    now, delays = 0.0, []
    for _ in range(4):
        admission = backoff.admit(now)
        assert admission.token is not None
        backoff.failed(admission.token, REFUSED, now, retryable=True)
        delays.append(backoff.retry_at - now)
        now = backoff.retry_at
    assert delays == [1.0, 2.0, 3.0, 3.0]
    assert backoff.gave_up
    assert backoff.admit(now - 0.5) == Admission(error=REFUSED)  # until the delay passes
    assert backoff.admit(now).token is not None  # then one probe


def test_with_connections_still_open_a_send_waits_for_one_instead_of_failing() -> None:
    backoff = _failing(3)
    assert backoff.gave_up
    assert backoff.admit(0.5, live=2) == Admission(wait=backoff.retry_at - 0.5)
    assert backoff.admit(0.5, live=0) == Admission(error=REFUSED)


def test_a_send_whose_deadline_comes_before_the_next_try_gives_up_at_once() -> None:
    backoff = _failing(1)
    assert backoff.admit(0.5, expires=0.9) == Admission(error=REFUSED)
    assert backoff.admit(0.5, expires=2.0) == Admission(wait=0.5)
    assert backoff.admit(0.5, expires=0.9, live=1) == Admission(wait=0.4)
    assert backoff.admit(0.9, expires=0.9, live=1) == Admission(error=REFUSED)


def test_a_failure_that_retrying_cannot_cure_gives_up_at_once() -> None:
    backoff = ConnectBackoff(STEADY)
    token = backoff.admit(0.0).token
    assert token is not None
    denied = SMTPAuthenticationError(535, b"5.7.8 bad credentials")
    assert backoff.failed(token, denied, 0.0, retryable=False)
    assert backoff.gave_up and backoff.admit(0.1) == Admission(error=denied)


def test_a_cancelled_probe_lets_the_next_send_probe() -> None:
    backoff = _failing(1)
    probe = backoff.admit(1.0)
    assert probe.token is not None and backoff.admit(1.0).wait == math.inf
    backoff.abandoned(probe.token)
    assert backoff.admit(1.0).token == probe.token


@pytest.mark.parametrize(
    "error",
    [
        SMTPConnectError(421, b"4.7.0 busy"),
        ConnectionRefusedError(111, "Connection refused"),
        SMTPProtocolError("malformed greeting"),
        SMTPTransactionInterrupted("lost", SendOutcome(accepted=False)),
        ssl.SSLCertVerificationError(1, "certificate verify failed"),
        TimeoutError("a connect took longer than 5 seconds"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_each_send_the_pool_gives_up_on_raises_its_own_copy_of_the_error(
    error: Exception,
) -> None:
    """Even for classes whose __init__ does not take back their args."""
    error.note = "kept"  # type: ignore[attr-defined]
    mine, theirs = own_copy(error), own_copy(error)
    assert mine is not theirs and mine is not error
    assert type(mine) is type(error) and mine.args == error.args and str(mine) == str(error)
    assert vars(mine) == vars(error)
    assert mine.__cause__ is error


# -- is_retryable -------------------------------------------------------------------------------


def _interrupted(accepted: bool | None) -> SMTPTransactionInterrupted:
    return SMTPTransactionInterrupted("lost", SendOutcome(accepted))


def _timed_out(accepted: bool | None) -> SMTPTransactionTimeout:
    return SMTPTransactionTimeout("timed out", SendOutcome(accepted))


RETRYABLE: list[object] = [
    pytest.param(SMTPSenderRefused(451, b"4.3.0 later", "a@x.test"), id="MAIL-451"),
    pytest.param(SMTPSenderRefused(421, b"4.3.2 closing", "a@x.test"), id="MAIL-421"),
    pytest.param(SMTPRecipientsRefused({"b@x.test": (450, b"busy")}), id="RCPT-all-450"),
    pytest.param(
        SMTPRecipientsRefused({"b@x.test": (450, b"busy"), "c@x.test": (421, b"bye")}),
        id="RCPT-all-4xx",
    ),
    pytest.param(SMTPDataError(452, b"4.3.1 full"), id="DATA-452"),
    pytest.param(SMTPDataError(421, b"4.3.2 closing"), id="DATA-421"),
    pytest.param(_interrupted(False), id="interrupted-not-accepted"),
    pytest.param(_timed_out(False), id="timeout-not-accepted"),
    pytest.param(SMTPServerDisconnected("Connection unexpectedly closed"), id="disconnected"),
    pytest.param(ConnectionRefusedError(111, "refused"), id="ConnectionRefusedError"),
    pytest.param(ConnectionResetError(104, "reset"), id="ConnectionResetError"),
    pytest.param(TimeoutError("connect timed out"), id="TimeoutError"),
]

NOT_RETRYABLE: list[object] = [
    pytest.param(SMTPSenderRefused(550, b"5.7.1 no", "a@x.test"), id="MAIL-550"),
    pytest.param(SMTPRecipientsRefused({"b@x.test": (550, b"no such user")}), id="RCPT-all-550"),
    pytest.param(
        SMTPRecipientsRefused({"b@x.test": (450, b"busy"), "c@x.test": (550, b"unknown")}),
        id="RCPT-4xx-and-5xx",
    ),
    pytest.param(SMTPRecipientsRefused({}), id="RCPT-empty"),
    pytest.param(SMTPDataError(554, b"5.6.0 rejected"), id="DATA-554"),
    pytest.param(_interrupted(None), id="interrupted-unknown"),
    pytest.param(_interrupted(True), id="interrupted-accepted"),
    pytest.param(_timed_out(None), id="timeout-unknown"),
    pytest.param(SMTPAuthenticationError(535, b"5.7.8 bad credentials"), id="auth-535"),
    pytest.param(SMTPAuthenticationError(454, b"4.7.0 temporary"), id="auth-454"),
    pytest.param(SMTPProtocolError("malformed reply"), id="protocol-error"),
    pytest.param(TLSRequiredError("no STARTTLS", "no-starttls"), id="TLSRequiredError"),
    pytest.param(SMTPNotSupportedError("SMTPUTF8"), id="not-supported"),
    pytest.param(SMTPConnectError(554, b"go away"), id="greeting-554"),
    pytest.param(ValueError("bad address"), id="ValueError"),
    pytest.param(RuntimeError("the pool is closed"), id="RuntimeError"),
]


@pytest.mark.parametrize("exc", RETRYABLE)
def test_retryable(exc: BaseException) -> None:
    assert is_retryable(exc) is True


@pytest.mark.parametrize("exc", NOT_RETRYABLE)
def test_not_retryable(exc: BaseException) -> None:
    assert is_retryable(exc) is False


def test_smtplib_classes_are_judged_alike() -> None:
    """asmtp raises smtplib's own classes, so an smtplib-made exception is judged the same."""
    assert is_retryable(smtplib.SMTPSenderRefused(451, b"later", "a@x.test"))
    assert not is_retryable(smtplib.SMTPDataError(554, b"no"))


# -- SendResult ---------------------------------------------------------------------------------


def test_send_result_is_the_refused_dict_with_its_outcome() -> None:
    outcome = SendOutcome(
        True, ("c@x.test",), {"b@x.test": (550, b"no")}, reply=(250, b"ok queued as 1A"), attempts=2
    )
    result = SendResult(outcome)
    assert result == {"b@x.test": (550, b"no")}
    assert isinstance(result, dict)
    assert result.attempts == 2 and result.reply == (250, b"ok queued as 1A")
    assert result.outcome is outcome
    empty = SendResult(SendOutcome(True, ("c@x.test",)))
    assert empty == {} and not empty and empty.attempts == 1
