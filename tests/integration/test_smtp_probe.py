"""The SMTP probe against real servers: Postfix, aiosmtpd, and scripted stub servers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import trustme

from fixtures.stack import Stack
from preflight._resolver import HostLookup
from preflight._tls import make_context
from preflight.checks.smtp import probe_smtp
from preflight.options import CheckOptions, Timeouts
from preflight.payload import parse_account
from preflight.report import CheckResult, Code, Status

CANARY = "CANARY-smtp-9d2k"
TOKEN_CANARY = "CANARY-token-5h1z"

pytestmark = pytest.mark.asyncio


def account(host: str, port: int, user: str, password: str, **extra: Any) -> Any:
    body = {
        "from_name": "Test",
        "from_email": "alice@preflight.test",
        "user_name": user,
        "password": password,
        "smtp_host": host,
        "smtp_port": port,
        "imap_host": host,
        "imap_port": 993,
        "warmup_enabled": False,
        **extra,
    }
    parsed = parse_account(body)
    assert parsed.account is not None, parsed.errors
    return parsed.account


async def probe(
    host: str,
    address: str,
    port: int,
    *,
    user: str = "alice@preflight.test",
    password: str = CANARY,
    ca_file: str | None = None,
    deadline: float = 10.0,
    **option: Any,
) -> CheckResult:
    """Run the SMTP probe for ``host`` reached at ``address:port``."""
    extra = option.pop("extra", {})
    options = CheckOptions(ca_file=ca_file, timeout=deadline, **option)
    loop = asyncio.get_running_loop()
    lookup: asyncio.Future[HostLookup] = loop.create_future()
    lookup.set_result(HostLookup(host, (address,)))
    result = await probe_smtp(
        account(host, port, user, password, **extra),
        lookup,
        options,
        make_context(options.ca_file, options.insecure),
        loop.time() + deadline,
    )
    shown = json.dumps(result.to_dict())
    assert CANARY not in shown
    assert TOKEN_CANARY not in shown
    assert base64.b64encode(CANARY.encode()).decode() not in shown
    return result


# --- Postfix (real submission server, Dovecot SASL) ------------------------------


def postfix(stack: Stack, key: str) -> tuple[str, int, str]:
    if "postfix" in stack.unavailable:
        pytest.skip(stack.unavailable["postfix"])
    endpoint = stack.smtp[key]
    return endpoint.host, endpoint.port, str(stack.ca_file)


@pytest.mark.parametrize(
    ("key", "security"), [("starttls", "starttls"), ("ssl", "ssl"), ("plain", "starttls")]
)
async def test_postfix_good_login_on_each_port(stack: Stack, key: str, security: str) -> None:
    """A good account logs in on 587 (STARTTLS), 465 (TLS) and 25 (STARTTLS offered)."""
    address, port, ca = postfix(stack, key)
    user, password = stack.credentials()
    result = await probe(stack.mail_host, address, port, user=user, password=password, ca_file=ca)
    assert (result.status, result.code) == (Status.PASS, Code.OK), result
    assert result.details["security"] == security
    assert result.details["tls_version"].startswith("TLSv1")
    assert result.details["auth_mechanism"] in ("PLAIN", "LOGIN")
    assert result.details["verified"] is True
    assert password not in json.dumps(result.to_dict())


async def test_postfix_wrong_password(stack: Stack) -> None:
    """A wrong password on 587 is auth_failed with the server's reply and a hint."""
    address, port, ca = postfix(stack, "starttls")
    result = await probe(stack.mail_host, address, port, ca_file=ca)
    assert (result.status, result.code) == (Status.FAIL, Code.AUTH_FAILED)
    assert result.details["reply"].startswith("535")
    assert result.hint


async def postfix_disconnect(stack: Stack, offset: int) -> tuple[str, str]:
    """Postfix's ``disconnect from ...`` line logged after byte ``offset`` of its log,
    and all it logged meanwhile (Postfix logs after the session, asynchronously)."""
    log = stack.workdir / "logs" / "postfix.log"
    for _ in range(250):
        with log.open("rb") as file:
            file.seek(offset)
            text = file.read().decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if "disconnect from" in line]
        if lines:
            return lines[-1], text
        await asyncio.sleep(0.02)
    raise AssertionError("Postfix logged no disconnect")


