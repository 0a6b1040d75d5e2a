"""A send's outcome as the send path builds it: the same value ``SendOutcome(...)`` gives."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

import asmtp
from asmtp._results import send_outcome


@pytest.mark.parametrize(
    ("accepted", "refused", "error"),
    [
        (True, {}, None),
        (True, {"b@x.test": (550, b"5.1.1 no")}, None),
        (None, {}, TimeoutError("no reply")),
    ],
)
def test_the_fast_outcome_equals_the_dataclasss_and_is_as_frozen(
    accepted: bool | None, refused: dict[str, tuple[int, bytes]], error: BaseException | None
) -> None:
    """Field for field, repr and equality; frozen; ``with_attempts`` still copies it."""
    args = (
        accepted,
        ("a@x.test",),
        MappingProxyType(refused),
        True,
        (250, b"2.0.0 queued as 1"),
        MappingProxyType({"a@x.test": (250, b"2.0.0 queued as 1")}),
    )
    fast = send_outcome(*args, 1, error)
    slow = asmtp.SendOutcome(*args, error=error)
    assert fast == slow
    assert repr(fast) == repr(slow)
    for each in dataclasses.fields(asmtp.SendOutcome):
        assert getattr(fast, each.name) is getattr(slow, each.name), each.name
    assert fast.error is error
    assert fast.attempts == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.accepted = False  # type: ignore[misc]
    again = fast.with_attempts(3)
    assert (again.attempts, again.recipients, again.error) == (3, fast.recipients, error)
