"""The IMAP client's pieces that need no server: quoting, capabilities, the version pin,
and how it reads what a server sends (fed by hand, through a transport that records)."""

from __future__ import annotations

import asyncio
import importlib.metadata
from typing import Any

import pytest

from preflight.checks._imap_client import (
    MAX_LINE,
    MAX_LITERAL,
    MAX_RESPONSE,
    TESTED_VERSIONS,
    ImapClient,
    ProtocolViolation,
    Reply,
    aioimaplib_version,
    capabilities_in,
    capabilities_of,
    quote,
)


def test_installed_aioimaplib_is_a_tested_version() -> None:
    """The aioimaplib installed is one the STARTTLS extension was tested with."""
    version = aioimaplib_version()
    assert importlib.metadata.version("aioimaplib") == version
    major, minor = (int(part) for part in version.split(".")[:2])
    assert TESTED_VERSIONS[0] <= (major, minor) < TESTED_VERSIONS[1]


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("alice@example.com", '"alice@example.com"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("two words", '"two words"'),
        ("", '""'),
    ],
)
def test_quote_escapes_quotes_and_backslashes(value: str, quoted: str) -> None:
    """Quoted strings escape exactly the two quoted-specials (RFC 3501 §9)."""
    assert quoted == quote(value)


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "a\x00b", "pässwörd"])
def test_quote_refuses_what_a_quoted_string_cannot_carry(value: str) -> None:
    """CR, LF, NUL and 8-bit text cannot be quoted (the value is not in the error)."""
    with pytest.raises(ValueError, match="quoted string") as caught:
        quote(value)
    assert value not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN", ["IMAP4rev1", "STARTTLS", "AUTH=PLAIN"]),
        ("* OK [CAPABILITY IMAP4rev1 SASL-IR] Dovecot ready.", ["IMAP4rev1", "SASL-IR"]),
        ("OK [capability IMAP4rev1 IDLE] Logged in", ["IMAP4rev1", "IDLE"]),
        ("* OK Gimap ready", None),
        ("3 EXISTS", None),
    ],
)
def test_capabilities_in(text: str, expected: list[str] | None) -> None:
    """Capabilities come from an untagged CAPABILITY line or a [CAPABILITY] response code."""
    assert expected == capabilities_in(text)


def test_reply_line() -> None:
    """A reply shows as the server's tagged line without its tag."""
    reply = Reply("NO", "[AUTHENTICATIONFAILED] Authentication failed.")
    assert not reply.ok
    assert reply.line == "NO [AUTHENTICATIONFAILED] Authentication failed."


# --- reading: bounded, in a loop -----------------------------------------------------


class RecordingTransport(asyncio.Transport):
    """Keeps what the client writes; an abort ends the connection as a socket's would."""

    def __init__(self, client: ImapClient) -> None:
        super().__init__()
        self.client = client
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def abort(self) -> None:
        if not self.aborted:
            self.aborted = True
            asyncio.get_running_loop().call_soon(self.client.connection_lost, None)

    def is_closing(self) -> bool:
        return self.aborted


async def greeted_client() -> tuple[ImapClient, RecordingTransport]:
    client = ImapClient()
    transport = RecordingTransport(client)
    client.connection_made(transport)
    client.data_received(b"* OK ready\r\n")
    assert await client.wait_greeting() == "* OK ready"
    return client, transport


async def answer(client: ImapClient, transport: RecordingTransport, *chunks: bytes) -> Reply:
    """Send a command, feed the server's answer in ``chunks`` (``TAG`` is its tag)."""
    pending = asyncio.ensure_future(client.command("LIST", '""', '"*"'))
    await asyncio.sleep(0)
    tag = transport.written[-1].split(b" ", 1)[0]
    for chunk in chunks:
        client.data_received(chunk.replace(b"TAG", tag))
    return await asyncio.wait_for(pending, 5)


@pytest.mark.asyncio
async def test_thousands_of_lines_in_one_read() -> None:
    """An answer of 5,000 lines in one read is parsed (aioimaplib recursed once a line)."""
    client, transport = await greeted_client()
    lines = b"".join(b'* LIST () "/" "folder%d"\r\n' % n for n in range(5000))
    reply = await answer(client, transport, lines + b"TAG OK done\r\n")
    assert len(reply.untagged) == 5000
    assert reply.ok


@pytest.mark.asyncio
async def test_literal_split_across_reads() -> None:
    """A literal within the bound, arriving in pieces, is read whole."""
    client, transport = await greeted_client()
    reply = await answer(
        client, transport, b'* LIST () "/" {10}\r\nfold', b"er one\r\n", b"TAG OK done\r\n"
    )
    assert reply.untagged == ('LIST () "/" {10}', "folder one")


@pytest.mark.asyncio
async def test_huge_literal_fails_when_announced() -> None:
    """A literal above MAX_LITERAL fails the command at once and closes the connection."""
    client, transport = await greeted_client()
    with pytest.raises(ProtocolViolation, match="a literal of 1073741824 bytes"):
        await answer(client, transport, b"* 1 FETCH (BODY[] {1073741824}\r\nxxxx")
    assert transport.aborted
    assert MAX_LITERAL == 64 * 1024


@pytest.mark.asyncio
async def test_endless_line_fails_past_max_line() -> None:
    """A line without end fails once it passes MAX_LINE, not at the deadline."""
    client, transport = await greeted_client()
    chunk = b"x" * 65536
    chunks = [b"* LIST "] + [chunk] * (MAX_LINE // len(chunk) + 1)
    with pytest.raises(ProtocolViolation, match="a line longer than"):
        await answer(client, transport, *chunks)
    assert transport.aborted


@pytest.mark.asyncio
async def test_flood_fails_past_max_response() -> None:
    """Short lines without end fail once they pass MAX_RESPONSE (line overhead counted)."""
    client, transport = await greeted_client()
    chunk = b"* 1 EXISTS\r\n" * 5000
    with pytest.raises(ProtocolViolation, match="more than"):
        await answer(client, transport, *[chunk] * (MAX_RESPONSE // (5000 * 12) + 1))
    assert transport.aborted


@pytest.mark.asyncio
async def test_nothing_is_read_after_a_violation() -> None:
    """Once the session is confused, what still arrives is dropped, not parsed."""
    client, transport = await greeted_client()
    with pytest.raises(ProtocolViolation):
        await answer(client, transport, b"* 1 FETCH {99999999}\r\n")
    client.data_received(b"* 2 FETCH {99999999}\r\n" + b"x" * 100)
    assert client.incomplete_line == b""


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # GNU imap4d: the tagged text names the command, it lists no capability.
        (
            Reply("OK", "CAPABILITY Completed", ("CAPABILITY IMAP4rev1 STARTTLS",)),
            ["IMAP4rev1", "STARTTLS"],
        ),
        # Dovecot: a response code in the tagged text does list them.
        (
            Reply("OK", "[CAPABILITY IMAP4rev1 AUTH=PLAIN] Logged in", ()),
            ["IMAP4rev1", "AUTH=PLAIN"],
        ),
        (
            Reply("OK", "Completed", ("CAPABILITY IMAP4rev1", "CAPABILITY IDLE IMAP4rev1")),
            ["IMAP4rev1", "IDLE"],
        ),
    ],
)
def test_capabilities_of_reads_untagged_lines_and_tagged_codes_only(
    reply: Reply, expected: list[str]
) -> None:
    assert capabilities_of(reply) == expected
