"""The IMAP probe against real servers: Dovecot, and scripted stub servers on real sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import logging
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import trustme

from fixtures.stack import Stack
from preflight._resolver import HostLookup
from preflight._tls import make_context
from preflight.checks._replies import XOAUTH2_HINT
from preflight.checks.imap import probe_imap
from preflight.options import CheckOptions, Timeouts
from preflight.payload import Account, parse_account
from preflight.report import CheckResult, Code, Status

CANARY = 'CANARY-imap-7q"x\\z'  # quotes and a backslash: LOGIN must quote them
TOKEN_CANARY = "CANARY-token-3v8w"
CANARIES = ("CANARY-imap", TOKEN_CANARY)
GOOGLE_CHALLENGE = base64.b64encode(
    b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
).decode()

pytestmark = pytest.mark.asyncio


def account(host: str, port: int, user: str, password: str, **extra: Any) -> Account:
    body = {
        "from_name": "Test",
        "from_email": "alice@preflight.test",
        "user_name": user,
        "password": password,
        "smtp_host": host,
        "smtp_port": 465,
        "imap_host": host,
        "imap_port": port,
        "warmup_enabled": False,
        **extra,
    }
    parsed = parse_account(body)
    assert parsed.account is not None, parsed.errors
    return parsed.account


def assert_no_secret(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text
        assert base64.b64encode(canary.encode()).decode()[:16] not in text


async def probe(
    host: str,
    address: str,
    port: int,
    *,
    user: str = "alice@preflight.test",
    password: str = CANARY,
    ca_file: str | None = None,
    deadline: float = 10.0,
    extra: dict[str, Any] | None = None,
    **option: Any,
) -> CheckResult:
    """Run the IMAP probe for ``host`` reached at ``address:port``; no secret in the result."""
    options = CheckOptions(ca_file=ca_file, timeout=deadline, **option)
    loop = asyncio.get_running_loop()
    lookup: asyncio.Future[HostLookup] = loop.create_future()
    lookup.set_result(HostLookup(host, (address,)))
    result = await probe_imap(
        account(host, port, user, password, **(extra or {})),
        lookup,
        options,
        make_context(options.ca_file, options.insecure),
        loop.time() + deadline,
    )
    assert result.name == "imap"
    assert_no_secret(json.dumps(result.to_dict()))
    return result


def seconds(result: CheckResult) -> float:
    return result.elapsed_ms / 1000


# --- Dovecot (real IMAP server: 993 implicit TLS, 143 STARTTLS) -----------------


def dovecot(stack: Stack, key: str) -> tuple[str, int, str]:
    if key not in stack.imap:
        pytest.skip(f"no IMAP endpoint {key!r} here: {dict(stack.unavailable)}")
    endpoint = stack.imap[key]
    return endpoint.host, endpoint.port, str(endpoint.ca_file)


def dovecot_port(port: int) -> None:
    """The mode follows the port number: only 993/143 test that inference."""
    if port not in (993, 143):
        pytest.skip("Dovecot is not on the real port numbers (not root)")


@pytest.mark.parametrize(
    ("key", "security"),
    [("ssl", "ssl"), ("starttls", "starttls"), ("starttls_required", "starttls")],
)
async def test_dovecot_good_login(stack: Stack, key: str, security: str) -> None:
    """A good account logs in on 993 (TLS) and 143 (STARTTLS) and opens INBOX read-only."""
    address, port, ca = dovecot(stack, key)
    dovecot_port(port)
    user, password = stack.credentials()
    result = await probe(address, address, port, user=user, password=password, ca_file=ca)
    assert (result.status, result.code) == (Status.PASS, Code.OK), result
    assert result.details["security"] == security
    assert result.details["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert result.details["auth_mechanism"] == "LOGIN"
    assert result.details["verified"] is True
    assert result.details["cipher"]
    assert result.details["cert_issuer"]
    assert result.details["address"] == address
    assert result.details["inbox_messages"] == 0
    assert "LOGINDISABLED" not in result.details["capabilities"]
    assert password not in json.dumps(result.to_dict())


async def test_dovecot_strict_server_drops_pre_tls_capabilities(stack: Stack) -> None:
    """LOGINDISABLED before STARTTLS is forgotten after it: the capabilities are asked again."""
    address, port, ca = dovecot(stack, "starttls_required")
    user, password = stack.credentials()
    result = await probe(
        address,
        address,
        port,
        user=user,
        password=password,
        ca_file=ca,
        imap_security="starttls",
    )
    assert result.status is Status.PASS, result
    assert "AUTH=PLAIN" in result.details["capabilities"]
    assert "STARTTLS" not in result.details["capabilities"]


async def test_dovecot_wrong_password(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """A wrong password is auth_failed with the server's reply, and no secret anywhere."""
    caplog.set_level(logging.DEBUG)
    address, port, ca = dovecot(stack, "ssl")
    result = await probe(address, address, port, ca_file=ca, imap_security="ssl")
    assert (result.status, result.code) == (Status.FAIL, Code.AUTH_FAILED), result
    assert "AUTHENTICATIONFAILED" in result.details["reply"]
    assert result.details["step"] == "login"
    assert result.hint
    assert_no_secret(caplog.text)
    assert "LOGIN" in caplog.text  # the log was on: it shows the command, masked


