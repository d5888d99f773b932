"""aioimaplib's client protocol, extended with what a probe needs (STARTTLS first).

aioimaplib parses IMAP responses (tags, untagged data, literals) well, but as the
client of a probe it lacks or gets wrong (``shared/reference/library-notes.md``):

- **No STARTTLS.** :meth:`ImapClient.starttls` sends it, then upgrades the
  transport in place with ``loop.start_tls()``. Clear text that follows the tagged
  answer in the same read is refused (the STARTTLS response injection of
  CVE-2011-0411 and friends) instead of being parsed as a post-TLS response.
- **LOGIN sends the user name unquoted**, and its log scrubbing misses a password
  that needed quoting. :meth:`ImapClient.login` builds the line with RFC 3501
  quoted strings (literals for 8-bit text) and writes it without the library's
  logger ever seeing it.
- **A failed XOAUTH2 hangs**: the server's ``+ <base64 json>`` error challenge waits
  for an empty line the library never sends. :meth:`ImapClient.authenticate`
  answers every challenge and returns the challenges with the tagged reply.
- **A server closing mid-command is noticed only at the timeout.**
  :meth:`ImapClient.connection_lost` fails every pending command at once.
- **The greeting** is handled in a background task that raises into nowhere on
  ``* BYE`` and then asks CAPABILITY by itself. Here it is kept for the caller.
- **What it buffers has no bound**: a literal is read to its announced size (``{1073741824}``
  buffers a gigabyte), a line to its CRLF, and its parser recurses once per line (a
  LIST of a thousand folders overflows the stack). :meth:`ImapClient.data_received`
  parses in a loop and fails the session at once (:class:`ProtocolViolation`) past
  :data:`MAX_LINE`, :data:`MAX_LITERAL` or :data:`MAX_RESPONSE`; it also does not log
  the bytes received, which may echo the credentials.

Every command runs as aioimaplib's "sync" kind (one at a time, all untagged data
collected on it), which is all a probe does; aioimaplib's ``execute()`` and its
state table are bypassed. This is the only module that touches aioimaplib's
internals (the ``_handle_line``/``_continuation``/``_handle_responses`` hooks,
``pending_sync_command``, ``incomplete_line``, ``current_command``, ``state``,
``new_tag()``, ``IncompleteRead``, ``literal_data_re``, ``Command`` with its literal
methods and ``_exception``);
they are not public API, so the module is pinned to the versions it was tested with
(:data:`TESTED_VERSIONS`), warns on import under any other, and
``tests/integration/test_imap_probe.py`` drives every path against Dovecot and stub
servers (``tests/unit/test_imap_unit.py`` fails when another version is installed).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aioimaplib  # type: ignore[import-untyped]  # ships no type information

from preflight._net import part
from preflight.secret import MASK

__all__ = [
    "MAX_LINE",
    "MAX_LITERAL",
    "MAX_RESPONSE",
    "TESTED_VERSIONS",
    "ConnectionLostError",
    "ImapClient",
    "ImapError",
    "ProtocolViolation",
    "Reply",
    "aioimaplib_version",
    "capabilities_in",
    "capabilities_of",
    "quote",
    "warn_if_untested",
]

log = logging.getLogger("preflight.imap")


class _WithoutServerText(logging.Filter):
    """Keeps the server's words out of aioimaplib's log records.

    aioimaplib logs received lines (tagged answers at DEBUG, unexpected ones at INFO),
    formatted before any handler sees them; a server that echoes the credentials in
    its refusal would put them in the log. The record stays, its server text goes.
    """

    PREFIXES: Final = (
        "tagged status",
        "ignored untagged response",
        "unknown data received",
        "server says",
        "continuation line",
        "Received",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        for prefix in self.PREFIXES:
            if message.startswith(prefix):
                record.msg, record.args = f"{prefix} (the server's text is not logged)", ()
                break
        return True


logging.getLogger("aioimaplib.aioimaplib").addFilter(_WithoutServerText())

#: aioimaplib versions this module was tested with: ``>= 2.0, < 2.1``.
TESTED_VERSIONS: Final = ((2, 0), (2, 1))


def aioimaplib_version() -> str:
    """The installed aioimaplib's version (its package metadata)."""
    import importlib.metadata  # ~15 ms to import: not on a cold start's critical path

    return importlib.metadata.version("aioimaplib")


