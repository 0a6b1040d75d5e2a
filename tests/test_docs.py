"""The README and docs pages: runnable examples run, commands and diagrams stay current."""

from __future__ import annotations

import datetime
import pathlib
import re
import shlex
import ssl
import subprocess
import sys
from typing import TYPE_CHECKING

import click
import pytest
import trustme

from asmtp.cli._app import cli
from support.aiosmtpd_server import RecordingHandler
from support.proxy_server import TestProxy

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory
    from support.redis_server import RedisServer

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_RUNNABLE = re.compile(r"<!-- runnable -->\n```python\n(.*?)```", re.S)
_FILE = re.compile(r"<!-- file: (\S+) -->\n```python\n(.*?)```", re.S)
_ACROSS_A_RESTART = re.compile(
    r"<!-- runnable across a server restart -->\n```python\n(.*?)```", re.S
)
"""A long-running program that mails each line of its input, and must outlive the server."""
"""A file of an example project: the page's files are written out and run with pytest."""
_PORT = "8025"  # the port the examples use for a local test server
_PROXY_PORT = "1080"  # the port the examples use for a local proxy (the test kit's)
_REDIS_URL = "redis://127.0.0.1:6379/"  # examples using it get a private Redis (its port)


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, match in enumerate(_RUNNABLE.finditer(page.read_text(encoding="utf-8"))):
            found.append((f"{page.name}#{number}", match.group(1)))
    return found


def test_the_pages_have_runnable_examples() -> None:
    names = {name.split("#")[0] for name, _ in _examples()}
    assert {"README.md", "quickstart.md", "protocol.md", "proxies.md", "distributed.md"} <= names


@pytest.mark.parametrize(("name", "code"), _examples(), ids=[n for n, _ in _examples()])
def test_runnable_example_runs_against_a_local_server(
    name: str, code: str, smtpd_server_factory: SMTPDServerFactory, request: pytest.FixtureRequest
) -> None:
    """Each example runs as written, with only the server's (and proxy's, and Redis's)
    port changed."""
    server = smtpd_server_factory()
    if _REDIS_URL in code:  # only these examples start a Redis
        request.applymarker(pytest.mark.distributed)
        redis: RedisServer = request.getfixturevalue("redis_server")
        code = code.replace(_REDIS_URL, redis.url.rsplit("/", 1)[0] + "/")
    with TestProxy() as proxy:
        ran = code.replace(_PORT, str(server.port)).replace(_PROXY_PORT, str(proxy.port))
        result = _run_python(ran)
    assert bool(proxy.requests) == (ran != code.replace(_PORT, str(server.port))), name
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"


_RUNNABLE_DEV_TLS = re.compile(
    r"<!-- runnable with a development TLS server -->\n```python\n(.*?)```", re.S
)
"""Runs against a STARTTLS server whose certificate no public CA signed; the example finds
the certificate (or the CA that issued it) as ``dev-ca.pem`` in its working directory."""


def _self_signed(host: str) -> tuple[bytes, bytes]:
    """A certificate for ``host`` signed by its own key, as ``openssl req -x509`` makes one:
    (certificate PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    unused = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    ) | dict.fromkeys(("crl_sign", "encipher_only", "decipher_only"), False)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, **unused), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _dev_tls_server(kind: str, directory: pathlib.Path) -> ssl.SSLContext:
    """The server context for ``kind``, writing what a client must trust to ``dev-ca.pem``."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if kind == "private-ca":  # mkcert's way: a local CA issued the server's certificate
        ca = trustme.CA()
        ca.issue_cert("localhost").configure_cert(server)
        ca.cert_pem.write_to_path(str(directory / "dev-ca.pem"))
    else:  # the certificate is its own CA
        cert, key = _self_signed("localhost")
        (directory / "dev-ca.pem").write_bytes(cert)
        (directory / "server-key.pem").write_bytes(key)
        server.load_cert_chain(directory / "dev-ca.pem", directory / "server-key.pem")
    return server


def test_the_tls_page_has_a_development_server_recipe() -> None:
    assert _RUNNABLE_DEV_TLS.search((ROOT / "docs" / "tls.md").read_text(encoding="utf-8"))


@pytest.mark.parametrize("kind", ["self-signed", "private-ca"])
def test_the_development_tls_recipe_runs_and_is_needed(
    kind: str, smtpd_server_factory: SMTPDServerFactory, tmp_path: pathlib.Path
) -> None:
    """The recipe sends over verified STARTTLS; without its context the same send fails."""
    page = (ROOT / "docs" / "tls.md").read_text(encoding="utf-8")
    (code,) = _RUNNABLE_DEV_TLS.findall(page)
    server = smtpd_server_factory(
        RecordingHandler(), tls_context=_dev_tls_server(kind, tmp_path), require_starttls=True
    )
    code = code.replace(_PORT, str(server.port))
    result = _run_python(code, tmp_path)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert len(server.handler.deliveries) == 1
    without = code.replace('cafile="dev-ca.pem"', "cafile=None")
    assert without != code
    assert "CERTIFICATE_VERIFY_FAILED" in _run_python(without, tmp_path).stderr
    assert len(server.handler.deliveries) == 1