def postfix_log_size(stack: Stack) -> int:
    log = stack.workdir / "logs" / "postfix.log"
    if not log.exists():
        pytest.skip("no Postfix log on this target")
    return log.stat().st_size


@pytest.mark.parametrize("key", ["starttls", "ssl"])
async def test_postfix_wrong_password_ends_with_quit(stack: Stack, key: str) -> None:
    """After a refused login the session ends with QUIT (Postfix logs quit=1), not a
    lost connection, on STARTTLS and implicit TLS alike."""
    address, port, ca = postfix(stack, key)
    offset = postfix_log_size(stack)
    result = await probe(stack.mail_host, address, port, ca_file=ca)
    assert result.code is Code.AUTH_FAILED, result
    line, logged = await postfix_disconnect(stack, offset)
    assert "auth=0/1" in line, line
    assert "quit=1" in line, line
    assert "lost connection" not in logged, logged


async def test_postfix_good_login_ends_with_quit(stack: Stack) -> None:
    """A good login ends with QUIT too, though its answer is not waited for."""
    address, port, ca = postfix(stack, "ssl")
    user, password = stack.credentials()
    offset = postfix_log_size(stack)
    result = await probe(stack.mail_host, address, port, user=user, password=password, ca_file=ca)
    assert result.status is Status.PASS, result
    line, logged = await postfix_disconnect(stack, offset)
    assert "auth=1" in line, line
    assert "quit=1" in line, line
    assert "lost connection" not in logged, logged


async def test_postfix_untrusted_without_ca_file(stack: Stack) -> None:
    """Without --ca-file the test CA is unknown: tls_untrusted."""
    address, port, _ = postfix(stack, "ssl")
    result = await probe(stack.mail_host, address, port)
    assert result.code is Code.TLS_UNTRUSTED


async def test_postfix_starttls_untrusted(stack: Stack) -> None:
    """A bad certificate met during STARTTLS is classified too."""
    address, port, _ = postfix(stack, "starttls")
    result = await probe(stack.mail_host, address, port)
    assert result.code is Code.TLS_UNTRUSTED
    assert result.details["step"] == "starttls"


async def test_postfix_wrong_host_name(stack: Stack) -> None:
    """A host name the certificate does not carry: tls_hostname_mismatch."""
    address, port, ca = postfix(stack, "ssl")
    result = await probe("smtp.wrong-name.test", address, port, ca_file=ca)
    assert result.code is Code.TLS_HOSTNAME_MISMATCH


async def test_postfix_insecure_passes_with_warning(stack: Stack) -> None:
    """--insecure skips verification, and the report warns about it."""
    address, port, _ = postfix(stack, "ssl")
    user, password = stack.credentials()
    result = await probe(
        stack.mail_host, address, port, user=user, password=password, insecure=True
    )
    assert result.status is Status.WARN
    assert result.details["verified"] is False
    assert "not verified" in result.message


async def test_postfix_tls_to_starttls_port_is_mode_mismatch(stack: Stack) -> None:
    """Implicit TLS spoken to 587 is tls_mode_mismatch, at once."""
    address, port, ca = postfix(stack, "starttls")
    started = time.monotonic()
    result = await probe(stack.mail_host, address, port, ca_file=ca, smtp_security="ssl")
    assert result.code is Code.TLS_MODE_MISMATCH
    assert "587" in (result.hint or "")
    assert time.monotonic() - started < 2


async def test_postfix_starttls_to_tls_port_is_mode_mismatch(stack: Stack) -> None:
    """STARTTLS spoken to 465 (the classic mix-up) is found by the TLS sniff, fast."""
    address, port, ca = postfix(stack, "ssl")
    started = time.monotonic()
    result = await probe(
        stack.mail_host, address, port, ca_file=ca, smtp_security="starttls", deadline=20
    )
    assert result.code is Code.TLS_MODE_MISMATCH
    assert "465" in (result.hint or "") or "ssl" in (result.hint or "")
    assert time.monotonic() - started < 5


async def test_postfix_plaintext_auth_refused(stack: Stack) -> None:
    """Forced plain text on 25: the password is not sent (auth_plaintext_refused)."""
    address, port, ca = postfix(stack, "plain")
    result = await probe(stack.mail_host, address, port, ca_file=ca, smtp_security="plain")
    assert result.code is Code.AUTH_PLAINTEXT_REFUSED