@pytest.mark.parametrize("key", ["ssl", "starttls"])
async def test_dovecot_wrong_password_ends_with_logout(stack: Stack, key: str) -> None:
    """After a refused login the session ends with LOGOUT: Dovecot logs "Aborted login
    by logging out", not a closed connection."""
    address, port, ca = dovecot(stack, key)
    log = stack.workdir / "logs" / "dovecot.log"
    if not log.exists():
        pytest.skip("no Dovecot log on this target")
    seen = log.stat().st_size
    security = "ssl" if key == "ssl" else "starttls"
    result = await probe(address, address, port, ca_file=ca, imap_security=security)
    assert result.code is Code.AUTH_FAILED, result
    new = await dovecot_log_after(log, seen, "auth failed, 1 attempts")
    ours = [line for line in new if "auth failed, 1 attempts" in line]
    assert "Aborted login by logging out" in ours[0], ours


async def test_dovecot_good_login_ends_with_logout(stack: Stack) -> None:
    """A good session ends with LOGOUT (Dovecot: "Logged out"), though its answer is
    not waited for."""
    address, port, ca = dovecot(stack, "ssl")
    user, password = stack.credentials()
    log = stack.workdir / "logs" / "dovecot.log"
    if not log.exists():
        pytest.skip("no Dovecot log on this target")
    seen = log.stat().st_size
    result = await probe(address, address, port, user=user, password=password, ca_file=ca)
    assert result.status is Status.PASS, result
    new = await dovecot_log_after(log, seen, f"imap({user})")
    ours = [line for line in new if f"imap({user})" in line and "Disconnected" in line]
    assert ours, new
    assert "Logged out" in ours[0], new


async def test_dovecot_untrusted_without_ca_file(stack: Stack) -> None:
    """Without --ca-file the test CA is unknown: tls_untrusted."""
    address, port, _ = dovecot(stack, "ssl")
    result = await probe(address, address, port, imap_security="ssl")
    assert result.code is Code.TLS_UNTRUSTED, result
    assert result.details["step"] == "tls"


async def test_dovecot_starttls_untrusted(stack: Stack) -> None:
    """A bad certificate met during STARTTLS is classified too."""
    address, port, _ = dovecot(stack, "starttls")
    result = await probe(address, address, port, imap_security="starttls")
    assert result.code is Code.TLS_UNTRUSTED, result
    assert result.details["step"] == "starttls"


async def test_dovecot_wrong_host_name(stack: Stack) -> None:
    """A host name the certificate does not carry: tls_hostname_mismatch."""
    address, port, ca = dovecot(stack, "ssl")
    result = await probe("imap.wrong-name.test", address, port, ca_file=ca, imap_security="ssl")
    assert result.code is Code.TLS_HOSTNAME_MISMATCH, result


async def test_dovecot_insecure_passes_with_warning(stack: Stack) -> None:
    """--insecure skips verification, and the report warns about it."""
    address, port, _ = dovecot(stack, "ssl")
    user, password = stack.credentials()
    result = await probe(
        address,
        address,
        port,
        user=user,
        password=password,
        insecure=True,
        imap_security="ssl",
    )
    assert (result.status, result.code) == (Status.WARN, Code.OK), result
    assert result.details["verified"] is False
    assert "not verified" in result.message


async def test_dovecot_plain_text_to_993_is_mode_mismatch_fast(stack: Stack) -> None:
    """Plain text to the implicit-TLS port is tls_mode_mismatch in seconds, not at the deadline."""
    address, port, ca = dovecot(stack, "ssl")
    started = time.monotonic()
    result = await probe(
        address,
        address,
        port,
        ca_file=ca,
        deadline=20,
        imap_security="plain",
        allow_plaintext_auth=True,
    )
    took = time.monotonic() - started
    assert result.code is Code.TLS_MODE_MISMATCH, result
    assert "implicit TLS" in (result.hint or "")
    assert took < 3.0


async def test_dovecot_starttls_to_993_is_mode_mismatch(stack: Stack) -> None:
    """STARTTLS mode on the implicit-TLS port is a mode mismatch too."""
    address, port, ca = dovecot(stack, "ssl")
    result = await probe(address, address, port, ca_file=ca, imap_security="starttls")
    assert result.code is Code.TLS_MODE_MISMATCH, result
    assert seconds(result) < 3.0


async def test_dovecot_tls_to_143_is_mode_mismatch(stack: Stack) -> None:
    """Implicit TLS to the STARTTLS port fails at once (the server greets in clear text)."""
    address, port, ca = dovecot(stack, "starttls")
    result = await probe(address, address, port, ca_file=ca, imap_security="ssl")
    assert result.code is Code.TLS_MODE_MISMATCH, result
    assert "STARTTLS" in (result.hint or "")
    assert seconds(result) < 1.0