def _run_python(code: str, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code``, an example from our own docs, with this interpreter."""
    return subprocess.run(  # noqa: S603 - our own interpreter and our own docs
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def _restart_examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, code in enumerate(_ACROSS_A_RESTART.findall(page.read_text(encoding="utf-8"))):
            found.append((f"{page.name}#{number}", code))
    return found


def test_the_bots_page_has_examples_that_outlive_a_server_restart() -> None:
    assert {name.split("#")[0] for name, _ in _restart_examples()} == {"bots.md"}


@pytest.mark.parametrize(
    ("name", "code"), _restart_examples(), ids=[n for n, _ in _restart_examples()]
)
def test_long_running_example_survives_a_restart_of_the_server(
    name: str, code: str, smtpd_server_factory: SMTPDServerFactory
) -> None:
    """One line of input, the server stopped (its connections reset) and started again on
    the same port, a second line: both are mailed, and the program ends cleanly."""
    first = smtpd_server_factory()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and our own docs
        [sys.executable, "-c", code.replace(_PORT, str(first.port))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    try:
        process.stdin.write("disk almost full\n")
        process.stdin.flush()
        first.handler.wait_for_deliveries(1, timeout=20)
        first.stop()
        second = smtpd_server_factory(port=first.port)
        process.stdin.write("disk full\n")
        process.stdin.flush()
        [delivery] = second.handler.wait_for_deliveries(1, timeout=20)
        stdout, stderr = process.communicate(timeout=30)  # closes its input: the end
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, f"{name} failed:\n{stdout}\n{stderr}"
    assert b"disk full" in delivery.content
    assert stdout.count("sent: (250,") == 2, f"{stdout}\n{stderr}"
    assert (first.connection_count, second.connection_count) == (1, 1)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n\s*(.*?)\n\s*```", readme, re.S)
    test_command = next(c.strip() for c in commands if "nox -s tests" in c)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_state_diagram_in_the_docs_matches_the_transition_table() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import gen_state_diagram
    finally:
        sys.path.remove(str(ROOT / "docs"))
    page = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert gen_state_diagram.render(page) == page, "run: python docs/gen_state_diagram.py"


def _example_projects() -> list[tuple[str, dict[str, str]]]:
    found = []
    for page in PAGES:
        files = dict(_FILE.findall(page.read_text(encoding="utf-8")))
        if files:
            found.append((page.name, files))
    return found


def test_the_testing_page_has_an_example_project() -> None:
    assert {"testing.md"} <= {name for name, _ in _example_projects()}


@pytest.mark.parametrize(
    ("name", "files"), _example_projects(), ids=[name for name, _ in _example_projects()]
)
def test_example_project_tests_pass_with_the_plugin(
    name: str, files: dict[str, str], pytester: pytest.Pytester
) -> None:
    """A page's example app and its tests, run as the user would: pytest with the plugin."""
    for filename, code in files.items():
        (pytester.path / filename).write_text(code, encoding="utf-8")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("-p", "asmtp.testing.plugin", "-W", "error")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1, result.stdout.str()
    assert set(outcomes) <= {"passed", "seconds"}, result.stdout.str()


def _shell_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("$ asmtp "):
                command = line[2:].split(" #")[0].split(" | ")[0]
                found.append((page.name, shlex.split(command)[1:]))
    return found


def test_the_cli_page_shows_commands() -> None:
    assert len([page for page, _ in _shell_commands() if page == "cli.md"]) >= 10


@pytest.mark.parametrize(
    ("page", "args"), _shell_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_commands_in_the_docs_use_options_that_exist(page: str, args: list[str]) -> None:
    """Transcripts are pasted by hand: at least their options must still exist."""
    command = cli.get_command(click.Context(cli), args[0])
    assert command is not None, f"{page}: no command {args[0]!r}"
    while isinstance(command, click.Group) and len(args) > 1:  # asmtp bulk send
        command, args = command.get_command(click.Context(command), args[1]), args[1:]
        assert command is not None, f"{page}: no command {args[0]!r}"
    names = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    names |= {"-h", "--help"}
    for token in args[1:]:
        if token.startswith("-") and token != "-":
            assert token.split("=")[0] in names, f"{page}: asmtp {args[0]} has no option {token}"


_RUNNABLE_WITH_OUTPUT = re.compile(
    r"<!-- runnable -->\n```python\n(.*?)```\n\n```text\n(.*?)```", re.S
)


def test_the_distributed_page_shows_what_its_example_prints(
    smtpd_server_factory: SMTPDServerFactory, request: pytest.FixtureRequest
) -> None:
    """The campaign enqueued and sent in-process prints the output the page shows."""
    page = (ROOT / "docs" / "distributed.md").read_text(encoding="utf-8")
    (code, shown), *_ = _RUNNABLE_WITH_OUTPUT.findall(page)
    request.applymarker(pytest.mark.distributed)
    redis: RedisServer = request.getfixturevalue("redis_server")
    server = smtpd_server_factory()
    code = code.replace(_REDIS_URL, redis.url.rsplit("/", 1)[0] + "/")
    result = _run_python(code.replace(_PORT, str(server.port)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown


def test_the_distributed_page_shows_the_tested_celery_recipe() -> None:
    """The page includes the very file tests/distributed/test_celery.py runs."""
    page = (ROOT / "docs" / "distributed.md").read_text(encoding="utf-8")
    assert "```{literalinclude} examples/celery_mailer.py\n" in page
    assert (ROOT / "docs" / "examples" / "celery_mailer.py").is_file()
    assert "celery -A celery_mailer worker" in page
