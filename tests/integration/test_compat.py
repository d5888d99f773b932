"""The compatibility matrix (issue 11): the core cases against real foreign servers.

Exim, GNU imap4d, Cyrus IMAP and Courier-IMAP run from their Debian packages,
unpacked into ``.cache/foreign`` (``fixtures/foreign``), each on loopback addresses
of its own. For every server and case, preflight must give the code that is true
there, and a hint that is true for that server (no "re-type the password" for a
right one, no STARTTLS advice where there is none, no ``--allow-plaintext-auth``
where it cannot help). ``bench/compat`` prints the same matrix as a table.

Then the replies issue 11 quotes, from the real servers: Exim's ``435 Unable to
authenticate at present``, imap4d's ``STARTTLS XTLSREQUIRED`` and ``NO LOGIN Command
disabled``, Courier's ``* BYE`` during LOGIN, Cyrus's ``NO Mailbox does not exist``.
Where preflight is wrong today, the test is a strict xfail that names the fault.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from fixtures.foreign.base import ForeignServer
from fixtures.foreign.matrix import SERVERS, case_named, pairs, problems, run_case
from fixtures.process import FixtureError
from fixtures.pytest_support import unavailable
from preflight.report import Code

pytestmark = [pytest.mark.needs_local_servers, pytest.mark.asyncio]


class Foreign:
    """The foreign servers, each started on first use and stopped at the session's end."""

    def __init__(self, cleanup: contextlib.ExitStack, workdir_root: pytest.TempPathFactory) -> None:
        self._cleanup = cleanup
        self._factory = workdir_root
        self._started: dict[str, ForeignServer] = {}
        self._failed: dict[str, str] = {}

    def get(self, name: str) -> ForeignServer:
        if name in self._failed:
            unavailable(self._failed[name])
        if name not in self._started:
            try:
                self._started[name] = SERVERS[name].start(
                    self._cleanup, self._factory.mktemp(f"foreign-{name}")
                )
            except FixtureError as exc:
                self._failed[name] = f"{name} cannot be started: {exc}"
                unavailable(self._failed[name])
        return self._started[name]


@pytest.fixture(scope="session")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Foreign]:
    with contextlib.ExitStack() as cleanup:
        yield Foreign(cleanup, tmp_path_factory)
    # Leaving the ExitStack stopped every server; a survivor raises (teardown error).


#: Where preflight is wrong today, found by these servers (reported in issue 11; the
#: fix belongs in preflight/checks/imap.py). Strict: a fix turns them into failures
#: until the mark is removed.
#: (server, case) pairs where preflight is wrong today: strict xfails, with the fault.
KNOWN_WRONG: dict[tuple[str, str], str] = {}


def _matrix_params() -> list[object]:
    return [
        pytest.param(
            *pair,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[pair])]
            if pair in KNOWN_WRONG
            else [],
        )
        for pair in pairs()
    ]


@pytest.mark.parametrize(("server_name", "case_name"), _matrix_params())
async def test_matrix(foreign: Foreign, server_name: str, case_name: str) -> None:
    """One core case against one real server: the true code, and a hint true there."""
    server = foreign.get(server_name)
    case = case_named(case_name)
    result = await run_case(server, case)
    assert problems(server, case, result) == [], result


# --- Exim: the replies quoted in issue 11 -------------------------------------------


async def test_exim_backend_down_is_server_unavailable(foreign: Foreign) -> None:
    """Exim whose password lookup fails answers 435: the server's problem, not the account's."""
    server = foreign.get("exim")
    result = await run_case(server, case_named("backend_down"))
    assert result.code is Code.SERVER_UNAVAILABLE, result
    assert result.details["reply"] == "435 Unable to authenticate at present"
    assert "nothing says the account is wrong" in (result.hint or "")


async def test_exim_offers_auth_only_after_starttls(foreign: Foreign) -> None:
    """The TLS-required address hides AUTH before STARTTLS; the probe sees none offered."""
    server = foreign.get("exim")
    result = await run_case(server, case_named("plain_login_refused"))
    assert result.code is Code.AUTH_PLAINTEXT_REFUSED, result
    assert result.details["auth_offered"] == []


async def test_exim_broken_tls_is_no_mode_mismatch(foreign: Foreign) -> None:
    """Exim without its certificate offers STARTTLS and answers it 454 TLS currently
    unavailable: a TLS failure on the server, not a mix-up of ports."""
    server = foreign.get("exim")
    result = await run_case(server, case_named("starttls_broken"))
    assert result.code is Code.STARTTLS_UNSUPPORTED, result
    assert result.details["reply"] == "454 TLS currently unavailable"
    assert "temporary reason" in (result.hint or "")


# --- GNU imap4d: XTLSREQUIRED and "Command disabled" ------------------------------


def _imap_exchange(host: str, port: int, commands: list[bytes]) -> list[bytes]:
    """Send raw IMAP commands in clear text; the lines the server answered."""
    lines: list[bytes] = []
    with socket.create_connection((host, port), timeout=5) as sock, sock.makefile("rwb") as io:
        lines.append(io.readline())
        for command in commands:
            io.write(command + b"\r\n")
            io.flush()
            while True:
                line = io.readline()
                lines.append(line)
                if not line or not line.startswith(b"* "):
                    break
    return lines


