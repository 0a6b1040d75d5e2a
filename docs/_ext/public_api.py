"""asmtp's public surface: the modules whose names the API reference must document.

Plain Python (no Sphinx), so that the test suite can check the reference's source pages
without building the site, and the Sphinx extension can check the built one.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Final

PUBLIC_MODULES: Final = (
    "asmtp",
    "asmtp.errors",
    "asmtp.auth",
    "asmtp.protocol",
    "asmtp.campaign",
    "asmtp.instrumentation",
    "asmtp.instrumentation.otel",
    "asmtp.campaign.distributed",
    "asmtp.campaign.distributed.app",
    "asmtp.testing",
    "asmtp.testing.plugin",
    "asmtp.cli",
)
"""Each module's ``__all__`` is public; a module it lists is documented as a module."""


def public_names() -> dict[str, object]:
    """Every public name, as ``module.name``, mapped to the object it is bound to."""
    names: dict[str, object] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            names[f"{module_name}.{name}"] = getattr(module, name)
    return names


def aliases(documented: set[str]) -> dict[str, str]:
    """Public names not documented under their own name, mapped to a documented name
    bound to the same object (``asmtp.SMTPException`` to ``asmtp.errors.SMTPException``).

    A name bound to an object documented nowhere is left out: the caller reports it.
    """
    names = public_names()
    homes = {id(value): name for name, value in names.items() if name in documented}
    found: dict[str, str] = {}
    for name, value in names.items():
        if name not in documented and id(value) in homes:
            found[name] = homes[id(value)]
    return found


def is_module(value: object) -> bool:
    """Whether a public name is bound to a module (documented by a page of its own)."""
    return inspect.ismodule(value)
