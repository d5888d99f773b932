"""The roundtrip check against real servers: Postfix delivering to Dovecot over LMTP,
aiosmtpd refusing send-as at DATA, and a scripted IMAP server (Gmail-like folders)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from fixtures.pytest_support import endpoint, tagged, unavailable
from fixtures.stack import Endpoint, Stack
from preflight._resolver import HostLookup
from preflight._tls import make_context
from preflight.checks.roundtrip import probe_roundtrip
from preflight.options import CheckOptions
from preflight.payload import Account, parse_account
from preflight.report import CheckResult, Code, Status

pytestmark = [pytest.mark.asyncio, pytest.mark.needs_local_servers]


def needs_delivery(stack: Stack) -> tuple[Endpoint, Endpoint]:
    """Postfix on 465 and Dovecot on 993 of a stack that delivers mail, or skip/fail."""
    smtp, imap = endpoint(stack, "smtp", "ssl"), endpoint(stack, "imap", "ssl")
    if stack.junk_user is None:
        unavailable(f"this stack delivers no mail: {dict(stack.unavailable)}")
    return smtp, imap


def account(stack: Stack, user: str, smtp: Endpoint, imap: Endpoint, **extra: Any) -> Account:
    body = {
        "from_name": "Round Trip",
        "from_email": user,
        "user_name": user,
        "password": stack.users[user],
        "smtp_host": stack.mail_host,
        "smtp_port": smtp.port,
        "imap_host": stack.mail_host,
        "imap_port": imap.port,
        "warmup_enabled": False,
        **extra,
    }
    parsed = parse_account(body)
    assert parsed.account is not None, parsed.errors
    return parsed.account


def resolved(host: str, address: str) -> asyncio.Future[HostLookup]:
    future: asyncio.Future[HostLookup] = asyncio.get_running_loop().create_future()
    future.set_result(HostLookup(host, (address,)))
    return future


async def roundtrip(
    stack: Stack,
    acct: Account,
    smtp_address: str,
    imap_address: str,
    deadline: float = 10.0,
    **option: Any,
) -> CheckResult:
    options = CheckOptions(ca_file=str(stack.ca_file), timeout=deadline, **option)
    loop = asyncio.get_running_loop()
    result = await probe_roundtrip(
        acct,
        resolved(acct.smtp_host, smtp_address),
        resolved(acct.imap_host, imap_address),
        options,
        make_context(options.ca_file, options.insecure),
        loop.time() + deadline,
    )
    shown = json.dumps(result.to_dict())
    for password in stack.users.values():
        assert password not in shown
    return result


# --- what is in the mailboxes, seen with the standard library -------------------------


@pytest.fixture(autouse=True)
def clean_mailboxes(stack: Stack) -> Iterator[None]:
    """Every test starts and ends with no test message in any mailbox (other tests
    count the messages in INBOX)."""
    users = list(stack.users) if stack.junk_user is not None and "ssl" in stack.imap else []
    for user in users:
        tagged(stack, user, purge=True)
    yield
    for user in users:
        tagged(stack, user, purge=True)


# --- Postfix delivering to Dovecot --------------------------------------------------


async def test_message_arrives_in_inbox_and_is_deleted(stack: Stack) -> None:
    """A good account: pass, landed in INBOX with a delivery time; nothing is left behind."""
    smtp, imap = needs_delivery(stack)
    user = next(u for u in stack.users if u != stack.junk_user)
    result = await roundtrip(
        stack, account(stack, user, smtp, imap), smtp.host, imap.host, deadline=15
    )
    assert (result.status, result.code) == (Status.PASS, Code.OK), result
    details = result.details
    assert details["folder"] == "INBOX"
    assert 0 < details["delivery_ms"] < 15_000
    assert details["deleted"] is True
    assert details["junk_folder"] == "Junk"
    assert re.fullmatch(r"<[^@>]+@preflight\.test>", details["message_id"])
    assert details["smtp_reply"].startswith("250 ")
    assert result.message.startswith(f"sent as {user}; arrived in INBOX after ")
    assert tagged(stack, user) == {}


async def test_message_filed_as_spam_warns(stack: Stack) -> None:
    """Mail that lands in the \\Junk folder: warn roundtrip_junk, folder Junk, deleted."""
    smtp, imap = needs_delivery(stack)
    assert stack.junk_user is not None
    acct = account(stack, stack.junk_user, smtp, imap)
    result = await roundtrip(stack, acct, smtp.host, imap.host, deadline=15)
    assert (result.status, result.code) == (Status.WARN, Code.ROUNDTRIP_JUNK), result
    assert (result.details["folder"], result.details["deleted"]) == ("Junk", True)
    assert result.hint is not None
    assert "SPF" in result.hint
    assert tagged(stack, stack.junk_user) == {}


async def test_credentials_of_different_mailboxes_are_not_delivered(stack: Stack) -> None:
    """SMTP logs in as one user, IMAP as another: roundtrip_not_delivered by the deadline."""
    smtp, imap = needs_delivery(stack)
    sender = next(u for u in stack.users if u != stack.junk_user)
    assert stack.junk_user is not None
    acct = account(
        stack,
        sender,
        smtp,
        imap,
        imap_user_name=stack.junk_user,
        imap_password=stack.users[stack.junk_user],
    )
    started = time.monotonic()
    result = await roundtrip(stack, acct, smtp.host, imap.host, deadline=3)
    elapsed = time.monotonic() - started
    assert (result.status, result.code) == (Status.FAIL, Code.ROUNDTRIP_NOT_DELIVERED), result
    assert elapsed < 3 + 1
    assert result.details["folder"] is None
    assert result.details["deleted"] is False
    assert result.hint is not None
    assert "different mailboxes" in result.hint
    # The message did arrive: in the SMTP user's own mailbox (the fixture deletes it).
    assert tagged(stack, sender) == {"INBOX": 1}


async def test_silent_smtp_server_ends_by_the_deadline(stack: Stack) -> None:
    """An SMTP server that never greets: the check ends within its deadline plus 1 s."""
    _, imap = needs_delivery(stack)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        user = next(iter(stack.users))
        acct = account(stack, user, endpoint(stack, "smtp", "ssl"), imap, smtp_port=port)
        started = time.monotonic()
        result = await roundtrip(
            stack, acct, "127.0.0.1", imap.host, deadline=2, smtp_security="ssl"
        )
        elapsed = time.monotonic() - started
    assert result.status is Status.FAIL, result
    assert result.code in (Code.GREETING_TIMEOUT, Code.TIMEOUT)
    assert result.details["session"] == "smtp"
    assert elapsed < 2 + 1


# --- a server that refuses send-as at DATA ----------------------------------------------


async def test_send_as_denied_at_data_is_refused(stack: Stack) -> None:
    """Microsoft's 554 5.2.252 SendAsDenied at the end of DATA: roundtrip_send_refused."""
    _, imap = needs_delivery(stack)
    denying = endpoint(stack, "aiosmtpd", "send_as_denied")
    user = next(iter(stack.users))
    acct = account(stack, user, denying, imap)
    result = await roundtrip(stack, acct, denying.host, imap.host, smtp_security="ssl")
    assert (result.status, result.code) == (Status.FAIL, Code.ROUNDTRIP_SEND_REFUSED), result
    assert result.details["step"] == "data"
    assert "5.2.252 SendAsDenied" in result.details["reply"]
    assert result.hint is not None
    assert "Send As" in result.hint
    assert "own address" in result.hint
    assert tagged(stack, user) == {}