async def test_imap4d_tls_required_is_as_issue_11_quotes(foreign: Foreign) -> None:
    """imap4d with TLS required: STARTTLS XTLSREQUIRED, no LOGINDISABLED; a clear-text
    LOGIN is answered NO LOGIN Command disabled. preflight sends nothing and says so."""
    server = foreign.get("imap4d")
    endpoint = server.endpoints["tls_required"]
    user, password = server.credentials()
    lines = _imap_exchange(
        endpoint.host,
        endpoint.port,
        [b"a CAPABILITY", b'b LOGIN "' + user.encode() + b'" "' + password.encode() + b'"'],
    )
    capabilities = lines[1].split()
    assert capabilities[:2] == [b"*", b"CAPABILITY"], lines
    assert b"STARTTLS" in capabilities
    assert b"XTLSREQUIRED" in capabilities
    assert b"LOGINDISABLED" not in capabilities
    assert lines[-1] == b"b NO LOGIN Command disabled\r\n"

    for allowed in (False, True):
        case = case_named("plain_login_refused_flag" if allowed else "plain_login_refused")
        result = await run_case(server, case)
        assert result.code is Code.AUTH_PLAINTEXT_REFUSED, result
        assert "XTLSREQUIRED" in result.message
        assert "--allow-plaintext-auth" not in (result.hint or "")


async def test_imap4d_capabilities_are_only_the_capabilities(foreign: Foreign) -> None:
    """imap4d ends CAPABILITY with 'a OK CAPABILITY Completed': 'Completed' is no capability."""
    server = foreign.get("imap4d")
    result = await run_case(server, case_named("plain_login_offered"))
    assert "Completed" not in result.details["capabilities"], result.details["capabilities"]


# --- Cyrus: a user who can log in but has no mailbox -------------------------------


async def test_cyrus_user_without_mailbox(foreign: Foreign) -> None:
    """Cyrus answers EXAMINE INBOX with NO Mailbox does not exist: the login is fine,
    the mailbox is missing, and the hint says so (not "re-type the password")."""
    server = foreign.get("cyrus")
    result = await run_case(server, case_named("no_mailbox"))
    assert result.code is Code.PROTOCOL_ERROR, result
    assert result.details["reply"] == "NO Mailbox does not exist"
    assert "the mailbox does not exist" in result.message
    assert "re-type" not in (result.hint or "")


# --- Courier-IMAP: * BYE during LOGIN ---------------------------------------------


def _tls_login_reply(server: ForeignServer, endpoint: str, user: str) -> list[bytes]:
    """LOGIN over implicit TLS, raw: the lines Courier answers until it closes."""
    import ssl

    ep = server.endpoints[endpoint]
    context = ssl.create_default_context(cafile=str(server.ca_file))
    password = server.users[user]
    lines = []
    with (
        socket.create_connection(ep.address, timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=ep.host) as sock,
        sock.makefile("rwb") as io,
    ):
        io.readline()
        io.write(f'a LOGIN "{user}" "{password}"\r\n'.encode())
        io.flush()
        while line := io.readline():
            lines.append(line)
    return lines


async def test_courier_backend_down_says_bye_temporary_problem(foreign: Foreign) -> None:
    """Courier whose authdaemond is unreachable answers LOGIN with * BYE Temporary problem."""
    server = foreign.get("courier")
    user, _ = server.credentials()
    assert _tls_login_reply(server, "backend_down", user) == [
        b"* BYE Temporary problem, please try again later\r\n"
    ]
    result = await run_case(server, case_named("backend_down"))
    assert result.code is Code.SERVER_UNAVAILABLE, result
    assert result.details["reply"] == "BYE Temporary problem, please try again later"
    assert "re-type" not in (result.hint or "")


async def test_courier_user_without_maildir(foreign: Foreign) -> None:
    """A right password for a user whose Maildir is missing: Courier answers LOGIN with
    * BYE [ALERT] Fatal error alone (no tagged OK). The mailbox is missing; the password
    is not wrong, so the hint must not say to re-type it."""
    server = foreign.get("courier")
    assert server.no_mailbox_user is not None
    reply = b"* BYE [ALERT] Fatal error: No such file or directory: No such file or directory\r\n"
    assert _tls_login_reply(server, "ssl", server.no_mailbox_user) == [reply]
    result = await run_case(server, case_named("no_mailbox"))
    assert result.code is Code.PROTOCOL_ERROR, result
    assert result.details["reply"] == reply.decode().removeprefix("* ").strip()
    hint = result.hint or ""
    assert "mailbox does not exist" in hint
    assert "re-type" not in hint


async def test_courier_user_without_maildir_message(foreign: Foreign) -> None:
    """The message says the mailbox is missing, not that the login was refused."""
    server = foreign.get("courier")
    result = await run_case(server, case_named("no_mailbox"))
    assert "the mailbox does not exist" in result.message
    assert "refused the login" not in result.message


async def test_courier_broken_starttls_reply(foreign: Foreign) -> None:
    """What Courier really says when its STARTTLS cannot start couriertls (raw)."""
    server = foreign.get("courier")
    ep = server.endpoints["tls_broken"]
    with socket.create_connection(ep.address, timeout=5) as sock, sock.makefile("rwb") as io:
        greeting = io.readline()
        io.write(b"a STARTTLS\r\n")
        io.flush()
        lines = [io.readline(), io.readline()]
    assert b"STARTTLS" in greeting
    assert lines == [
        b"a OK Begin SSL/TLS negotiation now.\r\n",
        b"a NO STARTTLS failed: 500 Error starting couriertls.\r\n",
    ]