async def test_dovecot_plaintext_refused_without_flag(stack: Stack) -> None:
    """Without --allow-plaintext-auth no credentials go over a clear-text connection."""
    address, port, ca = dovecot(stack, "starttls")
    log = stack.workdir / "logs" / "dovecot.log"
    if not log.exists():
        pytest.skip("no Dovecot log on this target")
    seen = log.stat().st_size
    result = await probe(address, address, port, ca_file=ca, imap_security="plain")
    assert result.code is Code.AUTH_PLAINTEXT_REFUSED, result
    assert result.details["security"] == "plain"
    assert result.details["auth_mechanism"] is None  # nothing was attempted
    # Dovecot's own account: a clear-text session to this address ended, politely (a
    # LOGOUT), without any login attempt, and no login of any kind was logged meanwhile.
    new = await dovecot_log_after(log, seen, "Aborted login by logging out (no auth attempts")
    ours = [line for line in new if f"lip={address}," in line and "TLS" not in line]
    assert ours, new
    assert not [line for line in new if "method=" in line or "Login:" in line], new


async def dovecot_log_after(log: Path, offset: int, text: str) -> list[str]:
    """The log lines after ``offset``, once one holds ``text`` (Dovecot logs asynchronously)."""
    for _ in range(100):
        with log.open() as file:
            file.seek(offset)
            lines = file.readlines()
        if any(text in line for line in lines):
            return lines
        await asyncio.sleep(0.02)
    raise AssertionError(f"Dovecot logged no {text!r}")


async def test_dovecot_plaintext_allowed_warns(stack: Stack) -> None:
    """With --allow-plaintext-auth a clear-text login passes, as a warning."""
    address, port, ca = dovecot(stack, "starttls")
    user, password = stack.credentials()
    result = await probe(
        address,
        address,
        port,
        user=user,
        password=password,
        ca_file=ca,
        imap_security="plain",
        allow_plaintext_auth=True,
    )
    assert (result.status, result.code) == (Status.WARN, Code.OK), result
    assert result.details["security"] == "plain"
    assert result.details["tls_version"] is None
    assert result.details["auth_mechanism"] == "LOGIN"
    assert "clear text" in result.message


async def test_dovecot_logindisabled_in_clear_text(stack: Stack) -> None:
    """A server with LOGINDISABLED before TLS is auth_plaintext_refused even when allowed."""
    address, port, ca = dovecot(stack, "starttls_required")
    result = await probe(
        address, address, port, ca_file=ca, imap_security="plain", allow_plaintext_auth=True
    )
    assert result.code is Code.AUTH_PLAINTEXT_REFUSED, result
    assert "LOGINDISABLED" in result.message


