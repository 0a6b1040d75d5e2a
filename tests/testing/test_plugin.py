"""The pytest plugin, as a user's project meets it: pytester runs test files that use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ("-p", "asmtp.testing.plugin", "-W", "error")
"""Loaded explicitly: where asmtp is installed from this tree the entry point loads it too,
under the same name, so the run is the same either way."""

USERS_CONFIG = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""

USERS_TESTS = '''
import smtplib
import threading

import aiosmtplib
import pytest

import asmtp

MESSAGE = b"From: app@example.org\\r\\nTo: ada@example.com\\r\\nSubject: Welcome\\r\\n\\r\\nHi\\r\\n"


def send_blocking(host, port):
    """What a Django-style view does: blocking smtplib."""
    with smtplib.SMTP(host, port) as client:
        client.sendmail("app@example.org", ["ada@example.com"], MESSAGE)


def test_blocking_code(smtp_sink):
    send_blocking(smtp_sink.host, smtp_sink.port)
    smtp_sink.assert_sent(to=["ada@example.com"], subject="Welcome")


def test_blocking_code_in_a_worker_thread(smtp_sink):
    worker = threading.Thread(target=send_blocking, args=(smtp_sink.host, smtp_sink.port))
    worker.start()
    worker.join(10)
    assert smtp_sink.wait_for(1)[0].mail_from == "app@example.org"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.mark.anyio
async def test_asmtp_on_asyncio_and_trio(smtp_sink):
    await asmtp.sendmail("app@example.org", ["ada@example.com"], MESSAGE,
                         host=smtp_sink.host, port=smtp_sink.port)
    assert [m.subject for m in smtp_sink.messages] == ["Welcome"]


@pytest.mark.asyncio
async def test_aiosmtplib_under_pytest_asyncio(smtp_sink):
    await aiosmtplib.send(MESSAGE, sender="app@example.org", recipients=["ada@example.com"],
                          hostname=smtp_sink.host, port=smtp_sink.port, start_tls=False)
    smtp_sink.assert_recipients(["ada@example.com"])


@pytest.mark.smtp_sink(chunking=True, pipelining=False)
def test_marker_options(smtp_sink):
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as client:
        client.ehlo()
        assert client.has_extn("chunking") and not client.has_extn("pipelining")


def test_error_paths(smtp_sink):
    smtp_sink.refuse_recipient("bob@*")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as client:
        refused = client.sendmail("app@example.org", ["ada@example.com", "bob@example.com"], MESSAGE)
    assert refused == {"bob@example.com": (550, b"5.1.1 No such user here")}


def test_each_test_gets_a_fresh_server(smtp_sink):
    smtp_sink.assert_nothing_sent()
    assert smtp_sink.script.recipients == ()


def test_session_server_first(smtp_sink_session):
    smtp_sink_session.reset()
    send_blocking(smtp_sink_session.host, smtp_sink_session.port)
    assert len(smtp_sink_session.messages) == 1


def test_session_server_is_the_same(smtp_sink_session):
    assert len(smtp_sink_session.messages) == 1  # kept from the test before
'''


def test_a_users_tests_use_the_fixture_whatever_they_send_with(pytester: pytest.Pytester) -> None:
    pytester.makeini(USERS_CONFIG)
    pytester.makepyfile(test_app=USERS_TESTS)
    result = pytester.runpytest(*PLUGIN, "-p", "no:randomly")
    result.assert_outcomes(passed=10)


FAILING = """
import smtplib

def test_welcome_mail(smtp_sink):
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as client:
        client.sendmail("app@example.org", ["eve@example.com"], b"Subject: Welcome!\\r\\n\\r\\nhi\\r\\n")
    smtp_sink.assert_sent(to=["ada@example.com"], subject="Welcome")
"""


def test_a_failed_assertion_shows_the_difference_at_the_users_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(USERS_CONFIG)
    pytester.makepyfile(test_mail=FAILING)
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       smtp_sink.assert_sent(to=["ada@example.com"], subject="Welcome")',
            "E       AssertionError: no message matches (to=['ada@example.com'], subject='Welcome'); received 1:",
            "E         #1 from=<app@example.org> to=<eve@example.com> subject='Welcome!' *",
            "E             to: expected ['ada@example.com'], got ['eve@example.com'] "
            "(missing ['ada@example.com'], unexpected ['eve@example.com'])",
            "E             subject: expected 'Welcome', got 'Welcome!'",
        ]
    )
    assert "_assertions.py" not in result.stdout.str()  # the helpers hide their frames


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(cwd)])}
    return subprocess.run(  # noqa: S603 - our interpreter, our code
        [sys.executable, "-c", code],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_loading_the_plugin_imports_no_optional_dependency(tmp_path: Path) -> None:
    result = _python(
        "import sys, asmtp.testing.plugin\n"
        "print(sorted(m for m in ('aiosmtpd', 'trustme', 'click') if m in sys.modules))",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


WITHOUT_THE_EXTRA = """
def test_unrelated():
    assert True

def test_using_the_fixture(smtp_sink):
    pass
"""


def test_without_the_extra_pytest_starts_and_the_fixture_says_what_to_install(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_project.py").write_text(WITHOUT_THE_EXTRA)
    # aiosmtpd and trustme made unimportable, as in a project without asmtp[testing].
    result = _python(
        "import sys\n"
        "sys.modules['aiosmtpd'] = sys.modules['trustme'] = None\n"
        "import pytest\n"
        "raise SystemExit(pytest.main(['-p', 'asmtp.testing.plugin', '-q', '-p', 'no:cacheprovider', 'test_project.py']))",
        tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout
    assert (
        "smtp_sink: aiosmtpd is not installed: pip install 'asmtp[testing]' (the test kit)"
        in result.stdout
    )
    assert "Traceback" not in result.stdout
    assert "No module named" not in result.stdout  # one line, not the chain of ImportErrors


def test_the_entry_point_names_the_plugin_and_the_extra_has_its_dependencies() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    entry_points = project["project"]["entry-points"]["pytest11"]
    assert entry_points == {"asmtp.testing.plugin": "asmtp.testing.plugin"}
    extras = project["project"]["optional-dependencies"]
    assert project["project"]["dependencies"] == ["anyio>=4.10"]
    assert {"aiosmtpd>=1.4.4", "trustme>=1.1"} <= set(extras["testing"])
