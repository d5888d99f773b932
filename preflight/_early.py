"""A cold start's first packets, sent before the libraries that use them are loaded.

``preflight check one.json`` spends its first few hundred milliseconds importing
(asyncio, ssl, dnspython, the protocol clients) and loading the CA store. The first
network steps of a check need none of that: the server host's address (the system
resolver) and a TCP connection to it. :func:`start` does both in a thread, once the
payload is known to be valid, so that they are under way while the imports run;
the probe then takes the connected socket (:func:`claim`) instead of connecting
again, and the address look-up is the same one (:func:`lookup`). A server that
speaks first (SMTP, IMAP's greeting) has answered by the time the probe reads.

Only the command line uses it, for the first account of its input, and only with
the system resolver: with ``--dns-for-hosts`` the probes resolve through dnspython
as before. A connection nobody claims is closed when the process ends.
"""

from __future__ import annotations

import atexit
import socket
import threading
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

__all__ = ["claim", "lookup", "start", "take"]


@dataclass
class _Early:
    port: int
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


def start(host: str, port: int, timeout: float) -> None:
    """Look up ``host`` and connect to its first address on ``port``, in a thread."""
    key = host.lower()
    entry = _Early(port)
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
            sock.setblocking(False)
            if not _settle(entry.connection, sock):
                sock.close()

    threading.Thread(target=work, name=f"preflight-early-{key}:{port}", daemon=True).start()


def lookup(host: str) -> Future[tuple[str, ...]] | None:
    """The addresses :func:`start` is finding for ``host`` (system resolver), if any."""
    with _lock:
        return _lookups.get(host.lower())


async def take(address: str, port: int) -> socket.socket | None:
    """The early connection to ``address``:``port`` (see :func:`claim`): the connected
    non-blocking socket, None when none was started; raises what connecting raised."""
    import asyncio  # loaded by now: only the probes call this

    with _lock:
        candidates = [entry for entry in _early if entry.port == port]
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


def claim(address: str, port: int) -> Future[socket.socket] | None:
    """The early connection to ``address``:``port``, taken (once), if one was started.

    Waits for nothing but the look-ups already done: an entry whose address is not
    known yet is not this one's (the probe resolves through :func:`lookup`, so its
    first address is known by the time it connects).
    """
    with _lock:
        for entry in _early:
            if entry.port != port or not entry.address.done():
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