async def test_closed_port_is_refused() -> None:
    """Nothing listening: connect_refused, at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await probe("127.0.0.1", "127.0.0.1", port, imap_security="ssl")
    assert result.code is Code.CONNECT_REFUSED, result
    assert seconds(result) < 1.0


# --- scripted stub servers: provider replies and misbehaviour ---------------------

NAMES = ["imap.gmail.com", "outlook.office365.com", "imap.mail.yahoo.com", "imap.stub.test"]


@pytest.fixture(scope="module")
def stub_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def stub_tls(stub_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    stub_ca.issue_cert(*NAMES).configure_cert(context)
    return context


@pytest.fixture(scope="module")
def stub_ca_file(stub_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("imapstubca") / "ca.pem"
    stub_ca.cert_pem.write_to_path(str(path))
    return str(path)


@dataclass
class Stub:
    """A scripted IMAP server that records every line it receives (literals inlined)."""

    tls_context: ssl.SSLContext
    greeting: str | None = "* OK stub.test IMAP4rev1 ready"
    capabilities: str = "IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2"
    tls_capabilities: str | None = None  # after STARTTLS, if different
    login_reply: str = "OK Logged in"
    xoauth2_challenge: str | None = None
    examine_reply: str = "OK [READ-ONLY] Examine completed"
    examine_untagged: str = "* 3 EXISTS\r\n* 0 RECENT"
    close_on_login: bool = False
    #: Untagged lines (e.g. Courier's ``* BYE ...``) sent in answer to LOGIN before the
    #: tagged reply; with ``close_on_login`` the connection is then closed instead of it.
    login_untagged: str = ""
    #: Sent right after the tagged answer to LOGIN, then the connection is closed.
    after_login: str = ""
    starttls_extra: bytes = b""  # sent with the STARTTLS answer, before the handshake
    lines: list[str] = field(default_factory=list)
    tls_started: bool = False
    #: Set when a session has ended: whatever the client sent has been read.
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await writer.wait_closed()
            self.ended.set()

    async def _read_command(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> str:
        line = (await reader.readline()).decode("utf-8", "replace")
        while literal := re.search(r"\{(\d+)\}\r\n$", line):
            writer.write(b"+ go ahead\r\n")
            await writer.drain()
            data = await reader.readexactly(int(literal[1]))
            rest = await reader.readline()
            line = line[: literal.end() - 2] + (data + rest).decode("utf-8", "replace")
        return line.rstrip("\r\n")

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.greeting is None:
            await reader.read()  # silent: wait for the client to give up
            return
        writer.write(self.greeting.encode() + b"\r\n")
        await writer.drain()
        while not reader.at_eof():
            line = await self._read_command(reader, writer)
            if not line:
                return
            self.lines.append(line)
            tag, _, rest = line.partition(" ")
            verb, _, args = rest.partition(" ")
            verb = verb.upper()
            caps = self.capabilities
            if self.tls_started and self.tls_capabilities is not None:
                caps = self.tls_capabilities
            if verb == "CAPABILITY":
                writer.write(f"* CAPABILITY {caps}\r\n{tag} OK done\r\n".encode())
            elif verb == "STARTTLS":
                writer.write(f"{tag} OK Begin TLS\r\n".encode() + self.starttls_extra)
                await writer.drain()
                await writer.start_tls(self.tls_context)
                self.tls_started = True
            elif verb == "LOGIN":
                if self.login_untagged:
                    writer.write(f"{self.login_untagged}\r\n".encode())
                    await writer.drain()
                if self.close_on_login:
                    return
                writer.write(f"{tag} {self.login_reply}\r\n".encode())
                if self.after_login:
                    writer.write(f"{self.after_login}\r\n".encode())
                    await writer.drain()
                    return
            elif verb == "AUTHENTICATE":
                mechanism, _, initial = args.partition(" ")
                if not initial:
                    writer.write(b"+ \r\n")
                    await writer.drain()
                    self.lines.append(await self._read_command(reader, writer))
                if mechanism.upper() == "XOAUTH2" and self.xoauth2_challenge is not None:
                    writer.write(f"+ {self.xoauth2_challenge}\r\n".encode())
                    await writer.drain()
                    self.lines.append(await self._read_command(reader, writer))
                writer.write(f"{tag} {self.login_reply}\r\n".encode())
            elif verb == "EXAMINE":
                untagged = self.examine_untagged
                writer.write(f"{untagged}\r\n{tag} {self.examine_reply}\r\n".encode())
            elif verb == "LOGOUT":
                writer.write(f"* BYE bye\r\n{tag} OK Logout completed\r\n".encode())
                await writer.drain()
                return
            else:
                writer.write(f"{tag} BAD unknown command\r\n".encode())
            await writer.drain()

    def commands(self, verb: str) -> list[str]:
        return [line for line in self.lines if f" {verb.upper()}" in line.upper()[:20]]


StartStub = Callable[..., Awaitable[tuple[Stub, int]]]


@pytest_asyncio.fixture
async def start_stub(stub_tls: ssl.SSLContext) -> AsyncIterator[StartStub]:
    """Start stub servers on 127.0.0.1, port 0; every connection is closed at the end."""
    servers: list[asyncio.Server] = []
    handlers: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def start(tls: bool = True, **kwargs: Any) -> tuple[Stub, int]:
        stub = Stub(stub_tls, **kwargs)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            writers.append(writer)
            await stub.handle(reader, writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=stub_tls if tls else None)
        servers.append(server)
        return stub, server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
    # End the sessions by closing their connections, not by cancelling the handlers:
    # asyncio 3.11 logs an error for a cancelled stream handler.
    for writer in writers:
        writer.transport.abort()
    if handlers:
        await asyncio.wait(handlers, timeout=5)
    for server in servers:
        await server.wait_closed()


async def test_stub_good_login_logs_no_secret(
    start_stub: StartStub, stub_ca_file: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A login passes; at DEBUG no log line (preflight's or aioimaplib's) holds the password."""
    caplog.set_level(logging.DEBUG)
    stub, port = await start_stub()
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert (result.status, result.code) == (Status.PASS, Code.OK), result
    assert result.details["inbox_messages"] == 3
    assert_no_secret(caplog.text)
    assert "aioimaplib" in caplog.text  # its debug log was captured, so the check means something
    # The LOGOUT is sent without waiting for its answer: the stub reads it after the report.
    await asyncio.wait_for(stub.ended.wait(), 5)
    assert [line.split(" ", 1)[1] for line in stub.lines] == [
        "CAPABILITY",
        'LOGIN "alice@preflight.test" "CANARY-imap-7q\\"x\\\\z"',
        "EXAMINE INBOX",
        "LOGOUT",
    ]


async def test_refused_login_ends_with_logout(start_stub: StartStub, stub_ca_file: str) -> None:
    """After a refused login the probe says LOGOUT without waiting for its answer."""
    stub, port = await start_stub(login_reply="NO [AUTHENTICATIONFAILED] Authentication failed.")
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert result.code is Code.AUTH_FAILED, result
    await asyncio.wait_for(stub.ended.wait(), 5)
    assert [line.split(" ", 2)[1] for line in stub.lines] == ["CAPABILITY", "LOGIN", "LOGOUT"]


async def test_missing_mailbox_ends_with_logout(start_stub: StartStub, stub_ca_file: str) -> None:
    """INBOX refused after a good login: LOGOUT, not a dropped connection."""
    stub, port = await start_stub(examine_reply="NO Mailbox does not exist")
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert result.code is Code.PROTOCOL_ERROR, result
    await asyncio.wait_for(stub.ended.wait(), 5)
    assert stub.lines[-1].split(" ", 1)[1] == "LOGOUT"


