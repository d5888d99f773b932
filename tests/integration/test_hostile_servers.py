"""The probes against servers that misbehave on purpose (fixtures/hostile.py), on real sockets.

Whatever the server does, the check ends inside its deadline with a code, shows no
secret, escapes what a terminal would obey, and never raises.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import resource
import subprocess
import sys
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import trustme

from fixtures.hostile import HostileServer, MailProtocol, serving_in_thread
from fixtures.stack import Stack
from preflight._resolver import HostLookup
from preflight._tls import make_context
from preflight.checks.imap import probe_imap
from preflight.checks.smtp import probe_smtp
from preflight.options import CheckOptions, Timeouts
from preflight.payload import Account, parse_account
from preflight.report import CheckResult, Code, Status
from preflight.secret import MASK

USER = "alice@preflight.test"
PASSWORD = 'Qz7"Wv\\  kX3!pL9-mR4#tY8'  # a quote, a backslash, two spaces
HOST = "127.0.0.1"  # the name the probes use, and the certificate's


@pytest.fixture(scope="module")
def hostile_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def hostile_tls(hostile_ca: trustme.CA) -> Any:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    hostile_ca.issue_cert(HOST).configure_cert(context)
    return context


@pytest.fixture(scope="module")
def hostile_ca_file(hostile_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("hostileca") / "ca.pem"
    hostile_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest_asyncio.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reached the event loop's exception handler (a traceback in asyncio's log)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    yield errors
    loop.set_exception_handler(None)


def account(smtp_port: int, imap_port: int) -> Account:
    parsed = parse_account(
        {
            "from_name": "Test",
            "from_email": USER,
            "user_name": USER,
            "password": PASSWORD,
            "smtp_host": HOST,
            "smtp_port": smtp_port,
            "imap_host": HOST,
            "imap_port": imap_port,
            "warmup_enabled": False,
        }
    )
    assert parsed.account is not None, parsed.errors
    return parsed.account


async def probe(
    protocol: MailProtocol, server: HostileServer, ca_file: str, deadline: float = 5.0
) -> CheckResult:
    """Run the ``protocol`` probe against ``server`` with implicit TLS."""
    options = CheckOptions(
        ca_file=ca_file,
        timeout=deadline,
        timeouts=Timeouts(connect=2, greeting=deadline, command=deadline),
        smtp_security="ssl",
        imap_security="ssl",
    )
    loop = asyncio.get_running_loop()
    lookup: asyncio.Future[HostLookup] = loop.create_future()
    lookup.set_result(HostLookup(HOST, (HOST,)))
    function = probe_smtp if protocol == "smtp" else probe_imap
    return await function(
        account(server.port, server.port),
        lookup,
        options,
        make_context(options.ca_file, options.insecure),
        loop.time() + deadline,
    )


def strings(value: Any) -> Iterator[str]:
    """Every string in a report (keys too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def secret_forms() -> set[str]:
    """The password, its re-spaced and quoted forms, any 5 characters of those, its
    base64 and the AUTH PLAIN blob."""
    quoted = PASSWORD.replace("\\", "\\\\").replace('"', '\\"')
    forms = {
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
    }
    for form in (PASSWORD, " ".join(PASSWORD.split()), quoted):
        forms.update(form[i : i + 5] for i in range(len(form) - 4))
    return forms


def leaks(text: str) -> set[str]:
    return {form for form in secret_forms() if form in text}


def unprintable(text: str) -> set[str]:
    """Control characters and lone surrogates: what a terminal obeys or cannot encode."""
    return {char for char in text if unicodedata.category(char) in ("Cc", "Cs")}


def checked(result: CheckResult, protocol: str, deadline: float) -> dict[str, Any]:
    """The report, after the checks every hostile server must pass."""
    report = result.to_dict()
    assert result.name == protocol
    assert result.elapsed_ms <= (deadline + 1) * 1000
    for text in strings(report):
        assert set() == leaks(text)
        assert set() == unprintable(text)
    json.dumps(report, ensure_ascii=False).encode("utf-8")  # writable: no surrogate
    return report


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["smtp", "imap"])
async def test_endless_greeting_line_fails_at_once(
    protocol: MailProtocol, hostile_tls: Any, hostile_ca_file: str, loop_errors: list[Any]
) -> None:
    """A greeting line that never ends: protocol_error at once, memory bounded."""
    before = peak_rss_mb()
    async with HostileServer(protocol, "endless_line", hostile_tls) as server:
        result = await probe(protocol, server, hostile_ca_file, deadline=10)
    checked(result, protocol, 10)
    assert (result.status, result.code) == (Status.FAIL, Code.PROTOCOL_ERROR), result
    assert result.elapsed_ms < 2000
    assert peak_rss_mb() - before < 50
    assert loop_errors == []