async def test_postfix_tls_auth_only_hint_has_no_flag(stack: Stack) -> None:
    """Postfix with smtpd_tls_auth_only offers no AUTH before TLS: the flag cannot help."""
    address, port, ca = postfix(stack, "plain")
    if stack.smtp["plain"].plaintext_auth:
        pytest.skip("this target takes AUTH in clear text")
    result = await probe(stack.mail_host, address, port, ca_file=ca, smtp_security="plain")
    assert result.code is Code.AUTH_PLAINTEXT_REFUSED, result
    assert result.details["auth_offered"] == []
    assert "--allow-plaintext-auth" not in (result.hint or "")


async def test_postfix_auth_after_starttls(stack: Stack) -> None:
    """Postfix hides AUTH until STARTTLS: forced plain (allowed) says so, not 'port 25'."""
    address, port, ca = postfix(stack, "plain")
    if stack.smtp["plain"].plaintext_auth:
        pytest.skip("this target takes AUTH in clear text")
    result = await probe(
        stack.mail_host,
        address,
        port,
        ca_file=ca,
        smtp_security="plain",
        allow_plaintext_auth=True,
    )
    assert result.code is Code.AUTH_UNSUPPORTED, result
    hint = result.hint or ""
    assert "after STARTTLS" in hint
    assert "port 25" not in hint


async def test_closed_port_is_refused(stack: Stack) -> None:
    """Nothing listening: connect_refused with a hint about the port."""
    result = await probe(stack.mail_host, "127.0.0.1", 9, smtp_security="ssl")
    assert result.code is Code.CONNECT_REFUSED
    assert "smtp_port" in (result.hint or "")


# --- aiosmtpd servers with bad certificates ---------------------------------------


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("ssl_expired", Code.TLS_EXPIRED),
        ("ssl_not_yet_valid", Code.TLS_EXPIRED),
        ("ssl_wrong_host", Code.TLS_HOSTNAME_MISMATCH),
        ("ssl_untrusted", Code.TLS_UNTRUSTED),
    ],
)
async def test_certificate_failures(stack: Stack, key: str, code: Code) -> None:
    """Expired, not-yet-valid, wrong-name and unknown-CA certificates get their codes."""
    endpoint = stack.aiosmtpd[key]
    result = await probe(stack.mail_host, endpoint.host, endpoint.port, ca_file=str(stack.ca_file))
    assert result.code is code
    assert result.hint


async def test_aiosmtpd_good_login(stack: Stack) -> None:
    """The aiosmtpd submission server (non-root developers' SMTP) accepts a good login."""
    endpoint = stack.aiosmtpd["starttls"]
    user, password = stack.credentials()
    result = await probe(
        stack.mail_host,
        endpoint.host,
        endpoint.port,
        user=user,
        password=password,
        ca_file=str(stack.ca_file),
        smtp_security="starttls",
    )
    assert result.status is Status.PASS, result
    assert result.details["security"] == "starttls"


# --- scripted stub servers: provider replies and misbehaviour ---------------------

NAMES = [
    "smtp.gmail.com",
    "smtp.office365.com",
    "smtp.mail.yahoo.com",
    "smtp.zoho.eu",
    "smtp.stub.test",
]


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
    path = tmp_path_factory.mktemp("stubca") / "ca.pem"
    stub_ca.cert_pem.write_to_path(str(path))
    return str(path)


