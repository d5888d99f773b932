"""A cold start's connection opened before the libraries load (preflight._early).

The command line looks up the first account's server and connects to it in a thread
while asyncio, TLS and the protocol clients import; the probe takes that socket
instead of connecting again. What must hold: the server sees one connection per
protocol, not two; the probe's session runs on the early socket; a refused early
connection is reported exactly as a refused connection always is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fixtures.certs import CertSet, make_certs
from fixtures.dns_server import DnsServer, build_zone
from fixtures.hostile import INTERNAL_ERROR_ALERT, TlsTrouble
from fixtures.threaded import threaded_server
from preflight import _early
from preflight._net import ConnectFailure, open_socket
from preflight._resolver import HostLookup, _resolve_system
from preflight._tls import make_context
from preflight.checks.smtp import probe_smtp
from preflight.options import CheckOptions
from preflight.payload import parse_account
from preflight.report import CheckResult, Code

CANARY = "CANARY-early-9d2"


@dataclass
class Server:
    """A clear-text SMTP server that takes any login; records its clients' ports."""

    peers: list[int] = field(default_factory=list)
    logins: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        with self.lock:
            self.peers.append(peer[1])
        with conn:
            conn.settimeout(10)
            conn.sendall(b"220 early.test ESMTP\r\n")
            buffer = b""
            try:
                while chunk := conn.recv(4096):
                    buffer += chunk
                    while b"\r\n" in buffer:
                        line, buffer = buffer.split(b"\r\n", 1)
                        verb = line.split(b" ", 1)[0].upper()
                        if verb == b"EHLO":
                            conn.sendall(b"250-early.test\r\n250 AUTH PLAIN\r\n")
                        elif verb == b"AUTH":
                            with self.lock:
                                self.logins += 1
                            conn.sendall(b"235 2.7.0 Accepted\r\n")
                        elif verb == b"QUIT":
                            conn.sendall(b"221 2.0.0 Bye\r\n")
                            return
                        else:
                            conn.sendall(b"250 2.0.0 OK\r\n")
            except OSError:
                pass


@contextlib.contextmanager
def server() -> Iterator[tuple[Server, int]]:
    state = Server()
    with threaded_server(state.serve, join_timeout=10) as (port, _):
        yield state, port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.asyncio
async def test_the_probe_takes_the_early_socket() -> None:
    """start() looks up and connects; the look-up is the probes' look-up, and
    open_socket() returns the early socket itself: one connection, from its port."""
    with server() as (state, port):
        _early.start("localhost", port, 5.0)
        addresses = await _resolve_system("localhost")
        assert addresses[0] in ("127.0.0.1", "::1")
        if addresses[0] != "127.0.0.1":
            pytest.skip("localhost resolves to IPv6 first here")
        sock = await open_socket(addresses, port, 5.0)
        try:
            assert sock.getblocking() is False
            local_port = sock.getsockname()[1]
            greeting = await asyncio.get_running_loop().sock_recv(sock, 100)
        finally:
            sock.close()
        assert greeting.startswith(b"220 early.test")
        assert state.peers == [local_port]
        assert _early.claim("127.0.0.1", port) is None  # taken once


@pytest.mark.asyncio
async def test_a_refused_early_connection_is_reported_as_refused() -> None:
    port = free_port()
    _early.start("127.0.0.1", port, 5.0)
    with pytest.raises(ConnectFailure) as failure:
        await open_socket(("127.0.0.1",), port, 5.0)
    assert failure.value.code.value == "connect_refused"


@pytest.fixture(scope="module")
def dns_server() -> Iterator[str]:
    """The local test DNS server, for the mx check of the commands below: nothing in
    the tests asks the system's resolver (which may forward off this machine)."""
    server = DnsServer(build_zone())
    host, port = server.start()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


def run_check(port: int, *extra: str, dns: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "preflight",
            "check",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--smtp-security",
            "plain",
            "--allow-plaintext-auth",
            "--user",
            "early@preflight.test",
            "--password-env",
            "EARLY_PW",
            "--no-domain-check",
            "--no-blocklist-check",
            "--dns-server",
            dns,
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EARLY_PW": CANARY},
        check=False,
    )


def test_the_command_connects_once(dns_server: str) -> None:
    """`preflight check --host ...` (a cold start): one connection to the server, the
    login on it, the report as usual, and the password nowhere in the output."""
    with server() as (state, port):
        done = run_check(port, dns=dns_server)
    assert CANARY not in done.stdout + done.stderr
    import json

    smtp = json.loads(done.stdout)["accounts"][0]["checks"][2]
    assert (smtp["name"], smtp["code"]) == ("smtp", "ok"), smtp
    assert len(state.peers) == 1
    assert state.logins == 1