def _version_tested(version: str) -> bool:
    numbers = re.match(r"(\d+)\.(\d+)", version)
    if numbers is None:
        return False
    found = (int(numbers[1]), int(numbers[2]))
    return TESTED_VERSIONS[0] <= found < TESTED_VERSIONS[1]


def warn_if_untested() -> None:
    """A RuntimeWarning when the installed aioimaplib is not a tested version (pip
    keeps to the pin in pyproject.toml; other installers may not). Called by the
    runner in its background thread (see ``Shared.dns_loaded``), once per process."""
    global _warned
    if _warned:
        return
    _warned = True
    version = aioimaplib_version()
    if not _version_tested(version):  # pragma: no cover - depends on the environment
        warnings.warn(
            f"preflight's IMAP client extends aioimaplib internals tested with versions "
            f">= 2.0, < 2.1; aioimaplib {version} is installed: run the IMAP "
            "integration tests before relying on it",
            RuntimeWarning,
            stacklevel=1,
        )


_warned = False

_CONTROL = re.compile(r"[\x00\r\n]")
_QUOTABLE = re.compile(r"[\x01-\x7f]*")
_CAPABILITY_CODE = re.compile(r"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
#: How many server challenges an exchange answers before it calls the server confused.
_MAX_CHALLENGES = 3

#: What a server may send, at most (aiosmtplib bounds SMTP replies the same way). A
#: probe reads greetings, capabilities, login answers, EXAMINE, and in the roundtrip
#: LIST and UID SEARCH: no message bodies. Past a bound the session fails at once with
#: a ProtocolViolation, instead of buffering what a hostile server announces (a literal
#: of 1 GB) or never ends (a line without CRLF).
MAX_LINE: Final = 1024 * 1024  # one line; a UID SEARCH of 100,000 messages fits
MAX_LITERAL: Final = 64 * 1024  # one literal (a mailbox name in a LIST answer)
MAX_RESPONSE: Final = 8 * 1024 * 1024  # everything that answers one command
#: What a kept line costs beyond its bytes (a bytes object in a list), so that a flood
#: of empty-ish lines is bounded in memory too.
_LINE_COST = 64


class ImapError(Exception):
    """Why an IMAP exchange could not complete (a refusal is a :class:`Reply`, not this)."""


class ConnectionLostError(ImapError, ConnectionError):
    """The server closed the connection before it answered."""


class ProtocolViolation(ImapError):
    """The server said something that is not IMAP, or not at that point."""


@dataclass(frozen=True)
class Reply:
    """A command's outcome: the tagged status, its text, and the untagged lines before it."""

    result: str  # OK, NO or BAD
    text: str
    untagged: tuple[str, ...] = ()
    #: What the server sent as continuation requests (``+ ...``), without the ``+``.
    challenges: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result == "OK"

    @property
    def line(self) -> str:
        """The tagged line as the server sent it, without the tag."""
        return f"{self.result} {self.text}".strip()


def quote(value: str) -> str:
    """``value`` as an RFC 3501 quoted string (7-bit text without CR, LF, NUL)."""
    if _CONTROL.search(value) or not _QUOTABLE.fullmatch(value):
        raise ValueError("a quoted string holds 7-bit text without CR, LF or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def capabilities_in(text: str) -> list[str] | None:
    """The capabilities of an untagged ``CAPABILITY ...`` line or a ``[CAPABILITY ...]`` code."""
    code = _CAPABILITY_CODE.search(text)
    if code is not None:
        return code[1].split()
    words = text.split()
    if words and words[0].upper() == "CAPABILITY":
        return words[1:]
    return None


def capabilities_of(reply: Reply) -> list[str]:
    """The capabilities a reply lists, in its untagged lines or its tagged text's
    ``[CAPABILITY ...]`` code; in order, once each."""
    found: dict[str, None] = {}
    for line in reply.untagged:
        found.update(dict.fromkeys(capabilities_in(line) or ()))
    # In the tagged text only a response code counts: "a OK CAPABILITY Completed"
    # (GNU imap4d) names the command, not a capability.
    code = _CAPABILITY_CODE.search(reply.text)
    if code is not None:
        found.update(dict.fromkeys(code[1].split()))
    return list(found)


_BYE: Final = re.compile(rb"\* BYE(?: |$)", re.IGNORECASE)


def _decode(line: bytes | bytearray) -> str:
    return bytes(line).decode("utf-8", "replace")


class _Command(aioimaplib.Command):  # type: ignore[misc]  # aioimaplib is untyped
    """A command whose continuation requests and completion arrive on one queue."""

    def __init__(self, name: str, tag: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name, tag, loop=loop)
        #: Continuation texts as they come; ``None`` once the command is done.
        self.events: asyncio.Queue[str | None] = asyncio.Queue()

    def close(self, line: bytes, result: str) -> None:
        super().close(line, result)
        self.events.put_nowait(None)

    def fail(self, error: ImapError) -> None:
        self._exception = error
        self.close(b"", "KO")


class ImapClient(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]  # aioimaplib is untyped
    """One IMAP session over a transport the caller created (TLS or not).

    Use as the protocol of ``loop.create_connection(lambda: client, sock=...)``, then
    :meth:`wait_greeting`, then commands one at a time. Never reuse it after an
    exception or a cancelled command: call :meth:`abort`.
    """

    # Set by aioimaplib: the transport once connected (replaced by STARTTLS), and the
    # capabilities it parsed (unused here: see :meth:`capability`).
    transport: Any
    capabilities: set[str]
    # aioimaplib's parser state: a line not yet ended, the command a literal is for.
    incomplete_line: bytes
    current_command: Any

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(loop)
        self._greeted = asyncio.Event()
        self._greeting: str | None = None
        self._lost: ImapError | None = None
        self._violation: ProtocolViolation | None = None
        #: The server accepted STARTTLS: until the handshake it must say nothing more.
        self._tls_pending = False
        self._starttls: _Command | None = None
        #: What the server may still send before the next command (MAX_RESPONSE).
        self._allowance = MAX_RESPONSE
        #: The text of an untagged ``* BYE`` after the greeting (the server's last words:
        #: Courier says why it ends a LOGIN this way), without ``* BYE``.
        self.bye: str | None = None

    # --- aioimaplib hooks ------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # Replaces aioimaplib's, which logs every byte received (an echoing server's
        # credentials included) and keeps no bound on what it buffers.
        if self._violation is not None:
            return  # the session is over; what still arrives is not read
        try:
            self._handle_responses(
                self.incomplete_line + data, self._handle_line, self.current_command
            )
        except aioimaplib.IncompleteRead as incomplete:
            self.current_command = incomplete.cmd
            self.incomplete_line = incomplete.data
            if len(self.incomplete_line) > MAX_LINE:
                self._confused(f"the server sent a line longer than {MAX_LINE} bytes")
        except ProtocolViolation as violation:
            self._confused(str(violation))
        except Exception as exc:
            # aioimaplib raises (Abort, Error, ValueError...) on tags it did not send,
            # malformed literals and the like. Raised from here it would only reach
            # asyncio's log: the session is confused, so end it and say why.
            self._confused(f"the server's response made no sense here ({type(exc).__name__})")
        else:
            self.incomplete_line = b""
            self.current_command = None

    def _handle_responses(self, data: bytes, line_handler: Any, current_cmd: Any = None) -> None:
        """aioimaplib's parser of received data, with bounds, and as a loop: the
        library's recurses once per line, which overflows the stack on an answer of a
        thousand lines (a LIST of a large mailbox)."""
        start = 0
        while self._violation is None:  # once confused, the rest is not read
            if current_cmd is not None and current_cmd.wait_literal_data():
                data, start = current_cmd.append_literal_data(data[start:]), 0
                if current_cmd.wait_literal_data():
                    raise aioimaplib.IncompleteRead(current_cmd)
            if start >= len(data):
                if self.pending_sync_command is not None:
                    self.pending_sync_command.flush()
                if current_cmd is not None and current_cmd.wait_data():
                    raise aioimaplib.IncompleteRead(current_cmd)
                return
            end = data.find(aioimaplib.CRLF, start)
            if end < 0:
                raise aioimaplib.IncompleteRead(current_cmd, data[start:])
            line, start = data[start:end], end + len(aioimaplib.CRLF)
            if len(line) > MAX_LINE:
                raise ProtocolViolation(f"the server sent a line longer than {MAX_LINE} bytes")
            self._spend(len(line) + _LINE_COST)
            command = line_handler(line, current_cmd)
            literal = aioimaplib.literal_data_re.match(line)
            if literal:
                digits = literal["size"]
                size = int(digits) if len(digits) <= 12 else MAX_LITERAL + 1
                if size > MAX_LITERAL:
                    raise ProtocolViolation(
                        f"the server sent a literal of {digits.decode()} bytes; "
                        f"preflight reads at most {MAX_LITERAL}"
                    )
                self._spend(size)
                if command is None:
                    command = aioimaplib.Command("NIL", "unused", loop=self.loop)
                command.begin_literal_data(size)
                current_cmd = command
            elif command is not None and command.wait_data():
                current_cmd = command
            else:
                current_cmd = None

    def _spend(self, size: int) -> None:
        self._allowance -= size
        if self._allowance < 0:
            raise ProtocolViolation(
                f"the server sent more than {MAX_RESPONSE} bytes in answer to one command"
            )

    def _handle_line(self, line: bytes, current_cmd: Any) -> Any:
        if not line:
            return None
        if self._tls_pending:
            self._confused("the server sent more data after accepting STARTTLS")
            return None
        if self.state == aioimaplib.CONNECTED:
            self._greet(_decode(line))
            return None
        if self.bye is None and _BYE.match(line):
            self.bye = _decode(line)[5:].strip()
        handled = super()._handle_line(line, current_cmd)
        starttls = self._starttls
        if starttls is not None and self.pending_sync_command is None:
            # The tagged answer to STARTTLS was just handled: anything after an OK in
            # the same read would be clear text posing as a post-TLS response.
            self._starttls = None
            self._tls_pending = starttls.response.result == "OK"
        return handled

    def _continuation(self, line: bytes) -> None:
        command = self.pending_sync_command
        if isinstance(command, _Command):
            text = _decode(line)[1:].strip()
            command.events.put_nowait(text)
        else:
            self._confused("the server asked for data no command was sending")

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._lost = self._violation or ConnectionLostError("the server closed the connection")
        self._greeted.set()
        command = self.pending_sync_command
        if isinstance(command, _Command):
            command.fail(self._lost)

    # --- the session -------------------------------------------------------------

    def _greet(self, text: str) -> None:
        words = text.upper().split(maxsplit=2)
        status = words[1] if len(words) > 1 and words[0] == "*" else None
        if status == "OK":
            self.state = aioimaplib.NONAUTH
        elif status == "PREAUTH":
            self.state = aioimaplib.AUTH
        else:
            self.state = aioimaplib.LOGOUT  # BYE, or not IMAP at all: the caller decides
        self._greeting = text
        self._greeted.set()

    def _confused(self, reason: str) -> None:
        if self._violation is None:
            self._violation = ProtocolViolation(reason)
        self.abort()

    async def wait_greeting(self) -> str:
        """The server's first line (``* OK ...``, ``* PREAUTH ...``, ``* BYE ...``, or else)."""
        await self._greeted.wait()
        if self._greeting is None:
            assert self._lost is not None
            raise self._lost
        return self._greeting

    def abort(self) -> None:
        """Close at once, without goodbye: after a timeout or confusion, never reuse."""
        transport = self.transport
        if transport is not None:
            transport.abort()

    def part(self) -> None:
        """``LOGOUT``, then close (TLS close_notify, FIN) without waiting for the answer
        (:func:`preflight._net.part`); hard, as :meth:`abort`, when the session is not
        in a state to say anything (lost, confused, a command still running)."""
        if (
            self._lost is not None
            or self._violation is not None
            or self._tls_pending
            or self.pending_sync_command is not None
        ):
            self.abort()
            return
        log.debug("C: LOGOUT (not waiting for the answer)")
        part(self.transport, self.new_tag().encode() + b" LOGOUT\r\n")

    async def _exchange(
        self, name: str, first: bytes, answers: Sequence[bytes] = (), shown: str = ""
    ) -> Reply:
        """Send a command line; answer continuation requests with ``answers``, then with
        empty lines (which ends a SASL exchange the server failed, RFC 7628 §3.2.3).

        ``first`` and ``answers`` never reach any log: ``shown`` is what is logged.
        """
        if self._lost is not None:
            raise self._lost
        command = _Command(name, self.new_tag(), self.loop)
        wire = command.tag.encode() + b" " + first + b"\r\n"
        pending = list(answers)
        challenges: list[str] = []
        self.pending_sync_command = command
        self._allowance = MAX_RESPONSE
        if name == "STARTTLS":
            self._starttls = command
        log.debug("C: %s %s", command.tag, shown or _decode(first))
        self.transport.write(wire)
        while (challenge := await command.events.get()) is not None:
            if pending:
                self.transport.write(pending.pop(0) + b"\r\n")
                continue
            challenges.append(challenge)
            if len(challenges) > _MAX_CHALLENGES:
                raise ProtocolViolation(f"the server keeps asking for data during {name}")
            self.transport.write(b"\r\n")
        await command.wait()  # raises what connection_lost or a violation recorded
        *untagged, text = [_decode(line) for line in command.response.lines]
        return Reply(command.response.result, text, tuple(untagged), tuple(challenges))

    async def command(self, name: str, *args: str) -> Reply:
        """A command that carries no secret (its line may be logged)."""
        line = " ".join((name, *args))
        return await self._exchange(name, line.encode())

    async def capability(self) -> tuple[Reply, list[str]]:
        """``CAPABILITY``: the reply, and the capabilities it listed."""
        reply = await self.command("CAPABILITY")
        return reply, capabilities_of(reply)

    async def starttls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float
    ) -> Reply:
        """``STARTTLS``, then the TLS handshake on the same connection.

        A refusal is returned as it is; after an OK the connection is encrypted (or
        an exception says why not). The caller must drop the capabilities it knew:
        those sent before TLS are void (RFC 3501 §6.2.1).
        """
        reply = await self.command("STARTTLS")
        if not reply.ok:
            return reply
        if self._violation is not None or self.incomplete_line:
            raise self._violation or ProtocolViolation(
                "the server sent more data after accepting STARTTLS"
            )
        transport = await self.loop.start_tls(
            self.transport,
            self,
            context,
            server_hostname=server_hostname,
            ssl_handshake_timeout=timeout,
        )
        self._tls_pending = False
        self.transport = transport
        self.capabilities = set()
        return reply

    async def login(self, user: str, password: str) -> Reply:
        """``LOGIN user password``, both as RFC 3501 strings; never logged.

        7-bit values go as quoted strings (aioimaplib would send the user name bare);
        8-bit ones as literals, which may carry any octet but CR, LF and NUL.
        """
        segments = [b"LOGIN"]
        shown = ["LOGIN"]
        for value, secret in ((user, False), (password, True)):
            if _CONTROL.search(value):
                raise ValueError("a user name or password cannot hold CR, LF or NUL")
            try:
                text = quote(value).encode()
            except ValueError:
                raw = value.encode()
                # A literal's announcement ends the line; its octets follow the "+".
                segments[-1] += b" {%d}" % len(raw)
                segments.append(raw)
                shown.append(f"{{{len(raw)}}} {MASK if secret else raw.decode()}")
            else:
                segments[-1] += b" " + text
                shown.append(MASK if secret else text.decode())
        first, *answers = segments
        return await self._exchange("LOGIN", first, answers, " ".join(shown))

    async def authenticate(
        self, mechanism: str, response: bytes, *, initial_response: bool
    ) -> Reply:
        """``AUTHENTICATE mechanism`` with one client response, then empty answers.

        With ``initial_response`` (the server offers SASL-IR) the response goes on
        the command line; else in answer to the server's first ``+``. Any later
        challenge is the server's error report (XOAUTH2 sends base64 JSON): it is
        answered with an empty line, so the tagged NO follows instead of a hang.
        """
        encoded = base64.b64encode(response) or b"="
        line = f"AUTHENTICATE {mechanism}".encode()
        shown = f"AUTHENTICATE {mechanism} {MASK}" if initial_response else line.decode()
        if initial_response:
            return await self._exchange("AUTHENTICATE", line + b" " + encoded, (), shown)
        return await self._exchange("AUTHENTICATE", line, (encoded,), shown)
