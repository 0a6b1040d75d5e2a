"""The command is installed as a console script, runs as ``python -m asmtp``, and its
dependencies live in the ``cli`` extra (anyio stays the library's only dependency)."""

from __future__ import annotations

import pytest

from ._kit import ROOT, run


def test_pyproject_declares_the_script_and_the_extra() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"] == {"asmtp": "asmtp.cli:main"}
    assert project["dependencies"] == ["anyio>=4.10"]
    extras = project["optional-dependencies"]
    assert {"click>=8.1", "aiosmtpd>=1.4.4", "trustme>=1.1"} <= set(extras["cli"])
    assert {"click>=8.1", "aiosmtpd>=1.4.4", "trustme>=1.1"} <= set(extras["test"])


def test_python_m_asmtp_runs_the_command() -> None:
    result = run(["--help"])
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout.startswith("Usage: asmtp [OPTIONS] COMMAND [ARGS]...")
    for command in ("send", "sink", "unpack"):
        assert f"  {command} " in result.stdout