async def test_user_name_is_quoted(start_stub: StartStub, stub_ca_file: str) -> None:
    """LOGIN sends the user name as a quoted string, escaping quotes and backslashes."""
    stub, port = await start_stub()
    result = await probe(
        "imap.stub.test",
        "127.0.0.1",
        port,
        ca_file=stub_ca_file,
        imap_security="ssl",
        user='we"ird\\user name',
    )
    assert result.status is Status.PASS, result
    (login,) = stub.commands("LOGIN")
    assert login.split(" ", 2)[2].startswith('"we\\"ird\\\\user name" ')


async def test_eight_bit_password_goes_as_literal(start_stub: StartStub, stub_ca_file: str) -> None:
    """A password that is not 7-bit text is sent as a literal, which IMAP allows for 8-bit data."""
    stub, port = await start_stub()
    result = await probe(
        "imap.stub.test",
        "127.0.0.1",
        port,
        ca_file=stub_ca_file,
        imap_security="ssl",
        password="CANARY-imap-pässwörd",
    )
    assert result.status is Status.PASS, result
    (login,) = stub.commands("LOGIN")
    assert login.endswith('"alice@preflight.test" {22}CANARY-imap-pässwörd')


async def test_silent_server_is_greeting_timeout(start_stub: StartStub) -> None:
    """A server that accepts but never greets: greeting_timeout, within the step's bound."""
    _, port = await start_stub(tls=False, greeting=None)
    result = await probe(
        "imap.stub.test",
        "127.0.0.1",
        port,
        imap_security="starttls",
        timeouts=Timeouts(greeting=1.0, sniff_after=0.3),
    )
    assert result.code is Code.GREETING_TIMEOUT, result
    assert seconds(result) < 2.0


async def test_silent_tls_server_is_greeting_timeout(
    start_stub: StartStub, stub_ca_file: str
) -> None:
    """TLS completes but no greeting follows: greeting_timeout."""
    _, port = await start_stub(greeting=None)
    result = await probe(
        "imap.stub.test",
        "127.0.0.1",
        port,
        ca_file=stub_ca_file,
        imap_security="ssl",
        timeouts=Timeouts(greeting=1.0),
    )
    assert result.code is Code.GREETING_TIMEOUT, result
    assert result.details["security"] == "ssl"


async def test_silent_server_within_the_deadline(start_stub: StartStub) -> None:
    """However long the step timeouts, the deadline ends the check."""
    _, port = await start_stub(tls=False, greeting=None)
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, imap_security="starttls", deadline=1.0
    )
    assert result.code is Code.GREETING_TIMEOUT, result
    assert seconds(result) < 1.5


async def test_xoauth2_failure_does_not_hang(start_stub: StartStub, stub_ca_file: str) -> None:
    """A refused token's `+ <base64 json>` challenge is answered: auth_failed, not a hang."""
    stub, port = await start_stub(
        xoauth2_challenge=GOOGLE_CHALLENGE,
        login_reply="NO [AUTHENTICATIONFAILED] Invalid credentials",
    )
    result = await probe(
        "imap.gmail.com",
        "127.0.0.1",
        port,
        ca_file=stub_ca_file,
        imap_security="ssl",
        extra={"token": {"access_token": TOKEN_CANARY}},
    )
    assert (result.status, result.code) == (Status.FAIL, Code.AUTH_FAILED), result
    assert result.hint == XOAUTH2_HINT
    assert result.details["auth_mechanism"] == "XOAUTH2"
    assert json.loads(result.details["oauth_error"])["scope"] == "https://mail.google.com/"
    assert "AUTHENTICATIONFAILED" in result.details["reply"]
    (authenticate,) = stub.commands("AUTHENTICATE")
    assert stub.lines[stub.lines.index(authenticate) + 1] == ""  # the empty answer
    assert seconds(result) < 1.0


async def test_xoauth2_without_sasl_ir(start_stub: StartStub, stub_ca_file: str) -> None:
    """Without SASL-IR the token answers the server's first `+`; the error challenge still ends."""
    stub, port = await start_stub(
        capabilities="IMAP4rev1 AUTH=XOAUTH2",
        xoauth2_challenge=GOOGLE_CHALLENGE,
        login_reply="NO failed",
    )
    result = await probe(
        "imap.gmail.com",
        "127.0.0.1",
        port,
        ca_file=stub_ca_file,
        imap_security="ssl",
        extra={"token": {"access_token": TOKEN_CANARY}},
    )
    assert result.code is Code.AUTH_FAILED, result
    assert "oauth_error" in result.details
    authenticate = stub.commands("AUTHENTICATE")
    assert authenticate[0].endswith("AUTHENTICATE XOAUTH2")


async def test_xoauth2_success(start_stub: StartStub, stub_ca_file: str) -> None:
    """An account with a token logs in with XOAUTH2 when the server offers it."""
    stub, port = await start_stub()
    result = await probe(
        "imap.gmail.com",
        "127.0.0.1",
        port,
        ca_file=stub_ca_file,
        imap_security="ssl",
        extra={"token": {"access_token": TOKEN_CANARY}},
    )
    assert result.status is Status.PASS, result
    assert result.details["auth_mechanism"] == "XOAUTH2"
    (authenticate,) = stub.commands("AUTHENTICATE")
    sasl = base64.b64decode(authenticate.rsplit(" ", 1)[1])
    assert sasl == f"user=alice@preflight.test\x01auth=Bearer {TOKEN_CANARY}\x01\x01".encode()