@dataclass
class Stub:
    """A scripted SMTP server on implicit TLS (or clear text) that records commands."""

    auth_reply: list[str] = field(default_factory=lambda: ["235 2.7.0 Accepted"])
    greet: bool = True
    auth: str = "PLAIN LOGIN XOAUTH2"
    xoauth2_challenge: str | None = None
    close_after_greeting: bool = False
    slow_greeting: bool = False
    commands: list[str] = field(default_factory=list)
    sessions: set[asyncio.Task[Any]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.sessions.add(task)
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.greet:
            await reader.read()  # wait for the client to give up
            return
        if self.slow_greeting:
            for byte in b"220 slow.stub.test ESMTP\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1)
        else:
            writer.write(b"220 stub.test ESMTP\r\n")
        if self.close_after_greeting:
            return
        while line := await reader.readline():
            command = line.decode().strip()
            self.commands.append(command)
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                lines = ["stub.test", "8BITMIME"] + ([f"AUTH {self.auth}"] if self.auth else [])
                reply = "".join(f"250-{x}\r\n" for x in lines[:-1]) + f"250 {lines[-1]}\r\n"
                writer.write(reply.encode())
            elif (
                verb == "AUTH"
                and command.upper().startswith("AUTH XOAUTH2")
                and (self.xoauth2_challenge is not None)
            ):
                writer.write(f"334 {self.xoauth2_challenge}\r\n".encode())
                await writer.drain()
                self.commands.append((await reader.readline()).decode().strip())
                writer.write(("\r\n".join(self.auth_reply) + "\r\n").encode())
            elif verb == "AUTH" and command.upper().startswith("AUTH LOGIN"):
                # With an initial response (RFC 4954) only the password is asked for.
                prompts = ["VXNlcm5hbWU6", "UGFzc3dvcmQ6"][len(command.split()) - 2 :]
                for prompt in prompts:
                    writer.write(f"334 {prompt}\r\n".encode())
                    await writer.drain()
                    await reader.readline()
                writer.write(("\r\n".join(self.auth_reply) + "\r\n").encode())
            elif verb == "AUTH":
                writer.write(("\r\n".join(self.auth_reply) + "\r\n").encode())
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 not here\r\n")
            await writer.drain()


StartStub = Callable[..., Awaitable[tuple[Stub, int]]]


@pytest_asyncio.fixture
async def start_stub(stub_tls: ssl.SSLContext) -> AsyncIterator[StartStub]:
    servers: list[asyncio.Server] = []
    stubs: list[Stub] = []

    async def start(tls: bool = True, **kwargs: Any) -> tuple[Stub, int]:
        stub = Stub(**kwargs)
        stubs.append(stub)
        server = await asyncio.start_server(
            stub.handle, "127.0.0.1", 0, ssl=stub_tls if tls else None
        )
        servers.append(server)
        return stub, server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
    # Sessions end when the probe hangs up; let them finish rather than cancel them.
    sessions = {task for stub in stubs for task in stub.sessions}
    if sessions:
        await asyncio.wait(sessions, timeout=5)
    for server in servers:
        await server.wait_closed()


def auth_commands(stub: Stub) -> list[str]:
    return [c for c in stub.commands if c.upper().startswith("AUTH")]


PROVIDER_REPLIES = [
    (
        "smtp.gmail.com",
        [
            "534-5.7.9 Application-specific password required. Learn more at",
            "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor x1-20020a.1 - gsmtp",
        ],
        Code.AUTH_APP_PASSWORD_REQUIRED,
        "app password",
    ),
    (
        "smtp.gmail.com",
        [
            "534-5.7.14 <https://accounts.google.com/signin/continue?sarp=1&scc=1&plt=AKgnsbt>",
            "534-5.7.14 Please log in via your web browser and then try again.",
            "534 5.7.14  Learn more at https://support.google.com/mail/answer/78754 - gsmtp",
        ],
        Code.AUTH_WEB_LOGIN_REQUIRED,
        "sign in on the web",
    ),
    (
        "smtp.gmail.com",
        [
            "535-5.7.8 Username and Password not accepted. For more information, go to",
            "535 5.7.8  https://support.google.com/mail/?p=BadCredentials a1-v6sm - gsmtp",
        ],
        Code.AUTH_FAILED,
        "spaces",
    ),
    (
        "smtp.gmail.com",
        ["454 4.7.0 Too many login attempts, please try again later. x2sm - gsmtp"],
        Code.AUTH_THROTTLED,
        "wait",
    ),
    (
        "smtp.office365.com",
        [
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
            "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
            "[AM0PR04CA0011.eurprd04.prod.outlook.com]"
        ],
        Code.AUTH_BASIC_DISABLED,
        "admin",
    ),
    (
        "smtp.office365.com",
        [
            "535 5.7.139 Authentication unsuccessful, the user credentials were incorrect. "
            "[LO4P123CA0042.GBRP123.PROD.OUTLOOK.COM]"
        ],
        Code.AUTH_FAILED,
        "re-type",
    ),
    (
        "smtp.office365.com",
        [
            "535 5.7.139 Authentication unsuccessful, user is locked by your organization's "
            "security defaults policy. Contact your administrator. [BN9PR03CA0123]"
        ],
        Code.AUTH_BASIC_DISABLED,
        "OAuth",
    ),
    (
        "smtp.office365.com",
        ["550 5.7.30 Basic authentication is not supported for Client Submission."],
        Code.AUTH_BASIC_DISABLED,
        "OAuth",
    ),
    (
        "smtp.office365.com",
        ["535 5.7.3 Authentication unsuccessful [SN4PR0601CA0012.namprd06.prod.outlook.com]"],
        Code.AUTH_FAILED,
        "all three",
    ),
    (
        "smtp.mail.yahoo.com",
        ["535 5.7.0 (#AUTH005) Too many bad auth attempts."],
        Code.AUTH_APP_PASSWORD_REQUIRED,
        "app password",
    ),
    (
        "smtp.zoho.eu",
        ["535 Authentication Failed"],
        Code.AUTH_FAILED,
        "regional",
    ),
    (
        "smtp.stub.test",
        ["435 Unable to authenticate at present"],  # Exim, its password backend down
        Code.SERVER_UNAVAILABLE,
        "retry later",
    ),
    (
        "smtp.stub.test",
        ["538 5.7.11 Encryption required for requested authentication mechanism"],
        Code.AUTH_PLAINTEXT_REFUSED,
        "TLS",
    ),
]


@pytest.mark.parametrize(("host", "reply", "code", "hint_word"), PROVIDER_REPLIES)
async def test_provider_reply_families(
    start_stub: StartStub,
    stub_ca_file: str,
    host: str,
    reply: list[str],
    code: Code,
    hint_word: str,
) -> None:
    """Each provider's refusal is classified on its meaning, with a provider-specific hint."""
    stub, port = await start_stub(auth_reply=reply)
    result = await probe(host, "127.0.0.1", port, ca_file=stub_ca_file, smtp_security="ssl")
    assert result.code is code, result
    assert hint_word.lower() in (result.hint or "").lower()
    assert reply[-1].split(" ", 1)[1][:20] in result.details["reply"]
    assert len(auth_commands(stub)) == 1  # one attempt, never several


async def test_refused_login_ends_with_quit(start_stub: StartStub, stub_ca_file: str) -> None:
    """After a refused login the probe says QUIT (over TLS, then closes) without
    waiting for the 221: the stub reads it after the report."""
    stub, port = await start_stub(auth_reply=["535 5.7.8 Authentication credentials invalid"])
    result = await probe("smtp.stub.test", "127.0.0.1", port, ca_file=stub_ca_file)
    assert result.code is Code.AUTH_FAILED, result
    await asyncio.wait(stub.sessions, timeout=5)
    assert stub.commands[-1] == "QUIT", stub.commands
    assert len(auth_commands(stub)) == 1


async def test_no_auth_offered_ends_with_quit(start_stub: StartStub, stub_ca_file: str) -> None:
    """A stop before any login (no AUTH offered) ends with QUIT too."""
    stub, port = await start_stub(auth="")
    result = await probe("smtp.stub.test", "127.0.0.1", port, ca_file=stub_ca_file)
    assert result.code is Code.AUTH_UNSUPPORTED, result
    await asyncio.wait(stub.sessions, timeout=5)
    assert [c.split()[0] for c in stub.commands] == ["EHLO", "QUIT"]


async def test_login_mechanism_when_plain_missing(start_stub: StartStub, stub_ca_file: str) -> None:
    """With only LOGIN offered, LOGIN is used, once."""
    stub, port = await start_stub(auth="LOGIN")
    result = await probe("smtp.stub.test", "127.0.0.1", port, ca_file=stub_ca_file)
    assert result.status is Status.PASS
    assert result.details["auth_mechanism"] == "LOGIN"
    assert [c.split()[:2] for c in auth_commands(stub)] == [["AUTH", "LOGIN"]]


async def test_no_auth_offered(start_stub: StartStub, stub_ca_file: str) -> None:
    """A server that offers no AUTH: auth_unsupported, nothing sent."""
    stub, port = await start_stub(auth="")
    result = await probe("smtp.stub.test", "127.0.0.1", port, ca_file=stub_ca_file)
    assert result.code is Code.AUTH_UNSUPPORTED
    assert auth_commands(stub) == []


async def test_exim_435_is_not_throttling(start_stub: StartStub, stub_ca_file: str) -> None:
    """Exim answers AUTH with 435 Unable to authenticate at present (backend down)."""
    stub, port = await start_stub(auth_reply=["435 Unable to authenticate at present"])
    result = await probe("smtp.stub.test", "127.0.0.1", port, ca_file=stub_ca_file)
    assert result.code is Code.SERVER_UNAVAILABLE, result
    assert result.details["reply"] == "435 Unable to authenticate at present"
    hint = result.hint or ""
    assert "retry later" in hint
    assert "throttl" not in hint
    assert "re-type" not in hint
    assert len(auth_commands(stub)) == 1


async def test_only_cram_md5_offered(start_stub: StartStub, stub_ca_file: str) -> None:
    """A server offering only CRAM-MD5: auth_unsupported naming it, nothing sent."""
    stub, port = await start_stub(auth="CRAM-MD5")
    result = await probe("smtp.stub.test", "127.0.0.1", port, ca_file=stub_ca_file)
    assert result.code is Code.AUTH_UNSUPPORTED, result
    hint = result.hint or ""
    assert "CRAM-MD5" in hint
    assert "port 25" not in hint
    assert auth_commands(stub) == []


async def test_plaintext_never_sends_auth(start_stub: StartStub) -> None:
    """On a clear-text server without STARTTLS (port 25 mode) no AUTH reaches the server."""
    stub, port = await start_stub(tls=False)
    result = await probe("smtp.stub.test", "127.0.0.1", port, smtp_security="plain")
    assert result.code is Code.AUTH_PLAINTEXT_REFUSED
    assert auth_commands(stub) == []
    assert [c.split()[0] for c in stub.commands] == ["EHLO"]


async def test_plaintext_allowed_warns(start_stub: StartStub) -> None:
    """--allow-plaintext-auth sends the login in clear text, and the result warns."""
    stub, port = await start_stub(tls=False)
    result = await probe(
        "smtp.stub.test", "127.0.0.1", port, smtp_security="plain", allow_plaintext_auth=True
    )
    assert result.status is Status.WARN
    assert result.details["security"] == "plain"
    assert "clear text" in result.message
    assert len(auth_commands(stub)) == 1


async def test_starttls_required_but_missing(start_stub: StartStub) -> None:
    """587 mode on a server without STARTTLS: starttls_unsupported, no downgrade."""
    stub, port = await start_stub(tls=False)
    result = await probe("smtp.stub.test", "127.0.0.1", port, smtp_security="starttls")
    assert result.code is Code.STARTTLS_UNSUPPORTED
    assert auth_commands(stub) == []


async def test_xoauth2_success(start_stub: StartStub, stub_ca_file: str) -> None:
    """An account with an OAuth token logs in with XOAUTH2."""
    stub, port = await start_stub()
    result = await probe(
        "smtp.gmail.com",
        "127.0.0.1",
        port,
        ca_file=stub_ca_file,
        password="",
        extra={"token": {"access_token": TOKEN_CANARY}, "type": "GMAIL"},
    )
    assert result.status is Status.PASS
    assert result.details["auth_mechanism"] == "XOAUTH2"
    assert [c.split()[:2] for c in auth_commands(stub)] == [["AUTH", "XOAUTH2"]]


async def test_xoauth2_failure_does_not_hang(start_stub: StartStub, stub_ca_file: str) -> None:
    """A refused token: the 334 challenge is answered, the error decoded, no hang."""
    challenge = base64.b64encode(
        b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
    ).decode()
    stub, port = await start_stub(
        xoauth2_challenge=challenge,
        auth_reply=["535-5.7.8 Username and Password not accepted.", "535 5.7.8 - gsmtp"],
    )
    started = time.monotonic()
    result = await probe(
        "smtp.gmail.com",
        "127.0.0.1",
        port,
        ca_file=stub_ca_file,
        password="",
        extra={"token": {"access_token": TOKEN_CANARY}, "type": "GMAIL"},
    )
    assert time.monotonic() - started < 3
    assert result.code is Code.AUTH_FAILED
    assert "mail.google.com" in result.details["oauth_error"]
    assert "token" in (result.hint or "").lower()
    assert stub.commands[-2:] == [stub.commands[-2], ""]  # the empty answer to the challenge


async def test_silent_server_within_deadline(start_stub: StartStub) -> None:
    """A server that never greets: greeting_timeout, and never past the deadline."""
    _, port = await start_stub(tls=False, greet=False)
    started = time.monotonic()
    result = await probe("smtp.stub.test", "127.0.0.1", port, smtp_security="starttls", deadline=3)
    elapsed = time.monotonic() - started
    assert result.code is Code.GREETING_TIMEOUT
    assert 2.5 < elapsed < 4


async def test_silent_tls_server_within_deadline(start_stub: StartStub) -> None:
    """A port that never answers the TLS handshake: greeting_timeout within the deadline."""
    _, port = await start_stub(tls=False, greet=False)
    started = time.monotonic()
    result = await probe("smtp.stub.test", "127.0.0.1", port, smtp_security="ssl", deadline=3)
    assert result.code is Code.GREETING_TIMEOUT
    assert time.monotonic() - started < 4


async def test_byte_a_second_server_cannot_hold_the_check(start_stub: StartStub) -> None:
    """A server greeting one byte a second is cut off at the deadline (plus < 1 s)."""
    _, port = await start_stub(tls=False, slow_greeting=True)
    started = time.monotonic()
    result = await probe(
        "smtp.stub.test",
        "127.0.0.1",
        port,
        smtp_security="starttls",
        deadline=3,
        timeouts=Timeouts(greeting=60, command=60, connect=60, sniff_after=60),
    )
    assert result.status is Status.FAIL
    assert result.code in (Code.GREETING_TIMEOUT, Code.TIMEOUT)
    assert time.monotonic() - started < 4


async def test_server_closing_after_greeting(start_stub: StartStub, stub_ca_file: str) -> None:
    """A server that hangs up mid-session: protocol_error naming the step."""
    _, port = await start_stub(close_after_greeting=True)
    result = await probe("smtp.stub.test", "127.0.0.1", port, ca_file=stub_ca_file)
    assert result.code is Code.PROTOCOL_ERROR
    assert result.details["step"] == "ehlo"


async def postfix_disconnects(stack: Stack, offset: int, count: int) -> list[str]:
    """The first ``count`` ``disconnect from ...`` lines Postfix logs after ``offset``."""
    log = stack.workdir / "logs" / "postfix.log"
    lines: list[str] = []
    for _ in range(250):
        with log.open("rb") as file:
            file.seek(offset)
            text = file.read().decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if "disconnect from" in line]
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.02)
    raise AssertionError(f"Postfix logged {len(lines)} disconnects, not {count}: {lines}")


