"""Probing a candidate server: connection, TLS, greeting and STARTTLS, never a login
(a small wire client of its own)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

from preflight._text import one_line, shown
from preflight.discover._model import MAX_LINE, MAX_LINES, Candidate, Protocol, Source
from preflight.options import Security


class _NotMail(Exception):
    """The server said something that is not the protocol's greeting."""


class _Wire:
    """One probe connection over a socket it owns: clear text, or TLS over memory
    buffers (so cancelling at any point leaves nothing but the socket to close)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.tls: ssl.SSLObject | None = None
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.buffer = b""

    async def handshake(self, context: ssl.SSLContext, server_hostname: str) -> None:
        from preflight._net import tls_handshake  # the probes' loop, imported when used

        tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        await tls_handshake(self.sock, tls, self.incoming, self.outgoing)
        self.tls = tls

    async def _flush(self) -> None:
        pending = self.outgoing.read()
        if pending:
            await self.loop.sock_sendall(self.sock, pending)

    async def send(self, data: bytes) -> None:
        if self.tls is None:
            await self.loop.sock_sendall(self.sock, data)
            return
        self.tls.write(data)
        await self._flush()

    async def _recv(self) -> bytes:
        if self.tls is None:
            return await self.loop.sock_recv(self.sock, 4096)
        while True:
            try:
                return self.tls.read(4096)
            except ssl.SSLWantReadError:
                chunk = await self.loop.sock_recv(self.sock, 65536)
                if not chunk:
                    return b""
                self.incoming.write(chunk)
            except ssl.SSLZeroReturnError:
                return b""

    def close_notify(self) -> None:
        """End TLS politely (a close_notify alert), without waiting for the server's."""
        if self.tls is None:
            return
        with contextlib.suppress(ssl.SSLError):
            self.tls.unwrap()  # queues our close_notify, then wants the server's: not awaited
        pending = self.outgoing.read()
        with contextlib.suppress(OSError):
            self.sock.send(pending)  # a few bytes into an empty send buffer

    async def line(self) -> str:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise _NotMail("a line longer than 8 KiB")
            chunk = await self._recv()
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")


def _printable(text: str, limit: int = 120) -> str:
    return shown(one_line(text), limit)


async def _smtp_reply(wire: _Wire) -> tuple[int, list[str]]:
    lines: list[str] = []
    while len(lines) < MAX_LINES:
        line = await wire.line()
        lines.append(line)
        if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
            raise _NotMail(f"not an SMTP reply: {_printable(line, 60)!r}")
        if len(line) == 3 or line[3] == " ":
            return int(line[:3]), lines
    raise _NotMail("an SMTP reply of too many lines")


async def _converse_smtp(wire: _Wire, tls: bool, local_hostname: str) -> tuple[Security, str]:
    code, lines = await _smtp_reply(wire)
    greeting = _printable(lines[0])
    if code != 220:
        raise _NotMail(f"the server refuses sessions: {greeting}")
    security: Security = "ssl"
    if not tls:
        await wire.send(f"EHLO {local_hostname}\r\n".encode("ascii"))
        code, lines = await _smtp_reply(wire)
        from aiosmtplib.esmtp import parse_esmtp_extensions  # the probe's reading of EHLO

        extensions, _ = parse_esmtp_extensions("\n".join(line[4:] for line in lines))
        security = "starttls" if code == 250 and "starttls" in extensions else "plain"
    # A goodbye, not a conversation: what the server answers to it changes nothing.
    await wire.send(b"QUIT\r\n")
    return security, greeting


async def _converse_imap(wire: _Wire, tls: bool) -> tuple[Security, str]:
    first = await wire.line()
    greeting = _printable(first)
    upper = first.upper()
    if upper.startswith("* BYE"):
        raise _NotMail(f"the server refuses sessions: {greeting}")
    if not (upper.startswith("* OK") or upper.startswith("* PREAUTH")):
        raise _NotMail(f"not an IMAP greeting: {_printable(first, 60)!r}")
    security: Security = "ssl"
    if not tls:
        from preflight.checks._imap_client import capabilities_in  # the probe's parsing

        capabilities = capabilities_in(first) or []
        if not capabilities:
            await wire.send(b"p1 CAPABILITY\r\n")
            for _ in range(MAX_LINES):
                line = await wire.line()
                capabilities += capabilities_in(line.removeprefix("* ")) or []
                if line.startswith("p1 "):
                    break
        security = "starttls" if "STARTTLS" in (c.upper() for c in capabilities) else "plain"
    await wire.send(b"p2 LOGOUT\r\n")
    return security, greeting


async def probe(
    protocol: Protocol,
    host: str,
    addresses: tuple[str, ...],
    port: int,
    security: Security,
    source: Source,
    *,
    context: ssl.SSLContext,
    timeout: float,
    local_hostname: str,
) -> Candidate:
    """Connect, maybe TLS, read the greeting (and see whether STARTTLS is offered)."""
    from preflight._net import ConnectFailure, open_socket

    tls = security == "ssl"

    def failed(detail: str, *, answered: bool = False, verified: bool | None = None) -> Candidate:
        return Candidate(
            protocol,
            host,
            port,
            security,
            source,
            answered=answered,
            verified=verified,
            detail=detail,
        )

    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(timeout):
            try:
                sock = await open_socket(addresses, port, timeout)
            except ConnectFailure as failure:
                return failed(failure.message)
            wire = _Wire(sock)
            if tls:
                try:
                    await wire.handshake(context, host)
                except ssl.SSLCertVerificationError as exc:
                    return failed(
                        f"TLS answers, but the certificate does not verify: "
                        f"{exc.verify_message or exc.reason}",
                        answered=True,
                        verified=False,
                    )
                except ssl.SSLError as exc:
                    return failed(f"no TLS on port {port} ({exc.reason or exc})")
            if protocol == "smtp":
                found, greeting = await _converse_smtp(wire, tls, local_hostname)
            else:
                found, greeting = await _converse_imap(wire, tls)
            wire.close_notify()
    except TimeoutError:
        return failed(f"no greeting within {timeout:g} s")
    except _NotMail as exc:
        return failed(str(exc))
    except (OSError, EOFError) as exc:  # ssl.SSLError after the handshake is an OSError
        return failed(f"connection failed: {exc}")
    finally:
        if sock is not None:
            sock.close()
    # Not checked at all (insecure) is not the same as failed: None then.
    verified = True if tls and context.verify_mode != ssl.CERT_NONE else None
    return Candidate(
        protocol,
        host,
        port,
        found,
        source,
        answered=True,
        verified=verified,
        detail=f"greeting: {greeting}",
    )


def rank(candidate: Candidate) -> int:
    """Implicit TLS (verified) < STARTTLS < TLS with a bad certificate < clear text."""
    return rank_security(candidate.security, candidate.verified)


def rank_security(security: Security, verified: bool | None) -> int:
    """:func:`rank` of a candidate with this security (``verified`` None: not known)."""
    if security == "ssl":
        return 2 if verified is False else 0
    return 1 if security == "starttls" else 3
