"""Making the frozen, slotted dataclasses a send creates for every message, quickly.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, which costs
a few hundred instructions a field. For the values made once per message (the envelope, its
commands, the outcome) :func:`maker` gives a function that writes the slots directly. It
runs no ``__post_init__`` and fills no defaults: its caller passes every field, checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["maker"]

_T = TypeVar("_T")


def maker(cls: type[_T]) -> Callable[..., _T]:
    """A function taking ``cls``'s fields in order, positionally, and returning the instance.

    Generated as dataclasses generates ``__init__`` (one statement per field, no loop),
    with each field's slot descriptor in place of ``object.__setattr__``.
    """
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for name in names:
        namespace[f"set_{name}"] = cls.__dict__[name].__set__
    body = "".join(f"    set_{name}(made, {name})\n" for name in names)
    source = f"def make({', '.join(names)}):\n    made = new(cls)\n{body}    return made\n"
    exec(source, namespace)  # noqa: S102 - the source is built from cls's own field names
    made: Callable[..., _T] = namespace["make"]
    made.__qualname__ = f"maker({cls.__name__})"
    return made
