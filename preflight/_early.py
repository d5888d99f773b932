"""A cold start's first packets, sent before the libraries that use them are loaded.

``preflight check one.json`` spends its first few hundred milliseconds importing
(asyncio, ssl, dnspython, the protocol clients) and loading the CA store. The first
network steps of a check need none of that: the server host's address (the system
resolver) and a TCP connection to it. :func:`start` does both in a thread, once the
payload is known to be valid, so that they are under way while the imports run;
the probe then takes the connected socket (:func:`claim`) instead of connecting
again, and the address look-up is the same one (:func:`lookup`). A server that
speaks first (SMTP, IMAP's greeting) has answered by the time the probe reads.

On an SMTP port whose session starts in clear text and moves to TLS (587: the
greeting, EHLO, STARTTLS, then the handshake), the thread also goes through that
clear-text start (``prelude=``): three round trips no library is needed for. It goes
on only while the server answers by the book (a 220 greeting, a 250 EHLO reply that
offers STARTTLS, 220 to STARTTLS, nothing more); the probe then finds the
:class:`Prelude` with the socket (:func:`prelude`) and begins at the TLS handshake.
Anything else (a refusal, no STARTTLS, a line that is not a reply) and the thread
says QUIT and closes: the probe connects again and meets the same server itself, so
every report is still made by the probe's own code. A greeting that is late is left
unread: the socket goes to the probe untouched, which knows what a silent port means.

Only the command line uses it, for the first account of its input, and only with
the system resolver: with ``--dns-for-hosts`` the probes resolve through dnspython
as before. A connection nobody claims is closed when the process ends.
"""

from __future__ import annotations

import atexit
import socket
import threading
import weakref
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Prelude", "claim", "lookup", "prelude", "start", "take"]


@dataclass(frozen=True)
class Prelude:
    """An SMTP session's clear-text start, done by the early thread: the socket's next
    bytes are the client's TLS handshake (STARTTLS was accepted)."""

    #: The greeting's text, its lines joined by newlines, without the code.
    greeting: str
    #: The text of the server's 220 reply to STARTTLS.
    ready: str


#: Replies larger than this (or with more lines) are not by the book: the probe's own.
_REPLY_LIMIT = 16 * 1024
_REPLY_LINES = 100


class _NotByTheBook(Exception):
    """The server said something the probe must hear for itself."""


