"""Sphinx configuration: the guides in Markdown (MyST) and the API reference from docstrings.

Build with ``python3 -m nox -s docs`` (warnings are errors); the site is written to
``docs/_build/html``.
"""

from __future__ import annotations

import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

import asmtp  # noqa: E402 - after the path is set, so the checkout is documented

project = "asmtp"
author = "asmtp developers"
copyright = "asmtp developers"
release = asmtp.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx_click",
    "sphinxcontrib.mermaid",
    "api_reference",
    "rendering",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_intersphinx", "examples"]

# Every reference must resolve: a role naming something that is not documented, here or in
# the standard library, is a warning (an error under ``-W``).
nitpicky = True

# MyST: the pages are plain CommonMark plus tables, so they read the same on a forge;
# heading anchors make links such as ``cli.md#asmtp-sink`` resolve.
myst_heading_anchors = 3
# The state diagram is a ```mermaid block (forges draw it too): drawn in the browser by
# mermaid.js, loaded from its CDN; without it the page shows the diagram's source.
myst_fence_as_directive = ["mermaid"]
# Text such as ``--tls`` or 'auto' stays as typed: no en dashes, no curly quotes.
smartquotes = False

# The standard library's objects (smtplib, ssl, email, ...) link to docs.python.org. The
# inventory is vendored because builds run without access to docs.python.org: it is the
# objects.inv of CPython 3.11's own documentation build, as shipped by Debian's
# python3.11-doc package (/usr/share/doc/python3.11/html/objects.inv). Refresh it from that
# package, or any CPython doc build of the same version, when the oldest supported version
# moves on.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3.11", str(DOCS / "_intersphinx" / "python-3.11.inv")),
}
intersphinx_timeout = 1

autodoc_member_order = "bysource"
# Bases are shown where they say something (``:show-inheritance:`` on exceptions and
# subclasses), not as "Bases: object" on every class.
autodoc_default_options = {"members": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Public type aliases appear by name in signatures, linked, rather than spelled out.
autodoc_type_aliases = {
    "TLSMode": "asmtp.TLSMode",
}
autoclass_content = "both"

html_theme = "furo"
html_title = f"asmtp {release}"
html_show_sourcelink = False

# A type from a private module in a public signature (``Rule`` in ``Script``'s fields)
# has no page to link to: it is shown as text. Public names must all resolve.
nitpick_ignore_regex = [
    ("py:.*", r"asmtp(\.\w+)*\._\w+(\.\w+)*"),
    # anyio publishes no inventory that works offline: its stream types are shown as text.
    ("py:class", r"anyio(\.\w+)*"),
    # Nor does OpenTelemetry's API (asmtp.instrumentation.otel's provider arguments).
    ("py:class", r"opentelemetry(\.\w+)*"),
    # Nor do redis-py and taskiq (the distributed campaigns' client and broker types).
    ("py:class", r"(redis|taskiq|taskiq_redis)(\.\w+)*"),
]
