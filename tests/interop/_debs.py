"""Debian packages for the interop suite: installed with apt-get, or unpacked privately.

Postfix and Dovecot are installed as usual. Exim and OpenSMTPD each declare themselves the
system's mail transport agent, so installing either would remove Postfix: their packages
are fetched with ``apt-get download`` and unpacked with ``dpkg -x`` into a cache directory
(:data:`CACHE_ENV`, default ``/var/cache/asmtp-interop``), and only the libraries they
link against are installed with apt. The system users their maintainer scripts would
create are created the same way (``useradd --system``).

A package may come from a suite the system's apt does not use (:class:`Suite`, e.g.
bookworm-backports). It is fetched through a private apt configuration made for that one
download: its own sources file, package lists and caches in a temporary directory, with
the system's sources and pins left out. apt still checks the suite's signed ``InRelease``
against Debian's archive keyring and the ``.deb`` against the index's SHA256, and picks
the machine's own architecture; nothing on the system can ever be upgraded from that
suite, since the system's apt never hears of it.

Every apt-get call holds one file lock, so parallel test workers take turns, and waits for
dpkg's own lock when another apt is running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

from interop._daemon import StartError, Unavailable

__all__ = [
    "BOOKWORM_BACKPORTS",
    "CACHE_ENV",
    "Suite",
    "apt_get",
    "ensure_system_user",
    "install",
    "missing",
    "unpacked",
]

CACHE_ENV: Final = "ASMTP_INTEROP_CACHE"
_DEFAULT_CACHE: Final = "/var/cache/asmtp-interop"
_LOCK: Final = Path(tempfile.gettempdir()) / "asmtp-interop-apt.lock"
_COMPLETE: Final = ".complete"
_APT_USER: Final = "_apt"
"""The user apt downloads and checks signatures as, when it can reach the directories."""
_DPKG_LOCK_WAIT: Final = "300"
"""Seconds apt-get waits for dpkg's lock held by another apt (not one of ours)."""

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Suite:
    """A Debian suite to fetch packages from, outside the system's apt configuration."""

    name: str
    release: str
    """The codename of the Debian release its packages are built for (``/etc/os-release``)."""
    uri: str = "http://deb.debian.org/debian"
    keyring: str = "/usr/share/keyrings/debian-archive-keyring.gpg"
    """What its ``InRelease`` must be signed with (the ``debian-archive-keyring`` package)."""


BOOKWORM_BACKPORTS: Final = Suite("bookworm-backports", release="bookworm")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with _LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apt_tools() -> str:
    apt = shutil.which("apt-get")
    if apt is None or shutil.which("dpkg") is None:
        raise Unavailable(
            "there is no apt-get/dpkg here (the installer supports Debian and Ubuntu); "
            "install the packages with your package manager"
        )
    if os.geteuid() != 0:
        raise Unavailable(f"installing packages needs root (running as uid {os.geteuid()})")
    return apt


def apt_get(args: Sequence[str], log: Log, *, cwd: Path | None = None) -> None:
    """Run ``apt-get ARGS`` non-interactively; :class:`StartError` if it fails.

    Callers hold :func:`_locked` (through :func:`install` or :func:`unpacked`).
    """
    argv = [_apt_tools(), "-q", "-o", f"DPkg::Lock::Timeout={_DPKG_LOCK_WAIT}", *args]
    log("+ " + " ".join(argv))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(argv, env=env, cwd=cwd, check=False)  # noqa: S603
    if result.returncode != 0:
        raise StartError(f"{' '.join(argv)} failed with exit status {result.returncode}")


def missing(packages: Sequence[str]) -> list[str]:
    """The packages among ``packages`` that dpkg does not list as installed."""
    if shutil.which("dpkg-query") is None:
        return list(packages)
    absent = []
    for name in packages:
        result = subprocess.run(  # noqa: S603 - fixed argument list
            ["dpkg-query", "-W", "-f=${db:Status-Status}", name],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        if result.stdout.strip() != "installed":
            absent.append(name)
    return absent


def install(
    packages: Sequence[str], log: Log, *, before: Callable[[], None] | None = None
) -> list[str]:
    """apt-get install whichever of ``packages`` is missing (after ``apt-get update``).

    ``before`` runs first, under the lock (e.g. debconf preseeding). Returns what was
    installed.
    """
    if not missing(packages):
        return []
    _apt_tools()
    with _locked():
        todo = missing(packages)
        if not todo:
            return []
        if before is not None:
            before()
        apt_get(["update"], log)
        apt_get(["install", "-y", "--no-install-recommends", *todo], log)
    if still := missing(packages):
        raise StartError(f"apt-get finished but these are still not installed: {' '.join(still)}")
    return todo


def _cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or _DEFAULT_CACHE)