class _Replies:
    """SMTP replies read from a blocking socket (RFC 5321 4.2: ``ddd-`` lines, then
    one ``ddd `` line)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read(self) -> tuple[int, list[str]]:
        lines: list[str] = []
        code: bytes | None = None
        while True:
            while b"\r\n" not in self.buffer:
                if len(self.buffer) > _REPLY_LIMIT:
                    raise _NotByTheBook("a reply line too long")
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise _NotByTheBook("the server closed the connection")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            head = line[:3]
            if (
                not head.isdigit()
                or (code is not None and head != code)
                or len(lines) > _REPLY_LINES
            ):
                raise _NotByTheBook("not a reply")
            if line[3:4] not in (b"", b" ", b"-"):
                raise _NotByTheBook("not a reply")
            code = head
            lines.append(line[4:].decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(head), lines


def _smtp_prelude(
    sock: socket.socket, ehlo_name: str, greeting_timeout: float, timeout: float
) -> Prelude | None:
    """Greeting, EHLO, STARTTLS on ``sock``; None when the greeting is late (nothing
    was read). Raises :class:`_NotByTheBook` or OSError (a timeout included) when the
    session went elsewhere: the socket is then spent."""
    replies = _Replies(sock)
    sock.settimeout(greeting_timeout)
    try:
        replies.buffer = sock.recv(4096)
    except TimeoutError:
        return None  # nothing read: the probe decides what a silent port is
    if not replies.buffer:
        raise _NotByTheBook("the server closed the connection")
    sock.settimeout(timeout)
    code, greeting = replies.read()
    if code != 220:
        raise _NotByTheBook("no 220 greeting")
    sock.sendall(f"EHLO {ehlo_name}\r\n".encode("ascii"))
    code, ehlo = replies.read()
    offered = {line.split(" ", 1)[0].upper() for line in ehlo[1:]}
    if code != 250 or "STARTTLS" not in offered:
        raise _NotByTheBook("no STARTTLS offered")
    sock.sendall(b"STARTTLS\r\n")
    code, ready = replies.read()
    if code != 220 or replies.buffer:  # bytes after the 220: injected, or confused
        raise _NotByTheBook("STARTTLS not accepted")
    return Prelude("\n".join(greeting), "\n".join(ready))


def _quit(sock: socket.socket) -> None:
    """QUIT without waiting for the reply, and close (the session went elsewhere)."""
    try:
        sock.setblocking(False)
        sock.send(b"QUIT\r\n")
    except OSError:
        pass
    sock.close()


_preludes: weakref.WeakKeyDictionary[socket.socket, Prelude] = weakref.WeakKeyDictionary()


def prelude(sock: socket.socket) -> Prelude | None:
    """The clear-text start the early thread did on ``sock`` (taken once), if any."""
    with _lock:
        return _preludes.pop(sock, None)


@dataclass
class _Early:
    port: int
    #: "smtp" for a connection with an SMTP prelude: only an SMTP probe may take it.
    protocol: str | None = None
    #: The address the connection goes to (IPv4 first, as the probes order them).
    address: Future[str] = field(default_factory=Future)
    connection: Future[socket.socket] = field(default_factory=Future)

    @property
    def futures(self) -> tuple[Future[str], Future[socket.socket]]:
        return self.address, self.connection


def _settle(future: Future[Any], outcome: object) -> bool:
    """Give ``future`` its result (or exception) unless it has one or was cancelled."""
    if future.done():
        return False
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:  # cancelled or settled meanwhile
        return False
    return True


_lock = threading.Lock()
_lookups: dict[str, Future[tuple[str, ...]]] = {}
_early: list[_Early] = []


def start(
    host: str,
    port: int,
    timeout: float,
    *,
    prelude: tuple[str, float, float] | None = None,
) -> None:
    """Look up ``host`` and connect to its first address on ``port``, in a thread.

    ``prelude=(ehlo_name, greeting_timeout, command_timeout)``: then go through an
    SMTP session's clear-text start up to STARTTLS accepted (see the module's text).
    """
    key = host.lower()
    entry = _Early(port, "smtp" if prelude is not None else None)
    with _lock:
        found = _lookups.get(key)
        if found is None:
            found = _lookups[key] = Future()
            resolve = True
        else:
            resolve = False
        _early.append(entry)

    def work() -> None:
        # Running from now on: a claim cancelled later leaves the result to be closed.
        for future in (found, entry.address, entry.connection) if resolve else entry.futures:
            future.set_running_or_notify_cancel()
        if resolve:
            try:
                infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except Exception as exc:  # what the probe's own look-up would have raised
                _settle(found, exc)
            else:
                ordered = sorted(infos, key=lambda info: info[0] != socket.AF_INET)
                addresses = tuple(dict.fromkeys(str(info[4][0]) for info in ordered))
                if addresses:  # known before the look-up is: the probe claims right after it
                    _settle(entry.address, addresses[0])
                _settle(found, addresses)
        try:
            addresses = found.result()
        except Exception as exc:
            _settle(entry.address, exc)
            _settle(entry.connection, exc)
            return
        if not addresses:
            error = OSError("no address")
            _settle(entry.address, error)
            _settle(entry.connection, error)
            return
        _settle(entry.address, addresses[0])
        family = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((addresses[0], port))
        except Exception as exc:
            sock.close()
            _settle(entry.connection, exc)
        else:
            if prelude is not None:
                try:
                    done = _smtp_prelude(sock, *prelude)
                except (OSError, _NotByTheBook, UnicodeError) as exc:
                    _quit(sock)
                    _settle(entry.connection, OSError(f"the early session went elsewhere: {exc}"))
                    return
                if done is not None:
                    with _lock:
                        _preludes[sock] = done
            sock.setblocking(False)
            if not _settle(entry.connection, sock):
                sock.close()

    threading.Thread(target=work, name=f"preflight-early-{key}:{port}", daemon=True).start()


def lookup(host: str) -> Future[tuple[str, ...]] | None:
    """The addresses :func:`start` is finding for ``host`` (system resolver), if any."""
    with _lock:
        return _lookups.get(host.lower())


async def take(address: str, port: int, protocol: str | None = None) -> socket.socket | None:
    """The early connection to ``address``:``port`` (see :func:`claim`): the connected
    non-blocking socket, None when none was started; raises what connecting raised.
    A connection with an SMTP prelude goes only to ``protocol="smtp"``."""
    import asyncio  # loaded by now: only the probes call this

    with _lock:
        candidates = [
            entry for entry in _early if entry.port == port and entry.protocol in (None, protocol)
        ]
    future: Future[socket.socket] | None = None
    for entry in candidates:
        # Known as soon as the look-up is (a moment after, for a second port); a failed
        # look-up is the probe's own look-up's to report.
        outcome = await asyncio.gather(asyncio.wrap_future(entry.address), return_exceptions=True)
        if outcome[0] != address:
            continue
        with _lock:
            if entry in _early:  # not taken meanwhile
                _early.remove(entry)
                future = entry.connection
                break
    if future is None:
        return None
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        future.add_done_callback(_close_result)
        raise


def _close_result(future: Future[socket.socket]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


def claim(address: str, port: int, protocol: str | None = None) -> Future[socket.socket] | None:
    """The early connection to ``address``:``port``, taken (once), if one was started.

    Waits for nothing but the look-ups already done: an entry whose address is not
    known yet is not this one's (the probe resolves through :func:`lookup`, so its
    first address is known by the time it connects).
    """
    with _lock:
        for entry in _early:
            if entry.port != port or entry.protocol not in (None, protocol):
                continue
            if not entry.address.done():
                continue
            if entry.address.exception() is None and entry.address.result() == address:
                _early.remove(entry)
                return entry.connection
    return None


@atexit.register
def _close_unclaimed() -> None:
    with _lock:
        for entry in _early:
            if entry.connection.done() and entry.connection.exception() is None:
                entry.connection.result().close()
        _early.clear()