async def test_examine_refused_is_caught(start_stub: StartStub, stub_ca_file: str) -> None:
    """Logged in but INBOX cannot be opened: a failure, not a pass."""
    _, port = await start_stub(examine_reply="NO [NONEXISTENT] Mailbox doesn't exist: INBOX")
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert (result.status, result.code) == (Status.FAIL, Code.PROTOCOL_ERROR), result
    assert "INBOX cannot be opened" in result.message
    assert result.details["step"] == "examine"
    assert "NONEXISTENT" in result.details["reply"]
    assert "IMAP access" in (result.hint or "")


async def test_absurd_message_count_is_ignored(start_stub: StartStub, stub_ca_file: str) -> None:
    """An EXISTS count of 5,000 digits (int() refuses it) is no count, not a traceback."""
    _, port = await start_stub(examine_untagged=f"* {'9' * 5000} EXISTS")
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert (result.status, result.code) == (Status.PASS, Code.OK), result
    assert "inbox_messages" not in result.details


async def test_server_closing_mid_login_fails_fast(
    start_stub: StartStub, stub_ca_file: str
) -> None:
    """The server hangs up after LOGIN: protocol_error at once, not at the command timeout."""
    _, port = await start_stub(close_on_login=True)
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl", deadline=20
    )
    assert result.code is Code.PROTOCOL_ERROR, result
    assert result.details["step"] == "login"
    assert "closed" in result.message
    assert seconds(result) < 1.0


IMAP_REPLIES = [
    (
        "imap.gmail.com",
        "NO [ALERT] Application-specific password required: "
        "https://support.google.com/accounts/answer/185833 (Failure)",
        Code.AUTH_APP_PASSWORD_REQUIRED,
        "app password",
    ),
    (
        "imap.gmail.com",
        "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)",
        Code.AUTH_FAILED,
        "spaces",
    ),
    (
        "imap.gmail.com",
        "NO [ALERT] Please log in via your web browser: "
        "https://support.google.com/mail/accounts/answer/78754 (Failure)",
        Code.AUTH_WEB_LOGIN_REQUIRED,
        "sign in on the web",
    ),
    ("outlook.office365.com", "NO LOGIN failed.", Code.AUTH_FAILED, "basic authentication"),
    (
        "imap.mail.yahoo.com",
        "NO [AUTHENTICATIONFAILED] LOGIN Invalid credentials",
        Code.AUTH_FAILED,
        "app password",
    ),
    (
        "imap.stub.test",
        "NO [UNAVAILABLE] Too many login attempts, try again later",
        Code.AUTH_THROTTLED,
        "wait",
    ),
    (
        "imap.stub.test",
        "BAD [PRIVACYREQUIRED] Use STARTTLS first",
        Code.AUTH_PLAINTEXT_REFUSED,
        "TLS",
    ),
]


@pytest.mark.parametrize(("host", "reply", "code", "hint_word"), IMAP_REPLIES)
async def test_provider_refusals(
    start_stub: StartStub, stub_ca_file: str, host: str, reply: str, code: Code, hint_word: str
) -> None:
    """Each provider's tagged NO/BAD is classified on its meaning, reply kept in details."""
    _, port = await start_stub(login_reply=reply)
    result = await probe(host, "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl")
    assert (result.status, result.code) == (Status.FAIL, code), result
    assert hint_word.lower() in (result.hint or "").lower()
    assert result.details["reply"] == reply


async def test_plaintext_never_sends_login(start_stub: StartStub) -> None:
    """Refused clear-text credentials never reach the server: no LOGIN, no AUTHENTICATE."""
    stub, port = await start_stub(tls=False)
    result = await probe("imap.stub.test", "127.0.0.1", port, imap_security="plain")
    assert result.code is Code.AUTH_PLAINTEXT_REFUSED, result
    await asyncio.wait_for(stub.ended.wait(), 5)  # the stub has read whatever was sent
    assert stub.lines  # the session got as far as CAPABILITY
    assert not stub.commands("LOGIN")
    assert not stub.commands("AUTHENTICATE")


async def test_starttls_missing_on_starttls_port(start_stub: StartStub) -> None:
    """STARTTLS required but not offered: starttls_unsupported, no credentials sent."""
    stub, port = await start_stub(tls=False, capabilities="IMAP4rev1 AUTH=PLAIN")
    result = await probe("imap.stub.test", "127.0.0.1", port, imap_security="starttls")
    assert result.code is Code.STARTTLS_UNSUPPORTED, result
    assert not stub.commands("LOGIN")