def _libraries(debs: Sequence[Path], unpacking: Sequence[str]) -> list[str]:
    """The shared libraries the packages depend on (the first of each set of alternatives)."""
    names: list[str] = []
    for deb in debs:
        depends = subprocess.run(  # noqa: S603 - fixed argument list
            ["dpkg-deb", "--field", str(deb), "Depends"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for item in depends.split(","):
            name = re.split(r"[\s(:|]", item.strip(), maxsplit=1)[0]
            if name.startswith(("lib", "zlib")) and name not in unpacking and name not in names:
                names.append(name)
    return names


def _os_release() -> str:
    """This system's release codename (``bookworm``), or ``unknown``."""
    try:
        lines = Path("/etc/os-release").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    for line in lines:
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    return "unknown"


def _private_apt(suite: Suite, work: Path) -> list[str]:
    """apt-get options that make apt see ``suite`` alone, its lists and caches in ``work``."""
    if not Path(suite.keyring).exists():
        raise Unavailable(f"{suite.name} needs Debian's archive keyring {suite.keyring}")
    if (release := _os_release()) != suite.release:
        raise Unavailable(
            f"{suite.name} packages are built for Debian {suite.release}; this is {release}"
        )
    for directory in ("lists/partial", "cache", "parts", "preferences.d"):
        (work / directory).mkdir(parents=True)
    _sandboxed(work / "lists" / "partial")
    sources = work / f"{suite.name}.sources"
    sources.write_text(
        f"Types: deb\nURIs: {suite.uri}\nSuites: {suite.name}\nComponents: main\n"
        f"Signed-By: {suite.keyring}\n",
        encoding="utf-8",
    )
    settings = {
        "Dir::Etc::SourceList": sources,
        "Dir::Etc::SourceParts": work / "parts",
        "Dir::Etc::Preferences": work / "preferences",
        "Dir::Etc::PreferencesParts": work / "preferences.d",
        "Dir::State::Lists": work / "lists",
        "Dir::Cache": work / "cache",
    }
    return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]


def _sandboxed(directory: Path) -> None:
    """Give ``directory`` to apt's unprivileged user, which downloads into it; else apt
    warns and fetches (and checks signatures) as root."""
    with contextlib.suppress(KeyError):
        account = pwd.getpwnam(_APT_USER)
        os.chown(directory, account.pw_uid, account.pw_gid)


def _download(packages: Sequence[str], suite: Suite | None, work: Path, log: Log) -> list[Path]:
    """Fetch the ``.deb`` of each package (from ``suite`` if given) into ``work/debs``."""
    work.chmod(0o755)  # let apt's own user reach what it writes (see _sandboxed)
    downloads = work / "debs"
    downloads.mkdir()
    _sandboxed(downloads)
    if suite is not None:
        options = _private_apt(suite, work / "apt")
        apt_get([*options, "update"], log)
        apt_get(
            [*options, "download", *(f"{p}/{suite.name}" for p in packages)], log, cwd=downloads
        )
    else:
        _apt_get_with_lists(["download", *packages], log, cwd=downloads)
    return sorted(downloads.glob("*.deb"))


def _apt_get_with_lists(args: Sequence[str], log: Log, *, cwd: Path | None = None) -> None:
    """``apt-get ARGS``, once more after ``apt-get update`` if it fails: a fresh machine
    has no package lists yet."""
    try:
        apt_get(args, log, cwd=cwd)
    except StartError:
        apt_get(["update"], log)
        apt_get(args, log, cwd=cwd)


def unpacked(
    packages: Sequence[str], name: str, log: Log, *, suite: Suite | None = None
) -> tuple[Path, bool]:
    """The packages unpacked into ``CACHE/name`` (fetched and unpacked on first use).

    They come from the system's apt sources, or from ``suite`` alone when given. Their
    library dependencies are installed with the system's apt. Returns the directory and
    whether this call unpacked it. Raises :class:`Unavailable` without apt or root (or
    when ``suite`` is not for this release) and :class:`StartError` when apt or dpkg fails.
    """
    target = _cache() / name
    if (target / _COMPLETE).exists():
        return target, False
    _apt_tools()
    with _locked():
        if (target / _COMPLETE).exists():
            return target, False
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as work:
            debs = _download(packages, suite, Path(work), log)
            if libraries := missing(_libraries(debs, packages)):
                _apt_get_with_lists(["install", "-y", "--no-install-recommends", *libraries], log)
            tree = Path(work) / "tree"
            for deb in debs:
                subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True)  # noqa: S603,S607
            (tree / _COMPLETE).write_text(
                "".join(f"{deb.name}\n" for deb in debs), encoding="utf-8"
            )
            shutil.rmtree(target, ignore_errors=True)
            tree.rename(target)
            target.chmod(0o755)
    return target, True


def ensure_system_user(name: str, home: str) -> None:
    """Create the system user and group ``name`` as the package's maintainer script would."""
    check = subprocess.run(["id", "-u", name], capture_output=True, check=False)  # noqa: S603,S607
    if check.returncode == 0:
        return
    useradd = shutil.which("useradd")
    if useradd is None:
        raise Unavailable(f"cannot create the system user {name}: there is no useradd")
    with _locked():
        again = subprocess.run(["id", "-u", name], capture_output=True, check=False)  # noqa: S603,S607
        if again.returncode == 0:
            return
        result = subprocess.run(  # noqa: S603 - fixed argument list
            [
                *(useradd, "--system", "--user-group", "--no-create-home"),
                *("--home-dir", home, "--shell", "/usr/sbin/nologin", name),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise StartError(f"useradd {name} failed: {result.stderr.strip()}")