# --- a scripted IMAP server: Gmail's folder names, no UIDPLUS ---------------------------


@dataclass
class ImapStub:
    """Logs in anyone; lists Gmail's folders (no \\Junk attribute, a literal name); the
    tagged message appears in [Gmail]/Spam on the second search; no UIDPLUS, and another
    message of that folder is already flagged \\Deleted."""

    searches: int = 0
    lines: list[str] = field(default_factory=list)
    selected: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] stub ready\r\n")
            while line := (await reader.readline()).decode().rstrip("\r\n"):
                self.lines.append(line)
                tag, _, rest = line.partition(" ")
                command = rest.upper()
                if command.startswith("CAPABILITY"):
                    writer.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
                elif command.startswith("LIST"):
                    writer.write(
                        b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
                        b'* LIST (\\Noselect \\HasChildren) "/" "[Gmail]"\r\n'
                        b'* LIST (\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"\r\n'
                        b'* LIST (\\HasNoChildren) "/" {12}\r\n[Gmail]/Spam\r\n'
                    )
                elif command.startswith(("EXAMINE", "SELECT")):
                    self.selected = rest.split(" ", 1)[1]
                elif command.startswith("UID SEARCH DELETED"):
                    writer.write(b"* SEARCH 7 9\r\n")
                elif command.startswith("UID SEARCH"):
                    self.searches += 1
                    spam = self.selected == '"[Gmail]/Spam"'
                    found = spam and self.searches >= 4  # INBOX and Spam, twice
                    writer.write(b"* SEARCH 9\r\n" if found else b"* SEARCH\r\n")
                elif command.startswith("LOGOUT"):
                    writer.write(b"* BYE\r\n" + tag.encode() + b" OK bye\r\n")
                    await writer.drain()
                    return
                writer.write(tag.encode() + b" OK done\r\n")
                await writer.drain()
        writer.close()


@pytest_asyncio.fixture
async def imap_stub() -> AsyncIterator[tuple[ImapStub, int]]:
    stub = ImapStub()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await stub.handle(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield stub, server.sockets[0].getsockname()[1]
    server.close()
    for writer in writers:
        writer.transport.abort()
    await server.wait_closed()


async def test_gmail_like_spam_folder_found_and_others_deleted_kept(
    stack: Stack, imap_stub: tuple[ImapStub, int]
) -> None:
    """[Gmail]/Spam is found by name (a literal); without UIDPLUS, with another message
    flagged \\Deleted, the test message is flagged but no EXPUNGE erases the other."""
    stub, port = imap_stub
    smtp = endpoint(stack, "aiosmtpd", "ssl")  # accepts and discards the message
    user = next(iter(stack.users))
    acct = account(stack, user, smtp, smtp, imap_port=port)
    result = await roundtrip(
        stack,
        acct,
        smtp.host,
        "127.0.0.1",
        smtp_security="ssl",
        imap_security="plain",
        allow_plaintext_auth=True,
    )
    assert (result.status, result.code) == (Status.WARN, Code.ROUNDTRIP_JUNK), result
    assert (result.details["folder"], result.details["deleted"]) == ("[Gmail]/Spam", False)
    commands = [line.split(" ", 1)[1] for line in stub.lines]
    assert "UID STORE 9 +FLAGS.SILENT (\\Deleted)" in commands
    assert "EXPUNGE" not in commands
    assert not any(c.startswith("UID EXPUNGE") for c in commands)