@pytest.mark.asyncio
async def test_huge_imap_literal_fails_at_once(
    hostile_tls: Any, hostile_ca_file: str, loop_errors: list[Any]
) -> None:
    """A 1 GB literal is refused when announced: protocol_error at once, nothing buffered."""
    before = peak_rss_mb()
    async with HostileServer("imap", "huge_literal", hostile_tls) as server:
        result = await probe("imap", server, hostile_ca_file, deadline=10)
    checked(result, "imap", 10)
    assert (result.status, result.code) == (Status.FAIL, Code.PROTOCOL_ERROR), result
    assert "the server sent a literal of 1073741824 bytes" in result.message
    assert result.details["step"] == "login"
    assert result.elapsed_ms < 2000
    assert peak_rss_mb() - before < 50
    assert loop_errors == []


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["smtp", "imap"])
async def test_flood_of_lines_fails_at_once(
    protocol: MailProtocol, hostile_tls: Any, hostile_ca_file: str, loop_errors: list[Any]
) -> None:
    """Short lines without end (SMTP: an EHLO reply; IMAP: untagged data): protocol_error
    once the client's cap is passed, not a read until the deadline.

    "At once" is measured in bytes, not seconds (the speed of reading is the machine's):
    the client stops reading at its 8 MiB cap, so the server cannot have written much more
    than that plus the sockets' buffers; a reader that went on until the deadline takes
    hundreds of megabytes in 10 s on loopback."""
    before = peak_rss_mb()
    async with HostileServer(protocol, "flood", hostile_tls) as server:
        result = await probe(protocol, server, hostile_ca_file, deadline=10)
        sent = server.sent
    checked(result, protocol, 10)
    assert (result.status, result.code) == (Status.FAIL, Code.PROTOCOL_ERROR), result
    assert sent < 32 << 20, sent
    assert peak_rss_mb() - before < 50
    assert loop_errors == []


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["smtp", "imap"])
async def test_drip_feed_is_cut_by_the_deadline(
    protocol: MailProtocol, hostile_tls: Any, hostile_ca_file: str, loop_errors: list[Any]
) -> None:
    """A greeting dripped a byte every 0.5 s: greeting_timeout within the deadline + 1 s."""
    started = time.monotonic()
    async with HostileServer(protocol, "drip_feed", hostile_tls) as server:
        result = await probe(protocol, server, hostile_ca_file, deadline=2)
        took = time.monotonic() - started
    checked(result, protocol, 2)
    assert (result.status, result.code) == (Status.FAIL, Code.GREETING_TIMEOUT), result
    assert took < 2 + 1
    assert loop_errors == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [("smtp", "PLAIN"), ("smtp", "LOGIN"), ("imap", "LOGIN"), ("imap", "PLAIN")],
)
async def test_echoed_credentials_are_masked(
    protocol: MailProtocol,
    mechanism: str,
    hostile_tls: Any,
    hostile_ca_file: str,
    loop_errors: list[Any],
) -> None:
    """An echo of password, base64, AUTH PLAIN blob, quoted form, across the cut: all masked."""
    server = HostileServer(protocol, "echo_credentials", hostile_tls)
    server.smtp_auth = mechanism.encode()  # SMTP: the one mechanism offered
    server.login_disabled = mechanism == "PLAIN"  # IMAP: AUTHENTICATE PLAIN, not LOGIN
    async with server:
        result = await probe(protocol, server, hostile_ca_file)
    report = checked(result, protocol, 5)
    assert (result.status, result.code) == (Status.FAIL, Code.AUTH_FAILED), result
    assert mechanism == report["details"]["auth_mechanism"]
    assert MASK in report["details"]["reply"]  # the echo arrived, and was masked
    assert MASK[:3] in report["message"]


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["smtp", "imap"])
async def test_non_utf8_replies_are_reported(
    protocol: MailProtocol, hostile_tls: Any, hostile_ca_file: str, loop_errors: list[Any]
) -> None:
    """Bytes that are not UTF-8 in greeting and refusal: auth_failed, the report writable."""
    async with HostileServer(protocol, "non_utf8", hostile_tls) as server:
        result = await probe(protocol, server, hostile_ca_file)
    report = checked(result, protocol, 5)
    assert (result.status, result.code) == (Status.FAIL, Code.AUTH_FAILED), result
    # aiosmtplib keeps the bytes (surrogateescape), aioimaplib's lines are replaced.
    expected = "\\xff\\xfe caf\\xe9" if protocol == "smtp" else "\ufffd\ufffd caf\ufffd"
    assert expected in report["details"]["greeting"]
    assert expected in report["details"]["reply"]
    assert loop_errors == []


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["smtp", "imap"])
async def test_control_sequences_are_escaped(
    protocol: MailProtocol, hostile_tls: Any, hostile_ca_file: str, loop_errors: list[Any]
) -> None:
    """ESC[2J, an OSC title and C1 CSI in greeting and refusal are shown as escapes."""
    async with HostileServer(protocol, "control_sequences", hostile_tls) as server:
        result = await probe(protocol, server, hostile_ca_file)
    report = checked(result, protocol, 5)
    assert (result.status, result.code) == (Status.FAIL, Code.AUTH_FAILED), result
    raw_c1 = "\\x9b" if protocol == "smtp" else "\ufffd"
    expected = f"\\x1b[2J\\x1b]0;pwned\\x07 {raw_c1}31m \\x9b"
    assert expected in report["details"]["greeting"]
    assert expected in report["details"]["reply"]
    assert loop_errors == []


