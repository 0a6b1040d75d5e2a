"""The sans-IO core imports nothing that performs I/O: checked on the source, not hoped for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import asmtp.protocol

FORBIDDEN = frozenset({"asyncio", "anyio", "trio", "socket", "ssl", "selectors"})
PROTOCOL_DIR = Path(asmtp.protocol.__file__).parent
MODULES = sorted(PROTOCOL_DIR.rglob("*.py"))


def imported_modules(source: str) -> set[str]:
    """Every absolute module an import statement anywhere in ``source`` names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def forbidden_in(source: str) -> set[str]:
    return {name for name in imported_modules(source) if name.split(".")[0] in FORBIDDEN}


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import asyncio", {"asyncio"}),
        ("import os, selectors", {"selectors"}),
        ("import ssl as _ssl", {"ssl"}),
        ("from socket import socket", {"socket"}),
        ("from asyncio.events import get_event_loop", {"asyncio.events"}),
        ("import anyio.abc", {"anyio.abc"}),
        ("def f():\n    import trio", {"trio"}),
        ("if TYPE_CHECKING:\n    from ssl import SSLContext", {"ssl"}),
        ("importlib.import_module('socket')", {"socket"}),
        ("__import__('asyncio')", {"asyncio"}),
        ("from . import _body", set()),
        ("from ._events import Reply", set()),
        ("import sockets_helper, ssl_like", set()),
    ],
)
def test_the_checker_finds_forbidden_imports(source: str, found: set[str]) -> None:
    assert forbidden_in(source) == found


def test_every_core_module_is_checked() -> None:
    names = {path.name for path in MODULES}
    assert {"__init__.py", "_connection.py", "_replies.py", "_body.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_core_module_imports_no_io_library(path: Path) -> None:
    assert forbidden_in(path.read_text(encoding="utf-8")) == set()
