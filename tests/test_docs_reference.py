"""The API reference's pages name every public name, and every page is in the navigation.

``nox -s docs`` builds the site (Sphinx, warnings as errors, which also fails on a public
name or object left undocumented), then checks the built inventory and serves the pages
(``docs/check_site.py``). These checks read the source pages only, so the suite catches a
new public name or a new page without Sphinx installed.
"""

from __future__ import annotations

import importlib
import pathlib
import pkgutil
import re
import sys

import asmtp

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import public_api  # noqa: E402 - found through the path above

_AUTODOC = re.compile(r"^\.\. (?:auto\w+|py:\w+):: ([\w.]+)", re.M)
_CURRENT_MODULE = re.compile(r"^```\{py:currentmodule\} ([\w.]+)", re.M)
_FENCED = re.compile(r"^```\{py:(?!currentmodule)\w+\} (\w+)", re.M)
_TOCTREE = re.compile(r"^```\{toctree\}\n(.*?)^```", re.M | re.S)


def _documented() -> set[str]:
    """Names the reference's directives document (autodoc's, and hand-written ones)."""
    names: set[str] = set()
    for page in sorted((DOCS / "reference").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        names.update(_AUTODOC.findall(text))
        module = ""
        for match in re.finditer(f"{_CURRENT_MODULE.pattern}|{_FENCED.pattern}", text, re.M):
            current, name = match.groups()
            if current:
                module = current
            else:
                assert module, f"{page.name}: {name} comes before any py:currentmodule"
                names.add(f"{module}.{name}")
    return names


def test_every_public_name_is_in_the_reference_pages() -> None:
    documented = _documented()
    aliased = public_api.aliases(documented)
    missing = [name for name in public_api.public_names() if name not in documented | set(aliased)]
    assert missing == [], f"add these to docs/reference/: {missing}"


def test_the_reference_pages_document_only_public_names() -> None:
    public = set(public_api.public_names()) | set(public_api.PUBLIC_MODULES)
    assert sorted(_documented() - public) == []


def test_an_alias_resolves_to_the_same_object() -> None:
    aliased = public_api.aliases(_documented())
    assert aliased["asmtp.SMTPRecipientsRefused"] == "asmtp.errors.SMTPRecipientsRefused"
    assert aliased["asmtp.errors.BadArgument"] == "asmtp.protocol.BadArgument"
    names = public_api.public_names()
    assert all(names[alias] is names[home] for alias, home in aliased.items())


def test_every_module_without_an_underscore_is_in_the_public_surface() -> None:
    """A new public module must be added to public_api.PUBLIC_MODULES, and so documented."""
    found = {"asmtp"}
    for module in pkgutil.walk_packages(asmtp.__path__, "asmtp."):
        parts = module.name.split(".")
        if not any(part.startswith("_") for part in parts):
            found.add(module.name)
            assert hasattr(importlib.import_module(module.name), "__all__"), module.name
    assert found == set(public_api.PUBLIC_MODULES)


def _navigation() -> list[str]:
    """Every page the toctrees list, as a path under docs/ without its suffix."""
    listed = []
    for index in (DOCS / "index.md", DOCS / "reference" / "index.md"):
        prefix = "" if index.parent == DOCS else f"{index.parent.name}/"
        for block in _TOCTREE.findall(index.read_text(encoding="utf-8")):
            entries = [line.strip() for line in block.splitlines() if not line.startswith(":")]
            listed += [prefix + entry for entry in entries if entry]
    return listed


def test_every_page_is_in_the_navigation_once() -> None:
    pages = {
        page.relative_to(DOCS).with_suffix("").as_posix()
        for page in DOCS.rglob("*.md")
        if "_build" not in page.parts
    }
    listed = _navigation()
    assert len(listed) == len(set(listed)), "a page is listed twice"
    assert sorted(pages - {"index"}) == sorted(listed), (
        "docs/index.md's toctrees (or docs/reference/index.md's) must list every page"
    )