# --- `preflight check` as a process, against a hostile SMTP and IMAP server ----------


def run_check(stack: Stack, smtp_port: int, imap_port: int, ca_file: str, fmt: str) -> Any:
    body = {
        "from_name": "Alice",
        "from_email": USER,
        "user_name": USER,
        "password": PASSWORD,
        "smtp_host": HOST,
        "smtp_port": smtp_port,
        "imap_host": HOST,
        "imap_port": imap_port,
        "warmup_enabled": False,
    }
    dns_host, dns_port = stack.dns
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "preflight",
            "check",
            "-",
            "--format",
            fmt,
            "--timeout",
            "5",
            "--ca-file",
            ca_file,
            "--dns-server",
            f"{dns_host}:{dns_port}",
            "--smtp-security",
            "ssl",
            "--imap-security",
            "ssl",
            "--no-domain-check",
        ],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"},
        check=False,
    )


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize(
    "behaviour", ["echo_credentials", "non_utf8", "control_sequences", "huge_literal"]
)
def test_cli_against_hostile_servers(
    stack: Stack, hostile_tls: Any, hostile_ca_file: str, behaviour: Any, fmt: str, tmp_path: Path
) -> None:
    """`preflight check` vs hostile servers: exit 1; no traceback, secret or control output."""
    smtp = HostileServer("smtp", behaviour, hostile_tls)
    imap = HostileServer("imap", behaviour, hostile_tls)
    with serving_in_thread(smtp), serving_in_thread(imap):
        started = time.monotonic()
        done = run_check(stack, smtp.port, imap.port, hostile_ca_file, fmt)
        took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in done.stderr
    assert set() == leaks(output)
    assert set() == unprintable(output.replace("\n", ""))
    assert took < 5 + 1 + 5  # the deadline, its second, and interpreter start-up
    if fmt == "json":
        checks = {c["name"]: c for c in json.loads(done.stdout)["accounts"][0]["checks"]}
        expected = "protocol_error" if behaviour == "huge_literal" else "auth_failed"
        assert (expected, expected) == (checks["smtp"]["code"], checks["imap"]["code"])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [("smtp", "PLAIN"), ("smtp", "LOGIN"), ("imap", "LOGIN"), ("imap", "PLAIN")],
)
async def test_echoed_credentials_stay_out_of_the_log(
    protocol: MailProtocol,
    mechanism: str,
    hostile_tls: Any,
    hostile_ca_file: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At DEBUG, no log record (preflight's or a library's) shows the echoed credentials."""
    caplog.set_level(logging.DEBUG)
    server = HostileServer(protocol, "echo_credentials", hostile_tls)
    server.smtp_auth = mechanism.encode()
    server.login_disabled = mechanism == "PLAIN"
    async with server:
        result = await probe(protocol, server, hostile_ca_file)
    assert result.code is Code.AUTH_FAILED, result
    if protocol == "imap":  # aioimaplib logged the refusal: the check means something
        assert "tagged status (the server's text is not logged)" in caplog.text
    assert set() == leaks(caplog.text)