def test_the_command_reports_a_refused_port_as_before(dns_server: str) -> None:
    port = free_port()
    done = run_check(port, dns=dns_server)
    import json

    smtp = json.loads(done.stdout)["accounts"][0]["checks"][2]
    assert (smtp["code"], done.returncode) == ("connect_refused", 1)
    assert f"connection to port {port} refused" in smtp["message"]


@pytest.mark.asyncio
async def test_a_failed_early_look_up_is_the_probes_to_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name that does not resolve: the early look-up's error is the one the probe's
    look-up raises (as the system resolver would), and nothing is claimed. The system
    resolver is replaced for the name: asking it would send the question off the
    machine."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    _early.start("no-such-host.invalid", 587, 5.0)
    with pytest.raises(socket.gaierror):
        await _resolve_system("no-such-host.invalid")
    assert await _early.take("127.0.0.1", 587) is None


# --- the SMTP prelude: greeting, EHLO and STARTTLS done by the early thread ------------

PRELUDE_HOST = "mail.preflight.test"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(Path(tmp_path_factory.mktemp("early-certs")))


def _server_context(
    certs: CertSet, files: str = "server", **version: ssl.TLSVersion
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    chain = getattr(certs, files)
    context.load_cert_chain(chain.cert, chain.key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0, on purpose
        if version:
            context.set_ciphers("ALL:@SECLEVEL=0")
        for name, value in version.items():
            setattr(context, name, value)
    return context


async def _probe_starttls(port: int, certs: CertSet, *, early: bool) -> CheckResult:
    """The smtp check of a STARTTLS account on ``port``; with ``early``, after the
    early thread's connection and prelude, as a cold start of the command does it."""
    options = CheckOptions(ca_file=str(certs.ca_file), smtp_security="starttls")
    if early:
        timeouts = options.timeouts
        _early.start(
            "127.0.0.1",
            port,
            5.0,
            prelude=(options.local_hostname, timeouts.sniff_after, timeouts.command),
        )
    parsed = parse_account(
        {
            "from_name": "Early",
            "from_email": "early@preflight.test",
            "user_name": "early@preflight.test",
            "password": CANARY,
            "smtp_host": PRELUDE_HOST,
            "smtp_port": port,
            "imap_host": PRELUDE_HOST,
            "imap_port": 1,
            "warmup_enabled": False,
        }
    )
    assert parsed.account is not None
    loop = asyncio.get_running_loop()
    lookup: asyncio.Future[HostLookup] = loop.create_future()
    lookup.set_result(HostLookup(PRELUDE_HOST, ("127.0.0.1",)))
    result = await probe_smtp(
        parsed.account, lookup, options, make_context(options.ca_file, False), loop.time() + 10
    )
    assert CANARY not in json.dumps(result.to_dict())
    return result


def _comparable(result: CheckResult, port: int) -> Any:
    """A report without what differs from run to run: its time, and the server's port
    (each run has its own server)."""
    report = result.to_dict()
    report.pop("elapsed_ms")
    return json.dumps(report, indent=1).replace(str(port), "PORT")


#: Scripted STARTTLS servers, each with what differs from the book: every one of them
#: must get the same report with the early prelude as without it.
_PRELUDE_CASES: dict[str, dict[str, Any]] = {
    "login accepted": {"login_ok": True},
    "login refused": {},
    "internal_error alert": {"alert": INTERNAL_ERROR_ALERT},
    "TLS 1.0 only": {"version": ssl.TLSVersion.TLSv1},
    "untrusted certificate": {"files": "untrusted"},
    "expired certificate": {"files": "expired"},
    "certificate for another host": {"files": "wrong_host"},
    "STARTTLS refused": {"starttls_reply": b"454 4.7.0 TLS not available due to local problem"},
}
#: The cases where the early thread hands over mid-session (the server answered by the
#: book up to STARTTLS); in the others it gives up and the probe connects again.
_BY_THE_BOOK = {case for case in _PRELUDE_CASES if "starttls_reply" not in _PRELUDE_CASES[case]}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(_PRELUDE_CASES))
async def test_the_prelude_changes_no_report(certs: CertSet, case: str) -> None:
    """The same scripted server, checked with the early prelude and without: the same
    report, word for word; by the book, on as many connections (the prelude's is the
    probe's), with the same lines received; otherwise one more (the early one, given up
    with a QUIT)."""
    settings = dict(_PRELUDE_CASES[case])
    files = settings.pop("files", "server")
    version = settings.pop("version", None)
    versions = {"minimum_version": version, "maximum_version": version} if version else {}
    reports = []
    connections = []
    received = []
    for early in (False, True):
        context = _server_context(certs, files, **versions)
        async with TlsTrouble("smtp", starttls=True, context=context, **settings) as server:
            result = await _probe_starttls(server.port, certs, early=early)
            reports.append(_comparable(result, server.port))
            await asyncio.wait_for(server.ended.wait(), 5)
            connections.append(len(server._writers))
            received.append([line for line in server.received if not line.startswith(b"EHLO")])
    assert reports[1] == reports[0]
    if case in _BY_THE_BOOK:
        assert connections[1] == connections[0]
        assert received[1] == received[0]
    else:
        assert connections[1] == connections[0] + 1
        assert b"QUIT" in received[1]


@pytest.mark.asyncio
async def test_the_prelude_is_taken_over(certs: CertSet) -> None:
    """A login that works: the greeting is the one the early thread read, the session is
    STARTTLS with TLS 1.3, on the one connection the server saw."""
    context = _server_context(certs)
    async with TlsTrouble("smtp", starttls=True, context=context, login_ok=True) as server:
        result = await _probe_starttls(server.port, certs, early=True)
        await asyncio.wait_for(server.ended.wait(), 5)
        connections = len(server._writers)
    assert (result.code, result.details["security"]) == (Code.OK, "starttls"), result
    assert result.details["greeting"] == "trouble.test ESMTP"
    assert result.details["tls_version"] == "TLSv1.3"
    assert connections == 1


def test_this_aiosmtplib_can_be_resumed() -> None:
    """The aiosmtplib installed has the internals the take-over replaces (without them
    the probe would connect again: correct, but the prelude's time lost)."""
    from preflight.checks import smtp

    assert smtp._RESUMABLE


@pytest.mark.asyncio
async def test_an_imap_probe_never_takes_an_smtp_prelude() -> None:
    """An early connection meant for an SMTP prelude is SMTP's even when the server has
    not greeted yet (nothing read, the socket handed over as new): open_socket for
    another protocol connects anew (one host and port in both fields of a confused
    payload), the SMTP probe takes it."""
    peers: list[int] = []

    def silent(conn: socket.socket, peer: tuple[str, int]) -> None:
        peers.append(peer[1])
        with conn:
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(100)

    with threaded_server(silent) as (port, _):
        _early.start("127.0.0.1", port, 5.0, prelude=("preflight.localhost", 0.2, 5.0))
        imap = await open_socket(("127.0.0.1",), port, 5.0, "imap")
        smtp = await open_socket(("127.0.0.1",), port, 5.0, "smtp")
        try:
            assert _early.prelude(smtp) is None  # no greeting came: nothing was said
            ports = {imap.getsockname()[1], smtp.getsockname()[1]}
        finally:
            imap.close()
            smtp.close()
    assert sorted(peers) == sorted(ports)


def _scripted(greeting: bytes, after_starttls: bytes = b"") -> Any:
    """An SMTP server for the prelude: ``greeting`` first, EHLO offering STARTTLS,
    ``220`` (plus ``after_starttls``) to STARTTLS; records every line it reads."""
    lines: list[bytes] = []

    def serve(conn: socket.socket, _peer: Any) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            conn.sendall(greeting)
            buffer = b""
            while chunk := conn.recv(4096):
                buffer += chunk
                while b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    lines.append(line)
                    verb = line.split(b" ", 1)[0].upper()
                    if verb == b"EHLO":
                        conn.sendall(b"250-odd.test\r\n250 STARTTLS\r\n")
                    elif verb == b"STARTTLS":
                        conn.sendall(b"220 2.0.0 Ready\r\n" + after_starttls)
                    elif verb == b"QUIT":
                        return

    serve.lines = lines  # type: ignore[attr-defined]
    return serve


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("greeting", "after_starttls", "by_the_book"),
    [
        (b"220 \xff\xfe non-UTF-8 \x00 greeting\r\n", b"", True),
        (b"220-first\r\n220-second\r\n220 last\r\n", b"", True),
        (b"220 fine\r\n", b"250 injected before TLS\r\n", False),
        (b"220 " + b"x" * 70_000, b"", False),  # a line that never ends
        (b"2x0 not a reply\r\n", b"", False),
        (b"554 no service for you\r\n", b"", False),
        (b"220-one\r\n221 another code mid-reply\r\n", b"", False),
    ],
    ids=["non-utf8", "multi-line", "injected", "endless", "garbage", "refusal", "mixed"],
)
async def test_the_prelude_reads_strange_servers_safely(
    greeting: bytes, after_starttls: bytes, by_the_book: bool
) -> None:
    """Strange bytes from the server: by the book (whatever the text's bytes), the socket
    comes with its prelude and the greeting's text; anything else, no prelude on any
    socket the probe gets, and the server was told QUIT."""
    serve = _scripted(greeting, after_starttls)
    with threaded_server(serve) as (port, _):
        _early.start("127.0.0.1", port, 5.0, prelude=("preflight.localhost", 2.0, 2.0))
        sock = await open_socket(("127.0.0.1",), port, 5.0, "smtp")
        try:
            found = _early.prelude(sock)
        finally:
            sock.close()
    lines: list[bytes] = serve.lines
    if by_the_book:
        assert found is not None
        assert found.ready == "2.0.0 Ready"
        assert b"QUIT" not in lines
    else:
        assert found is None
        assert b"QUIT" in lines