async def test_starttls_response_injection_is_refused(start_stub: StartStub) -> None:
    """Clear text after the STARTTLS OK (a response injection) ends the check."""
    stub, port = await start_stub(
        tls=False,
        capabilities="IMAP4rev1 STARTTLS AUTH=PLAIN",
        starttls_extra=b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n",
    )
    result = await probe("imap.stub.test", "127.0.0.1", port, imap_security="starttls")
    assert result.code is Code.PROTOCOL_ERROR, result
    assert "after accepting STARTTLS" in result.message
    assert not stub.commands("LOGIN")


async def test_detect_upgrades_with_starttls(start_stub: StartStub, stub_ca_file: str) -> None:
    """On a port of no convention, a clear-text greeting with STARTTLS offered is upgraded."""
    stub, port = await start_stub(
        tls=False,
        capabilities="IMAP4rev1 STARTTLS LOGINDISABLED",
        tls_capabilities="IMAP4rev1 SASL-IR AUTH=PLAIN",
    )
    result = await probe("imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file)
    assert result.status is Status.PASS, result
    assert result.details["security"] == "starttls"
    assert result.details["capabilities"] == ["IMAP4rev1", "SASL-IR", "AUTH=PLAIN"]
    assert stub.commands("LOGIN")


async def test_detect_finds_implicit_tls(start_stub: StartStub, stub_ca_file: str) -> None:
    """On a port of no convention that speaks TLS first, the probe switches to TLS."""
    _, port = await start_stub(tls=True)
    result = await probe(
        "imap.stub.test",
        "127.0.0.1",
        port,
        ca_file=stub_ca_file,
        timeouts=Timeouts(sniff_after=0.2),
    )
    assert result.status is Status.PASS, result
    assert result.details["security"] == "ssl"
    assert result.details["security_detected"] is True


async def test_logindisabled_after_tls_uses_authenticate_plain(
    start_stub: StartStub, stub_ca_file: str
) -> None:
    """With LOGIN disabled but AUTH=PLAIN offered, the one attempt is AUTHENTICATE PLAIN."""
    stub, port = await start_stub(capabilities="IMAP4rev1 LOGINDISABLED AUTH=PLAIN")
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert result.status is Status.PASS, result
    assert result.details["auth_mechanism"] == "PLAIN"
    assert not stub.commands("LOGIN")
    (authenticate,) = stub.commands("AUTHENTICATE")
    assert authenticate.endswith("AUTHENTICATE PLAIN")  # no SASL-IR: the response follows "+"
    response = stub.lines[stub.lines.index(authenticate) + 1]
    assert base64.b64decode(response) == f"\0alice@preflight.test\0{CANARY}".encode()


async def test_logindisabled_without_mechanism(start_stub: StartStub, stub_ca_file: str) -> None:
    """LOGIN disabled and no usable AUTHENTICATE mechanism: auth_unsupported, nothing sent."""
    stub, port = await start_stub(capabilities="IMAP4rev1 LOGINDISABLED AUTH=GSSAPI")
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert result.code is Code.AUTH_UNSUPPORTED, result
    assert "GSSAPI" in result.message
    assert not stub.commands("LOGIN")
    assert not stub.commands("AUTHENTICATE")


@pytest.mark.parametrize(
    ("greeting", "words"),
    [
        ("* BYE Too many connections from your IP", "refused the session"),
        ("220 mail.stub.test ESMTP Postfix", "not IMAP"),
    ],
)
async def test_greeting_that_is_not_ok(
    start_stub: StartStub, stub_ca_file: str, greeting: str, words: str
) -> None:
    """A BYE greeting, or another protocol's banner: protocol_error, greeting in details."""
    _, port = await start_stub(greeting=greeting)
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert result.code is Code.PROTOCOL_ERROR, result
    assert words in result.message
    assert result.details["reply"] == greeting


async def test_preauth_session_passes_with_warning(
    start_stub: StartStub, stub_ca_file: str
) -> None:
    """A PREAUTH greeting needs no login: INBOX is still opened, and the report warns."""
    stub, port = await start_stub(greeting="* PREAUTH [CAPABILITY IMAP4rev1] welcome back")
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert (result.status, result.code) == (Status.WARN, Code.OK), result
    assert result.details["auth_mechanism"] == "PREAUTH"
    assert not stub.commands("LOGIN")
    assert stub.commands("EXAMINE")


async def test_tls_handshake_cut_by_the_deadline(start_stub: StartStub) -> None:
    """A port that never answers TLS: greeting_timeout at the deadline, and the socket closed."""
    _, port = await start_stub(tls=False, greeting=None)
    result = await probe("imap.stub.test", "127.0.0.1", port, imap_security="ssl", deadline=0.5)
    assert result.code is Code.GREETING_TIMEOUT, result
    assert result.details["step"] == "tls"
    assert seconds(result) < 1.0
    await asyncio.sleep(0.05)
    gc.collect()  # an unclosed transport or socket would warn now, and warnings are errors


# --- Issue 11: replies that must keep their meaning (scripted as the servers answer) ----


async def test_imap4d_xtlsrequired_refused_before_tls(start_stub: StartStub) -> None:
    """GNU imap4d on 143: STARTTLS XTLSREQUIRED (no LOGINDISABLED), plain text forced."""
    stub, port = await start_stub(
        tls=False,
        greeting="* OK IMAP4rev1 Debian GNU Mailutils 3.15 ready",
        capabilities="IMAP4rev1 NAMESPACE ID IDLE LITERAL+ UNSELECT STARTTLS XTLSREQUIRED",
        login_reply="NO LOGIN Command disabled",
    )
    for allowed in (False, True):
        result = await probe(
            "imap.stub.test",
            "127.0.0.1",
            port,
            imap_security="plain",
            allow_plaintext_auth=allowed,
        )
        assert result.code is Code.AUTH_PLAINTEXT_REFUSED, result
        assert "XTLSREQUIRED" in result.message
        hint = result.hint or ""
        assert "STARTTLS" in hint
        assert "re-type" not in hint
        assert "--allow-plaintext-auth" not in hint
    assert not stub.commands("LOGIN")


async def test_imap4d_login_command_disabled(start_stub: StartStub) -> None:
    """GNU imap4d answers a clear-text LOGIN with NO LOGIN Command disabled (STARTTLS offered)."""
    stub, port = await start_stub(
        tls=False,
        greeting="* OK IMAP4rev1 Debian GNU Mailutils 3.15 ready",
        capabilities="IMAP4rev1 NAMESPACE ID IDLE LITERAL+ UNSELECT STARTTLS",
        login_reply="NO LOGIN Command disabled",
    )
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, imap_security="plain", allow_plaintext_auth=True
    )
    assert result.code is Code.AUTH_PLAINTEXT_REFUSED, result
    assert result.details["reply"] == "NO LOGIN Command disabled"
    hint = result.hint or ""
    assert "only over TLS" in hint
    assert "re-type" not in hint
    assert "--allow-plaintext-auth" not in hint
    assert stub.commands("LOGIN")