async def test_the_certificate_look_ends_with_quit(stack: Stack) -> None:
    """A name mismatch on 587 fetches the presented certificate on a second, short
    connection (STARTTLS, handshake): that look ends with QUIT too (quit=1)."""
    address, port, ca = postfix(stack, "starttls")
    offset = postfix_log_size(stack)
    result = await probe("wrong-name.preflight.test", address, port, ca_file=ca)
    assert result.code is Code.TLS_HOSTNAME_MISMATCH, result
    assert result.details["certificate"]["san"]
    lines = await postfix_disconnects(stack, offset, 2)
    looks = [line for line in lines if "starttls=1" in line and "auth=" not in line]
    assert any("quit=1" in line for line in looks), lines


async def test_the_starttls_offer_look_ends_with_quit(stack: Stack) -> None:
    """Implicit TLS spoken to 587 (a mode mismatch): the short clear-text look that
    sees whether STARTTLS is offered ends with QUIT (ehlo=1 quit=1)."""
    address, port, ca = postfix(stack, "starttls")
    offset = postfix_log_size(stack)
    result = await probe(stack.mail_host, address, port, ca_file=ca, smtp_security="ssl")
    assert result.code is Code.TLS_MODE_MISMATCH, result
    assert result.details["starttls_offered"] is True
    lines = await postfix_disconnects(stack, offset, 2)
    assert any("ehlo=1 quit=1" in line for line in lines), lines
