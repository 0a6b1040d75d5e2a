"""Every hostile test is also checked for leaked secrets in what pytest captured.

After each phase (setup, call, teardown) of each test in this directory, the captured
stdout, stderr and log records and the failure report are searched for the test password
and token and their base64 forms (``_kit.secret_forms``). A hit fails that phase, naming
only where and in which form the secret was found. This covers only what pytest captures
for tests here; it cannot see output written straight to file descriptor 1 or 2 by other
processes, nor logs that are not propagated to the root logger.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from ._kit import leaked


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    places = {title: leaked(content) for title, content in report.sections}
    places["failure report"] = leaked(report.longreprtext)
    found = {title: forms for title, forms in places.items() if forms}
    if found:
        report.outcome = "failed"
        report.longrepr = f"secret material in captured output of {item.nodeid}: {found}"
    return report