async def test_dovecot_logindisabled_hint_has_no_flag(stack: Stack) -> None:
    """Dovecot's LOGINDISABLED before TLS: the hint does not offer --allow-plaintext-auth."""
    address, port, ca = dovecot(stack, "starttls_required")
    result = await probe(address, address, port, ca_file=ca, imap_security="plain")
    assert result.code is Code.AUTH_PLAINTEXT_REFUSED, result
    assert "LOGINDISABLED" in result.message
    assert "--allow-plaintext-auth" not in (result.hint or "")


async def test_plaintext_hint_offers_flag_when_it_helps(start_stub: StartStub) -> None:
    """No LOGINDISABLED, no STARTTLS refusal yet: the flag could help, so the hint names it."""
    _, port = await start_stub(tls=False, capabilities="IMAP4rev1 AUTH=PLAIN")
    result = await probe("imap.stub.test", "127.0.0.1", port, imap_security="plain")
    assert result.code is Code.AUTH_PLAINTEXT_REFUSED, result
    assert "--allow-plaintext-auth" in (result.hint or "")


async def test_courier_bye_temporary_problem(start_stub: StartStub, stub_ca_file: str) -> None:
    """Courier-IMAP answers LOGIN with * BYE Temporary problem (its auth backend is down)."""
    _, port = await start_stub(
        login_untagged="* BYE Temporary problem, please try again later", close_on_login=True
    )
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert result.code is Code.SERVER_UNAVAILABLE, result
    assert result.details["reply"] == "BYE Temporary problem, please try again later"
    hint = result.hint or ""
    assert "retry later" in hint
    assert "host and port" not in hint
    assert "re-type" not in hint


async def test_courier_bye_echoing_password_is_scrubbed(
    start_stub: StartStub, stub_ca_file: str
) -> None:
    """A * BYE during LOGIN that repeats the password keeps its text, the password masked."""
    _, port = await start_stub(
        login_untagged=f"* BYE Temporary problem for {CANARY}, please try again later",
        close_on_login=True,
    )
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert result.code is Code.SERVER_UNAVAILABLE, result
    assert "Temporary problem" in result.details["reply"]


async def test_courier_bye_after_login_no_mailbox(start_stub: StartStub, stub_ca_file: str) -> None:
    """Courier: tagged OK LOGIN, then * BYE [ALERT] Fatal error: No such file or directory."""
    _, port = await start_stub(after_login="* BYE [ALERT] Fatal error: No such file or directory")
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert result.code is Code.PROTOCOL_ERROR, result
    assert "mailbox does not exist" in result.message
    assert result.details["reply"] == "BYE [ALERT] Fatal error: No such file or directory"
    hint = result.hint or ""
    assert "does not exist" in hint
    assert "host and port" not in hint


async def test_cyrus_examine_mailbox_does_not_exist(
    start_stub: StartStub, stub_ca_file: str
) -> None:
    """Cyrus answers EXAMINE INBOX with NO Mailbox does not exist."""
    _, port = await start_stub(examine_reply="NO Mailbox does not exist", examine_untagged="")
    result = await probe(
        "imap.stub.test", "127.0.0.1", port, ca_file=stub_ca_file, imap_security="ssl"
    )
    assert result.code is Code.PROTOCOL_ERROR, result
    assert result.details["reply"] == "NO Mailbox does not exist"
    assert "does not exist" in (result.hint or "")
