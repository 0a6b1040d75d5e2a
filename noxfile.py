"""The one entry point for checks: ``python3 -m nox -s <session>``.

The README and ``.ci/run`` call these same sessions.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def demo(session: nox.Session) -> None:
    """Compose a multipart message and send it through an embedded local SMTP server."""
    session.install("-e", ".[demo]")
    session.run("python", "docs/examples/demo.py", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite under asyncio and trio; arguments go to pytest."""
    session.install("-e", ".[test]")
    session.run("python", "-bb", "-m", "pytest", *session.posargs)


@nox.session
def interop(session: nox.Session) -> None:
    """Only the real-server suite: installs and starts Postfix, Dovecot, Exim and OpenSMTPD
    (root, Debian); ``python tests/interop/matrix.py --write`` also rebuilds its docs table."""
    session.install("-e", ".[test]")
    session.run("python", "-bb", "-m", "pytest", "-m", "interop", "tests/interop", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against Postfix's smtp-sink, side by side with aiosmtplib, smtplib and
    smtp-source; ``-- --quick`` for a smoke run, ``-- --write-docs`` to update the docs;
    ``-- campaign`` for a bulk campaign with its journal against the bare pool,
    ``-- distributed`` for a distributed campaign with 1, 2 and 4 worker processes."""
    session.install("-e", ".[bulk,taskiq]", "aiosmtplib", "trio", "uvloop")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and the tests."""
    session.install(
        "-e", ".[test,docs]", "mypy>=1.10", "nox", "aiosmtplib", "types-docutils", "types-Pygments"
    )
    session.run("mypy", "--strict", "asmtp", "tests", "noxfile.py", "docs", "benchmarks")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the site into docs/_build/html (guides and API reference); warnings are errors.

    Then check the built site: every public name in its inventory, its pages served over
    loopback (``docs/check_site.py``). Open ``docs/_build/html/index.html`` to read it.
    """
    session.install("-e", ".[docs]")
    # -E -a: a fresh environment and every page written, so no warning hides in a cache.
    session.run(
        "sphinx-build",
        "-E",
        "-a",
        "-W",
        "--keep-going",
        "-n",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        *session.posargs,
    )
    session.run("python", "docs/check_site.py", "docs/_build/html")
