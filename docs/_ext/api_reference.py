"""Sphinx extension: the API reference documents every public name, each with a docstring.

- A name in a public module's ``__all__`` (see :mod:`public_api`) that the reference does
  not document, under that name or another public name bound to the same object, is a
  warning; so is a documented object or public method without a docstring. Under ``-W``
  each fails the build.
- ``asmtp.SMTPException`` and ``asmtp.errors.SMTPException`` are one class, documented
  once: a reference to the other public name (or to a short name from inside a module
  that re-exports it) resolves to the documented one.
- A constant re-exported from a private module (``asmtp.DEFAULT_TIMEOUT``) gets the
  docstring written beside its definition, which autodoc looks for only in the module
  that documents it.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import sys
from typing import Any

import public_api
from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _documented(env: BuildEnvironment) -> set[str]:
    return set(env.domains.python_domain.objects)


def check_every_public_name_is_documented(app: Sphinx, env: BuildEnvironment) -> None:
    documented = _documented(env)
    aliased = public_api.aliases(documented)
    for name in public_api.public_names():
        if name not in documented and name not in aliased:
            logger.warning(
                "%s is public (in %s.__all__) but not in the API reference (docs/reference/)",
                name,
                name.rpartition(".")[0],
                type="asmtp",
                subtype="undocumented",
            )


def resolve_public_alias(
    app: Sphinx, env: BuildEnvironment, node: addnodes.pending_xref, contnode: nodes.Element
) -> nodes.reference | None:
    if node.get("refdomain") != "py":
        return None
    target: str = node["reftarget"]
    module = node.get("py:module")
    candidates = [target]
    if module:
        candidates.append(f"{module}.{target}")
    aliased = public_api.aliases(_documented(env))
    for candidate in candidates:
        if candidate in aliased:
            return env.domains.python_domain.resolve_xref(
                env,
                node["refdoc"],
                app.builder,
                node["reftype"],
                aliased[candidate],
                node,
                contnode,
            )
    return None


def _defining_docstring(name: str, value: object) -> list[str]:
    """The attribute docstring beside the assignment that made ``value``: in whichever
    asmtp module binds it to the same name, or in its enum's class body."""
    short = name.rpartition(".")[2]
    places = [
        (module_name, "", short)
        for module_name, module in sorted(sys.modules.items())
        if module_name.startswith("asmtp.") and getattr(module, short, None) is value
    ]
    if isinstance(value, enum.Enum):
        places.append((type(value).__module__, type(value).__qualname__, value.name))
    for module_name, namespace, attribute in places:
        docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        if docs.get((namespace, attribute)):
            return list(docs[namespace, attribute])
    return []


def _owner(function: object) -> type | None:
    qualname: str = getattr(function, "__qualname__", "")
    owner = getattr(function, "__globals__", {}).get(qualname.partition(".")[0])
    return owner if isinstance(owner, type) and "." in qualname else None


def _protocol_docstring(function: object) -> list[str]:
    """The docstring of the method ``function`` implements in a public Protocol class its
    class conforms to (``Plain.respond``, ``Mechanism.respond``): autodoc inherits only
    from real base classes."""
    name = getattr(function, "__name__", "")
    owner = _owner(function)
    if owner is None:
        return []
    for value in public_api.public_names().values():
        if not (isinstance(value, type) and getattr(value, "_is_protocol", False)):
            continue
        members = [m for m in vars(value) if callable(getattr(value, m)) and m[0] != "_"]
        if name not in members or not all(hasattr(owner, m) for m in members):
            continue
        doc = inspect.getdoc(getattr(value, name))
        if doc:
            return doc.splitlines()
    return []


def fill_and_check_docstring(
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    if what == "data":
        # autodoc falls back on the value's class docstring (float's, dict's): never wanted.
        lines[:] = _defining_docstring(name, obj)
    elif what == "method" and not any(lines):
        lines[:] = _protocol_docstring(obj)
    if what != "module" and not any(line.strip() for line in lines):
        logger.warning(
            "%s has no docstring: public names are documented from their docstrings",
            name,
            type="asmtp",
            subtype="docstring",
        )


def check_skipped_member(
    app: Sphinx, what: str, name: str, obj: object, skip: bool, options: Any
) -> bool | None:
    """Keep a method that implements a public Protocol's; warn when a public method or
    property of ours is left out for want of a docstring."""
    function = obj.fget if isinstance(obj, property) else getattr(obj, "__func__", obj)
    if (
        not skip
        or name.startswith("_")
        or not callable(function)
        or not getattr(function, "__module__", "").startswith("asmtp")
        or inspect.getdoc(obj)
    ):
        return None
    if _protocol_docstring(function):
        return False
    logger.warning(
        "%s.%s has no docstring, so the API reference leaves it out",
        getattr(function, "__module__", "?"),
        getattr(function, "__qualname__", name),
        type="asmtp",
        subtype="docstring",
    )
    return None


def hide_private_bases(app: Sphinx, name: str, obj: object, options: Any, bases: list[Any]) -> None:
    """Show a class's public ancestry: a private base is replaced by its own bases."""
    public: list[Any] = []
    pending = list(bases)
    while pending:
        base = pending.pop(0)
        if getattr(base, "__name__", "").startswith("_") and isinstance(base, type):
            pending[:0] = [b for b in base.__bases__ if b is not object]
        elif base not in public:
            public.append(base)
    bases[:] = public


def setup(app: Sphinx) -> dict[str, Any]:
    importlib.import_module("asmtp")
    app.connect("env-check-consistency", check_every_public_name_is_documented)
    app.connect("missing-reference", resolve_public_alias)
    app.connect("autodoc-process-docstring", fill_and_check_docstring)
    app.connect("autodoc-skip-member", check_skipped_member)
    app.connect("autodoc-process-bases", hide_private_bases)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
