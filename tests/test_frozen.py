"""``maker``: a frozen, slotted dataclass made field by field without its ``__init__``."""

from __future__ import annotations

import dataclasses

import pytest

from asmtp import Outgoing
from asmtp._frozen import maker
from asmtp.protocol import Mail, Rcpt


@dataclasses.dataclass(frozen=True, slots=True)
class _Point:
    x: int
    y: int = 0
    label: str = "origin"

    def __post_init__(self) -> None:
        raise AssertionError("maker runs no __post_init__")


def test_the_made_instance_has_each_field_in_order_and_stays_frozen() -> None:
    point = maker(_Point)(1, 2, "p")
    assert (point.x, point.y, point.label) == (1, 2, "p")
    assert type(point) is _Point
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 3  # type: ignore[misc]
    assert repr(point) == "_Point(x=1, y=2, label='p')"


def test_every_field_is_required_positionally() -> None:
    with pytest.raises(TypeError):
        maker(_Point)(1)


@pytest.mark.parametrize(
    "made",
    [
        (Mail, (b"a@x.test", (b"SIZE=10",))),
        (Rcpt, (b"b@x.test", ())),
        (Outgoing, ("a@x.test", ("b@x.test",), b"hi", (), (), False, True)),
    ],
    ids=lambda made: made[0].__name__,
)
def test_the_send_paths_values_equal_their_classes_own(
    made: tuple[type, tuple[object, ...]],
) -> None:
    """Equal and hashing alike, as the commands and messages a send makes must be."""
    cls, fields = made
    fast: object = maker(cls)(*fields)
    slow: object = cls(*fields)
    assert fast == slow
    assert hash(fast) == hash(slow)
