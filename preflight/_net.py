"""What the SMTP and IMAP probes share: TCP connect, the TLS sniff, the result.

Both probes walk the same road (resolve, connect, maybe TLS, greeting, maybe
STARTTLS, log in) and fail on it in the same ways; the pieces that do not depend
on the protocol live here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import json
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeVar

from preflight import _early, _text
from preflight._tls import permissive_context
from preflight.options import Security
from preflight.report import CheckResult, Code, Status
from preflight.secret import MASK

__all__ = [
    "ConnectFailure",
    "Masker",
    "Mode",
    "ProbeState",
    "ProbeStop",
    "bounded",
    "goodbye",
    "mode_for_port",
    "offers_starttls",
    "open_socket",
    "part",
    "presented_certificate",
    "reportable",
    "reportable_details",
    "scrub",
    "server_tls",
    "tls_answers",
    "tls_handshake",
]

#: How a probe speaks to the port. "starttls?" upgrades when offered (port 25);
#: "detect" is for ports with no convention: clear-text greeting, else implicit TLS.
Mode = Literal["ssl", "starttls", "starttls?", "plain", "detect"]

_SMTP_PORTS: dict[int, Mode] = {465: "ssl", 587: "starttls", 25: "starttls?"}
_IMAP_PORTS: dict[int, Mode] = {993: "ssl", 143: "starttls"}


def mode_for_port(protocol: str, port: int, override: Security | None) -> Mode:
    """The security mode: the explicit override, else what the port number implies."""
    if override is not None:
        return override
    table = _SMTP_PORTS if protocol == "smtp" else _IMAP_PORTS
    return table.get(port, "detect")


class ProbeStop(Exception):
    """Ends a probe early with its failing result (a result, not an error)."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.code.value)
        self.result = result


class _Probe(Protocol):
    def timed_out(self) -> CheckResult: ...

    def close(self) -> None: ...


T = TypeVar("T")


async def bounded(
    probe: _Probe, work: Awaitable[T], deadline: float, *, keep_open: bool = False
) -> T | CheckResult:
    """Run a probe's ``work`` before the loop time ``deadline``.

    A :class:`ProbeStop` gives its result, the deadline the probe's ``timed_out()``
    result. The probe's connections are closed afterwards, except after success with
    ``keep_open`` (a session handed to a caller, who closes it).
    """
    succeeded = False
    try:
        async with asyncio.timeout_at(deadline):
            value = await work
    except ProbeStop as stop:
        return stop.result
    except TimeoutError:
        return probe.timed_out()
    else:
        succeeded = True
        return value
    finally:
        if not (succeeded and keep_open):
            probe.close()


