"""Check a built site: every public name is in its inventory, and its pages are served.

``nox -s docs`` runs it after the build: ``python docs/check_site.py docs/_build/html``.
The inventory (``objects.inv``) is what other projects' intersphinx links resolve
against, so a public name missing there is missing for them too. The pages are then
fetched through ``http.server`` on loopback, as a reader opening the site locally would.
"""

from __future__ import annotations

import functools
import http.server
import pathlib
import sys
import threading
import urllib.request
import zlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "_ext"))

import public_api

_PAGES = ("index.html", "reference/index.html")


def inventory(site: pathlib.Path) -> dict[str, str]:
    """The Python objects of ``site``'s objects.inv (version 2), name to page URI."""
    header, _, compressed = (site / "objects.inv").read_bytes().partition(b"\n")
    if header.rstrip() != b"# Sphinx inventory version 2":
        raise ValueError(f"not a version 2 inventory: {header!r}")
    for _ in range(3):  # project, version, compression note
        _, _, compressed = compressed.partition(b"\n")
    found: dict[str, str] = {}
    for line in zlib.decompress(compressed).decode("utf-8").splitlines():
        # name domain:role priority uri display-name (the name holds no space for py:)
        name, role, _, uri, *_ = line.split(" ")
        if role.startswith("py:"):
            found[name] = uri.replace("$", name) if uri.endswith("$") else uri
    return found


def missing_names(objects: dict[str, str]) -> list[str]:
    """Public names neither in the inventory nor bound to an object documented there."""
    known = set(objects) | set(public_api.aliases(set(objects)))
    return [name for name in public_api.public_names() if name not in known]


def fetch_all(site: pathlib.Path, paths: list[str]) -> dict[str, str]:
    """Serve ``site`` on a free loopback port and GET each path: path to HTML, or raise."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            pages = {}
            for path in paths:
                url = f"http://127.0.0.1:{server.server_address[1]}/{path}"
                with urllib.request.urlopen(url, timeout=10) as response:
                    pages[path] = response.read().decode("utf-8")
            return pages
        finally:
            server.shutdown()
            thread.join(10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main(site: pathlib.Path) -> int:
    objects = inventory(site)
    problems = [f"not in the inventory: {name}" for name in missing_names(objects)]
    ours = {name: uri for name, uri in objects.items() if name.startswith("asmtp")}
    pages = fetch_all(site, sorted({*_PAGES, *(uri.partition("#")[0] for uri in ours.values())}))
    problems += [f"{path} is not an HTML page" for path in _PAGES if "<html" not in pages[path]]
    for name, uri in ours.items():
        path, _, anchor = uri.partition("#")
        if anchor and f'id="{anchor}"' not in pages[path]:
            problems.append(f"{name}: {path} has no anchor #{anchor}")
    for problem in problems:
        print(f"check_site: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_site: {len(ours)} asmtp objects found on {len(pages)} pages, served locally")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html")))
