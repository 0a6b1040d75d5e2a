"""The package's layering, checked on the source: arrows point down, no cycles, small modules.

Reads every module of ``asmtp`` with :mod:`ast` (imports under ``TYPE_CHECKING`` and inside
functions count: a loop closed only for type checkers is still a loop) and checks:

- no import cycle among asmtp's modules;
- each layer imports only the layers below it (the sans-IO core only itself, the transports
  nothing of SMTP, the client nothing of the pool, the library nothing of its command line
  or test kit);
- no module imports another module's private names (``from ._x import _y``);
- no module is longer than 500 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

import asmtp

PACKAGE_DIR: Final = Path(asmtp.__file__).parent
MAX_LINES: Final = 500

# Each layer with the layers (and single modules) it may import, by module prefix.
LAYERS: Final[dict[str, frozenset[str]]] = {
    "asmtp.protocol": frozenset(),
    "asmtp.auth": frozenset(),
    # Quick construction of the frozen values made per message: imports nothing of asmtp.
    "asmtp._frozen": frozenset(),
    "asmtp._results": frozenset({"asmtp._frozen"}),
    # ProxyError is the transport's, re-exported as BadArgument is the core's.
    "asmtp.errors": frozenset({"asmtp.protocol", "asmtp._results", "asmtp._transport"}),
    # Only for Secret, which keeps a proxy's password.
    "asmtp._transport": frozenset({"asmtp.auth"}),
    # DKIM signing: the setting and the body hash, below the client that applies it.
    "asmtp._dkim": frozenset(),
    "asmtp._client": frozenset(
        {
            "asmtp.protocol",
            "asmtp.auth",
            "asmtp._results",
            "asmtp.errors",
            "asmtp._transport",
            "asmtp._dkim",
            "asmtp._frozen",
        }
    ),
    "asmtp._bulk": frozenset(
        {
            "asmtp.protocol",
            "asmtp.auth",
            "asmtp._results",
            "asmtp.errors",
            "asmtp._client",
            "asmtp._dkim",
        }
    ),
    # The optional extras sit on the public API only.
    "asmtp.testing": frozenset({"asmtp", "asmtp.protocol", "asmtp.errors", "asmtp.auth"}),
    "asmtp.campaign": frozenset({"asmtp", "asmtp.protocol", "asmtp.errors", "asmtp.auth"}),
    # An instrumentation plugs into the client's observer interface (``_client._hooks``).
    "asmtp.instrumentation": frozenset(
        {"asmtp", "asmtp.protocol", "asmtp.errors", "asmtp._client"}
    ),
    "asmtp.cli": frozenset(
        {"asmtp", "asmtp.protocol", "asmtp.errors", "asmtp.auth", "asmtp.testing", "asmtp.campaign"}
    ),
}
TOP: Final = frozenset({"asmtp", "asmtp.__main__"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: Final = {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def layer_of(module: str) -> str | None:
    for layer in sorted(LAYERS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def imports_of(module: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every asmtp module ``module`` imports, with the names taken from it."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "asmtp":
                    yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "asmtp":
                continue
            names = tuple(alias.name for alias in node.names)
            submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in MODULES]
            if submodules:  # `from . import _x` imports the module _x
                for submodule in submodules:
                    yield submodule, ()
            else:
                yield target, names


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for target, _ in imports_of(module):
            if target in MODULES and target != module:
                edges[module].add(target)
    return edges


def test_the_checker_sees_the_layers() -> None:
    assert {"asmtp.protocol._connection", "asmtp._client._session", "asmtp._bulk._pool"} <= set(
        MODULES
    )
    assert "asmtp._transport" in graph()["asmtp._client._settings"]


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_layer_imports_only_the_layers_below_it(module: str) -> None:
    if module in TOP:
        return
    layer = layer_of(module)
    assert layer is not None, f"{module} belongs to no layer: add it to LAYERS"
    allowed = LAYERS[layer] | {layer}
    for target, _ in imports_of(module):
        target_layer = layer_of(target) or target
        assert target_layer in allowed, f"{module} imports {target} ({target_layer})"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_another_modules_private_names(module: str) -> None:
    for target, names in imports_of(module):
        private = [name for name in names if name.startswith("_") and name != "__version__"]
        assert not private, f"{module} imports private {private} from {target}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_longer_than_the_limit(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines"