def part(transport: asyncio.BaseTransport | None, goodbye: bytes) -> None:
    """End a session politely without waiting on the server: write ``goodbye`` (QUIT,
    a tagged LOGOUT), then close, which over TLS sends close_notify, then FIN.

    Nothing is read and nothing awaited: the bytes are handed to the kernel now (a few
    bytes on an idle connection are), and the socket closes within a turn or two of
    the loop. asyncio's TLS close would otherwise wait up to 30 s for the server's own
    close_notify, holding the socket past the report and maybe past the loop: so the
    TCP connection is shut down at once after ours, and the TLS layer, seeing the end
    of the stream, closes the transport. A transport already closing is left alone.
    """
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        return
    tls = transport.get_extra_info("ssl_object") is not None
    sock = transport.get_extra_info("socket") if tls else None
    transport.write(goodbye)
    transport.close()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class ConnectFailure(Exception):
    """No TCP connection could be made to any address of the host."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def open_socket(
    addresses: tuple[str, ...], port: int, timeout: float, protocol: str | None = None
) -> socket.socket:
    """A connected non-blocking socket to the first address that answers (``protocol``:
    the probe's, for a cold start's early connection, see :func:`preflight._early.take`)."""
    loop = asyncio.get_running_loop()
    refused: list[str] = []
    timed_out: list[str] = []
    other: list[str] = []
    for address in addresses:
        try:
            # A cold start's connection, opened while the libraries loaded (_early).
            early = await asyncio.wait_for(_early.take(address, port, protocol), timeout)
        except (TimeoutError, OSError):
            early = None  # connected again below: the same outcome, reported the same way
        if early is not None:
            return early
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (address, port))
        except TimeoutError:
            sock.close()
            timed_out.append(address)
        except ConnectionRefusedError:
            sock.close()
            refused.append(address)
        except OSError as exc:
            sock.close()
            other.append(f"{address}: {exc.strerror or errno.errorcode.get(exc.errno or 0, exc)}")
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    if refused:
        raise ConnectFailure(
            Code.CONNECT_REFUSED, f"connection to port {port} refused ({', '.join(refused)})"
        )
    if timed_out:
        raise ConnectFailure(
            Code.CONNECT_TIMEOUT,
            f"no TCP connection to port {port} within {timeout:g} s ({', '.join(timed_out)})",
        )
    raise ConnectFailure(Code.CONNECT_REFUSED, f"cannot connect to port {port}: {'; '.join(other)}")


async def tls_answers(address: str, port: int, timeout: float) -> bool:
    """Whether a TLS handshake completes on a fresh connection (certificate ignored).

    Used when a clear-text greeting does not come: a port that completes a TLS
    handshake speaks implicit TLS, and the account has the wrong port or mode.
    """
    return await _unverified_handshake(address, port, timeout, read=lambda tls: True) is not None


async def _unverified_handshake(
    address: str,
    port: int,
    timeout: float,
    protocol: str = "",
    starttls: bool = False,
    context: ssl.SSLContext | None = None,
    *,
    read: Callable[[ssl.SSLObject], T],
) -> T | None:
    """A TLS handshake with verification off on a fresh connection (after
    ``protocol``'s STARTTLS when ``starttls``), or None when it does not complete in
    ``timeout``; else what ``read`` takes from the session. ``context``
    replaces the default one (verification off, the default versions and ciphers).
    The look ends politely, without waiting for the server: QUIT or LOGOUT when it
    came through STARTTLS (the conversation had begun; after implicit TLS the server
    has not greeted yet, and a command before its greeting is a protocol error), then
    the TLS close_notify and our half of the connection closed. It runs over memory
    buffers on a socket this function owns, so that cancelling it at any point closes
    the socket (asyncio's own TLS transports can leak theirs when cancelled
    mid-handshake); the socket is closed before returning.
    """
    if timeout <= 0:
        return None
    loop = asyncio.get_running_loop()
    if context is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (address, port))
            if starttls:
                await _starttls_exchange(sock, protocol)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = context.wrap_bio(incoming, outgoing, server_side=False)
            await tls_handshake(sock, tls, incoming, outgoing)
            taken = read(tls)
            with contextlib.suppress(ssl.SSLError):
                if starttls:
                    tls.write(b"QUIT\r\n" if protocol == "smtp" else b"C2 LOGOUT\r\n")
                tls.unwrap()  # queues the close_notify, then wants the server's: not awaited
            goodbye(sock, outgoing.read())
            return taken
    except (OSError, TimeoutError):  # ssl.SSLError is an OSError
        return None
    finally:
        sock.close()


async def tls_handshake(
    sock: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
) -> None:
    """Complete ``tls``'s handshake over its memory buffers on ``sock``.

    The one handshake loop of the sniff (:func:`tls_answers`) and of ``discover``'s
    probes: the caller owns the socket, so a cancellation at any point leaves only it
    to close. Raises ``ssl.SSLError`` (a certificate too), or ``ConnectionResetError``
    when the server closes during the handshake.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            if pending:
                await loop.sock_sendall(sock, pending)
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise ConnectionResetError("closed during the TLS handshake") from None
            incoming.write(chunk)
        else:
            break
    pending = outgoing.read()  # the client's last flight (TLS 1.3 Finished)
    if pending:
        await loop.sock_sendall(sock, pending)


#: How much server text a report keeps: a reply in ``details.reply``, a message, a
#: short value such as a greeting. Cut after the secrets are masked, never before.
REPLY_LIMIT: Final = 1000
MESSAGE_LIMIT: Final = 500
SHORT_LIMIT: Final = 200

#: Runs of text that may be base64 (standard or URL-safe alphabet), with padding.
#: The shortest SASL PLAIN blob (two NULs and a 3-character secret) has 7 characters of
#: base64; a secret's own shorter encoding is caught by its literal form.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{6,}={0,2}")
_URLSAFE = str.maketrans("-_", "+/")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret masked, in each form a server could echo it
    (see :class:`Masker`)."""
    return Masker(secrets).scrub(text)


class Masker:
    """Masks some secrets, in each form a server could echo them, in any number of texts.

    The forms: the secret itself (any whitespace in it matching any whitespace, case
    ignored), as an IMAP quoted string (``\\"`` and ``\\\\``), JSON- and URL-encoded,
    its UTF-8 bytes read as Latin-1, its base64; and any base64 run that decodes to
    bytes holding a secret, which covers SASL PLAIN blobs (``authzid\\0user\\0password``)
    and XOAUTH2 strings whatever the user name. Secrets shorter than 3 characters are
    not masked (they would mask ordinary words).

    Scrub the whole text as received, before collapsing its whitespace or cutting
    it: a cut secret or a changed space no longer matches.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        usable = [secret for secret in secrets if len(secret) >= 3]
        self._needles = [secret.encode("utf-8", "surrogatepass") for secret in usable]
        self._cores = {core for needle in self._needles for core in _base64_cores(needle)}
        self._patterns = [_secret_pattern(secret) for secret in usable]

    def scrub(self, text: str) -> str:
        """``text`` with every form of every secret masked."""
        if not self._patterns:
            return text
        standard = text.translate(_URLSAFE)
        if any(core in standard for core in self._cores):  # else no run can hold a secret
            text = _BASE64_RUN.sub(self._masked_run, text)
        for pattern in self._patterns:
            text = pattern.sub(MASK, text)
        return text

    def _masked_run(self, match: re.Match[str]) -> str:
        run = match[0]
        body = run.rstrip("=").translate(_URLSAFE)
        # Decoding every word of a long reply is slow; a run without a core is no secret.
        if any(core in body for core in self._cores) and _decodes_to_any(body, self._needles):
            return MASK
        return run

    def show(self, text: str, limit: int = REPLY_LIMIT, *, one_line: bool = True) -> str:
        """``text`` as a report may show it (see :func:`reportable`)."""
        text = self.scrub(text)
        if one_line:
            text = _text.one_line(text)
        else:
            text = "\n".join(line.rstrip("\r") for line in text.split("\n")).strip()
        return _text.shown(text, limit, keep_newlines=not one_line)

    def show_details(self, details: Mapping[str, Any]) -> dict[str, Any]:
        """``details`` with every string in it (nested too) as a report may show it."""

        def clean(value: Any) -> Any:
            if isinstance(value, str):
                return self.show(value)
            if isinstance(value, list | tuple):
                return [clean(item) for item in value]
            if isinstance(value, Mapping):
                return {key: clean(item) for key, item in value.items()}
            return value

        return {key: clean(value) for key, value in details.items()}


def _base64_cores(needle: bytes) -> set[str]:
    """The base64 characters that encode ``needle`` whatever bytes surround it: one
    string for each of the three places it can start in a 3-byte group."""
    cores = set()
    for lead in range(3):
        encoded = base64.b64encode(bytes(lead) + needle).decode()
        # The characters whose 6 bits all come from the needle's bytes.
        cores.add(encoded[-(-8 * lead // 6) : 8 * (lead + len(needle)) // 6])
    return cores


def _decodes_to_any(body: str, needles: list[bytes]) -> bool:
    """Whether the base64 ``body`` (standard alphabet, no padding), read from any of its
    first four characters (the encoding may start inside the run), decodes to bytes
    holding one of ``needles``."""
    for start in range(4):
        chunk = body[start:]
        if len(chunk) % 4 == 1:  # a lone trailing character carries no whole byte
            chunk = chunk[:-1]
        decoded = base64.b64decode(chunk + "=" * (-len(chunk) % 4))
        if any(needle in decoded for needle in needles):
            return True
    return False


def _secret_pattern(secret: str) -> re.Pattern[str]:
    """One pattern for every textual form of ``secret`` a server could echo."""
    raw = secret.encode("utf-8", "surrogatepass")
    textual = {
        secret,
        secret.replace("\\", "\\\\").replace('"', '\\"'),  # an IMAP quoted string
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        urllib.parse.quote(secret, safe="", errors="surrogatepass"),
        urllib.parse.quote_plus(secret, safe="", errors="surrogatepass"),
        raw.decode("latin-1"),  # UTF-8 shown as Latin-1 by a server that guessed
    }
    encoded = {
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    # Longest first: at one position the regex takes the first alternative that matches.
    loose = "|".join(_loosely(form) for form in sorted(textual, key=len, reverse=True))
    exact = "|".join(re.escape(form) for form in sorted(encoded, key=len, reverse=True))
    return re.compile(f"(?i:{loose})|{exact}")


def _loosely(form: str) -> str:
    """``form`` as a pattern in which each run of whitespace matches any run of it
    (a server may fold, tab or collapse the spaces of what it echoes)."""
    if not form.strip():
        return re.escape(form)  # nothing but whitespace: only the exact text
    return "".join(
        r"\s+" if part.isspace() else re.escape(part) for part in re.split(r"(\s+)", form) if part
    )


def reportable(
    text: str, secrets: Iterable[str] = (), limit: int = REPLY_LIMIT, *, one_line: bool = True
) -> str:
    """Server (or exception) text as a report may show it.

    In this order: every secret masked in the whole text (:func:`scrub`), whitespace
    collapsed to single spaces (unless not ``one_line``: then the text keeps its spaces
    and line breaks, as a reply quoted in ``details.reply``), what is not printable
    shown as an escape (``\\x1b``; an undecodable byte as ``\\xff``), and the result cut
    to ``limit`` characters. Masking first means neither the collapse nor the cut can
    bring a secret back.
    """
    return Masker(secrets).show(text, limit, one_line=one_line)


def reportable_details(details: Mapping[str, Any], secrets: Iterable[str]) -> dict[str, Any]:
    """``details`` with every string in it (nested too) made :func:`reportable`."""
    return Masker(secrets).show_details(details)


@dataclass
class ProbeState:
    """What a probe has done so far: the step it is in, and details for the report."""

    name: str
    secrets: tuple[str, ...] = ()
    step: str = "resolve"
    started: float = field(default_factory=time.perf_counter)
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def fail(self, code: Code, message: str, hint: str, reply: str | None = None) -> CheckResult:
        # Server text reaches a report only through reportable(): masked whole, then
        # collapsed and cut. Details too, whatever put a server's words in them.
        masker = Masker(self.secrets)
        details = masker.show_details(self.details)
        details["step"] = self.step
        if reply is not None:
            details["reply"] = masker.show(reply, one_line=False)
        return CheckResult(
            self.name,
            Status.FAIL,
            code,
            masker.show(message, MESSAGE_LIMIT),
            hint,
            self.elapsed_ms(),
            details,
        )

    def passed(self, message: str) -> CheckResult:
        """Success; a ``warn`` when the probe noted warnings, which go to
        ``details.warnings`` as ``{"message": ...}`` objects (the payload check's shape)."""
        if self.warnings:
            warnings = [{"message": warning} for warning in self.warnings]
            details = {**self.details, "warnings": warnings}
            first = self.warnings[0]
            return CheckResult(
                self.name,
                Status.WARN,
                Code.OK,
                f"{message}; " + "; ".join(self.warnings),
                first[:1].upper() + first[1:] + ".",
                self.elapsed_ms(),
                details,
            )
        return CheckResult(
            self.name, Status.PASS, Code.OK, message, None, self.elapsed_ms(), dict(self.details)
        )


async def _read_line(sock: socket.socket, buffer: bytearray) -> bytes:
    """One CRLF-ended line from ``sock`` (``buffer`` keeps what came after it)."""
    loop = asyncio.get_running_loop()
    while b"\n" not in buffer:
        if len(buffer) > 65536:
            raise ConnectionError("line too long")
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise ConnectionResetError("closed")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


async def _starttls_exchange(sock: socket.socket, protocol: str) -> None:
    """The least of ``protocol``'s clear-text talk that ends in STARTTLS accepted."""
    loop = asyncio.get_running_loop()
    buffer = bytearray()
    if protocol == "smtp":
        while (line := await _read_line(sock, buffer))[3:4] == b"-":
            pass  # the (multi-line) greeting
        await loop.sock_sendall(sock, b"EHLO preflight.invalid\r\n")
        while (line := await _read_line(sock, buffer))[3:4] == b"-":
            pass
        await loop.sock_sendall(sock, b"STARTTLS\r\n")
        if not (await _read_line(sock, buffer)).startswith(b"220"):
            raise ConnectionError("STARTTLS refused")
    else:
        await _read_line(sock, buffer)  # the greeting
        await loop.sock_sendall(sock, b"C1 STARTTLS\r\n")
        while not (line := await _read_line(sock, buffer)).startswith(b"C1 "):
            pass
        if not line.upper().startswith(b"C1 OK"):
            raise ConnectionError("STARTTLS refused")


async def presented_certificate(
    address: str, port: int, protocol: str, starttls: bool, timeout: float
) -> bytes | None:
    """The DER certificate the server at ``address:port`` presents, fetched on a fresh
    connection with verification off (after ``protocol``'s STARTTLS when
    ``starttls``); None when it cannot be had within ``timeout``.

    A failed verification leaves ssl no certificate to show, so a report that names
    what the certificate is for needs this second, short look.
    """
    return await _unverified_handshake(
        address, port, timeout, protocol, starttls, read=lambda tls: tls.getpeercert(True)
    )


async def server_tls(
    address: str, port: int, protocol: str, starttls: bool, timeout: float
) -> tuple[str, str | None] | None:
    """The TLS version and cipher the server at ``address:port`` negotiates when every
    version from TLS 1.0 to 1.3 and every cipher is allowed (verification off), on a
    fresh connection (after ``protocol``'s STARTTLS when ``starttls``); None when no
    handshake completes within ``timeout``.

    After a handshake failed for want of a common version or cipher, this says which
    side is behind: a server that speaks only TLS 1.0 answers "TLSv1".
    """

    def negotiated(tls: ssl.SSLObject) -> tuple[str, str | None] | None:
        version, cipher = tls.version(), tls.cipher()
        return (str(version), cipher[0] if cipher else None) if version else None

    return await _unverified_handshake(
        address, port, timeout, protocol, starttls, context=permissive_context(), read=negotiated
    )


async def offers_starttls(address: str, port: int, protocol: str, timeout: float) -> bool | None:
    """Whether the clear-text server at ``address:port`` offers STARTTLS (SMTP EHLO,
    IMAP capabilities), on a fresh connection that sends nothing else; None when that
    cannot be seen within ``timeout``. For the hint of implicit TLS spoken to a
    clear-text port: STARTTLS helps only where it is offered."""
    if timeout <= 0:
        return None
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    sock.setblocking(False)
    buffer = bytearray()
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (address, port))
            if protocol == "smtp":
                while (await _read_line(sock, buffer))[3:4] == b"-":
                    pass  # the (multi-line) greeting
                await loop.sock_sendall(sock, b"EHLO preflight.invalid\r\n")
                lines = [await _read_line(sock, buffer)]
                while lines[-1][3:4] == b"-":
                    lines.append(await _read_line(sock, buffer))
                goodbye(sock, b"QUIT\r\n")
                if not lines[0].startswith(b"250"):
                    return None
                return any(line[4:].strip().upper() == b"STARTTLS" for line in lines)
            greeting = await _read_line(sock, buffer)
            if b"CAPABILITY" in greeting.upper():
                goodbye(sock, b"C2 LOGOUT\r\n")
                return b"STARTTLS" in greeting.upper().replace(b"]", b" ").split()
            await loop.sock_sendall(sock, b"C1 CAPABILITY\r\n")
            lines = [await _read_line(sock, buffer)]
            while not lines[-1].startswith(b"C1 "):
                lines.append(await _read_line(sock, buffer))
            goodbye(sock, b"C2 LOGOUT\r\n")
            if not lines[-1].upper().startswith(b"C1 OK"):
                return None
            return any(
                b"STARTTLS" in line.upper().replace(b"]", b" ").split() for line in lines[:-1]
            )
    except (OSError, TimeoutError):
        return None
    finally:
        sock.close()


def goodbye(sock: socket.socket, data: bytes) -> None:
    """End a short look politely without waiting: ``data`` (QUIT, LOGOUT or a TLS
    close_notify), then our half of the connection closed; the server's answer is not
    read. Bytes that fit an empty send buffer, so a plain ``send`` takes them."""
    with contextlib.suppress(OSError):
        sock.send(data)
        sock.shutdown(socket.SHUT_WR)
