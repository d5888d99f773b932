"""A TCP/UDP proxy that adds a fixed delay in each direction: netem in user space.

    python bench/latency_proxy.py --delay-ms 20 \\
        --tcp 127.0.0.1:0=127.0.0.11:587 --tcp 127.0.0.1:0=127.0.0.11:993 \\
        --udp 127.0.0.1:0=127.0.0.1:5353

``tc netem`` is not available on these kernels, so the benchmarks put this between
the clients and the local servers. Each ``--tcp``/``--udp`` is ``LISTEN=TARGET``
(``HOST:PORT``, ``[V6]:PORT``; port 0 picks a free one). Once listening it prints one
JSON line, ``{"tcp": [[host, port], ...], "udp": [...]}`` in the order given, and
runs until standard input closes or it is terminated.

It counts the TCP connections it has open to each server, as the server sees them
(from the upstream connect until the client's end of stream reaches the server or
the server ends its side, whichever comes first): a line ``stats`` on standard input makes it
print one JSON line, ``{"tcp": [{"listen": [host, port], "open": n, "peak": n,
"connections": n}, ...], "hosts": {host: {...}}, "all": {...}}``: per listener in the
order given, per listening address (all its ports: one "server host"), and over
everything. ``peak`` is the most open at once and ``connections`` how many were
opened, both since the previous ``stats`` (each ``stats`` starts a new count).

The model, per connection (one delay D each way, so one round trip is 2 D):

- every chunk read from one side is written to the other D later, in order
  (no bandwidth limit: chunks in flight overlap); end of stream likewise;
- the TCP handshake is charged as on a real network: the kernel accepts at once (the
  client's ``connect`` returns at 0, not one round trip later), so the proxy opens
  the upstream connection 3 D after accepting (when the client's ACK would reach the
  server: a server that speaks first, as SMTP and IMAP do, is heard two round trips
  after connecting), and what the client sends before it has heard anything (a TLS
  ClientHello) is held one round trip longer than the rest (it could not have left
  before the handshake was done). Each connection thus costs what it costs on a real
  network with that RTT;
- a refused upstream connection closes the client's connection (no RST emulation);
- UDP: each datagram is forwarded D later, each reply D later (one upstream socket
  per client address).

Delays are kept with the event loop's clock, to about a millisecond on an idle
machine; a busy proxy adds its own queueing delay, the same for every client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Count", "LatencyProxy", "parse_address"]

_CHUNK = 65536


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port)
    host, _, port = text.rpartition(":")
    return host, int(port)


@dataclass
class Count:
    """Connections open to a server: now, the most at once, and how many were opened."""

    open: int = 0
    peak: int = 0
    connections: int = 0

    def opened(self) -> None:
        self.open += 1
        self.connections += 1
        self.peak = max(self.peak, self.open)

    def closed(self) -> None:
        self.open -= 1

    def take(self) -> dict[str, int]:
        """The counts so far; then a new count begins (peak from what is open now)."""
        counts = {"open": self.open, "peak": self.peak, "connections": self.connections}
        self.peak, self.connections = self.open, 0
        return counts


class _Pipe:
    """One direction of one connection: read, hold for the delay, write, in order.

    End of stream is passed on (half-close) after the delay too; a reset, or a
    write that fails, aborts both sides so that no server is left waiting.
    """

    def __init__(
        self, delay: float, reader: asyncio.StreamReader, early: Callable[[], float] | None = None
    ) -> None:
        self.delay = delay
        self.reader = reader
        #: Extra delay for a chunk read now (the client's, before its handshake is done).
        self.early = early
        # (when to write, data): b"" is end of stream, None a reset.
        self.queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

    async def pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await self.reader.read(_CHUNK)
                extra = self.early() if self.early is not None else 0.0
                self.queue.put_nowait((loop.time() + self.delay + extra, data))
                if not data:
                    return
        except OSError:
            self.queue.put_nowait((loop.time() + self.delay, None))

    async def drain(
        self,
        writer: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
        wrote: Callable[[], None] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await self.queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    raise ConnectionResetError
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                if wrote is not None:
                    wrote()
                await writer.drain()
        except (OSError, RuntimeError):
            writer.transport.abort()
            other.transport.abort()


class _UdpUpstream(asyncio.DatagramProtocol):
    def __init__(self, reply: Callable[[bytes], None], delay: float) -> None:
        self.reply = reply
        self.delay = delay

    def datagram_received(self, data: bytes, addr: Any) -> None:
        asyncio.get_running_loop().call_later(self.delay, self.reply, data)


class _UdpFront(asyncio.DatagramProtocol):
    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay
        self.transport: asyncio.DatagramTransport | None = None
        self.upstreams: dict[Any, asyncio.Future[asyncio.DatagramTransport]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        upstream = self.upstreams.get(addr)
        if upstream is None:
            upstream = asyncio.ensure_future(self._open(addr))
            self.upstreams[addr] = upstream

        def send(opened: asyncio.Future[asyncio.DatagramTransport]) -> None:
            if not opened.cancelled() and opened.exception() is None:
                opened.result().sendto(data)

        # Opening a local socket takes no time; the datagram still leaves D later.
        loop.call_later(self.delay, upstream.add_done_callback, send)

    async def _open(self, client: Any) -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()

        def reply(data: bytes) -> None:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.sendto(data, client)

        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpUpstream(reply, self.delay), remote_addr=self.target
        )
        return transport

    def close(self) -> None:
        for future in self.upstreams.values():
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().close()


class LatencyProxy:
    """Delaying forwarders in the running event loop; ``close()`` stops them."""

    def __init__(self, delay_ms: float) -> None:
        self.delay = delay_ms / 1000
        self._servers: list[asyncio.base_events.Server] = []
        self._udp: list[tuple[asyncio.DatagramTransport, _UdpFront]] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._listeners: list[tuple[tuple[str, int], Count]] = []
        self._hosts: dict[str, Count] = {}
        self._all = Count()

    def stats(self) -> dict[str, Any]:
        """Connections open to the servers, per listener, per listening address and
        overall, since the previous call (see :class:`Count`)."""
        return {
            "tcp": [{"listen": list(listen), **count.take()} for listen, count in self._listeners],
            "hosts": {host: count.take() for host, count in self._hosts.items()},
            "all": self._all.take(),
        }

    async def tcp(self, listen: tuple[str, int], target: tuple[str, int]) -> tuple[str, int]:
        """Forward TCP connections to ``listen`` to ``target``; returns the bound address."""

        counts: list[Count] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                await self._connection(reader, writer, target, counts)
            except asyncio.CancelledError:
                pass  # close(): asyncio's streams would log a cancelled handler
            finally:
                self._connections.discard(task)

        server = await asyncio.start_server(handle, *listen, backlog=1024)
        self._servers.append(server)
        host, port = server.sockets[0].getsockname()[:2]
        mine = Count()
        self._listeners.append(((host, port), mine))
        counts += [mine, self._hosts.setdefault(host, Count()), self._all]
        return host, port

    async def _connection(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        target: tuple[str, int],
        counts: list[Count],
    ) -> None:
        sock = client_writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        heard = False  # whether the client has received a byte yet

        def early() -> float:
            return 0.0 if heard else 2 * self.delay

        def first_byte() -> None:
            nonlocal heard
            heard = True

        upward = _Pipe(self.delay, client_reader, early)
        pump_up = asyncio.ensure_future(upward.pump())  # the client may speak first (TLS)
        server_writer: asyncio.StreamWriter | None = None
        counted = False

        def release() -> None:
            # The server's session is over once either side's end of stream reaches it
            # or leaves it: not when the proxy has finished relaying what is left.
            nonlocal counted
            if counted:
                counted = False
                for count in counts:
                    count.closed()

        async def then_release(step: Awaitable[None]) -> None:
            try:
                await step
            finally:
                release()

        try:
            await asyncio.sleep(3 * self.delay)  # SYN, SYN-ACK, then the ACK reaches it
            try:
                server_reader, server_writer = await asyncio.open_connection(*target)
            except OSError:
                return
            for count in counts:
                count.opened()
            counted = True
            upstream_sock = server_writer.get_extra_info("socket")
            if upstream_sock is not None:
                upstream_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            downward = _Pipe(self.delay, server_reader)
            await asyncio.gather(
                pump_up,
                then_release(upward.drain(server_writer, client_writer)),
                then_release(downward.pump()),
                downward.drain(client_writer, server_writer, first_byte),
                return_exceptions=True,
            )
        finally:
            pump_up.cancel()
            for writer in (client_writer, server_writer):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(OSError, RuntimeError):
                        await writer.wait_closed()
            release()

    async def udp(self, listen: tuple[str, int], target: tuple[str, int]) -> tuple[str, int]:
        """Forward datagrams to ``listen`` to ``target`` and back; returns the bound address."""
        loop = asyncio.get_running_loop()
        front = _UdpFront(target, self.delay)
        transport, _ = await loop.create_datagram_endpoint(lambda: front, local_addr=listen)
        self._udp.append((transport, front))
        host, port = transport.get_extra_info("sockname")[:2]
        return host, port

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        for transport, front in self._udp:
            front.close()
            transport.close()


async def _serve(args: argparse.Namespace) -> None:
    proxy = LatencyProxy(args.delay_ms)
    bound: dict[str, list[tuple[str, int]]] = {"tcp": [], "udp": []}
    for spec in args.tcp:
        listen, _, target = spec.partition("=")
        bound["tcp"].append(await proxy.tcp(parse_address(listen), parse_address(target)))
    for spec in args.udp:
        listen, _, target = spec.partition("=")
        bound["udp"].append(await proxy.udp(parse_address(listen), parse_address(target)))
    print(json.dumps(bound), flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def command(line: str) -> None:
        if line.strip() == "stats":
            print(json.dumps(proxy.stats()), flush=True)

    def read_commands() -> None:
        # Standard input closing (the parent went away) also stops the proxy.
        for line in sys.stdin:
            loop.call_soon_threadsafe(command, line)
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read_commands, daemon=True).start()
    await stop.wait()
    await proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0, help="delay each way")
    parser.add_argument("--tcp", action="append", default=[], metavar="LISTEN=TARGET")
    parser.add_argument("--udp", action="append", default=[], metavar="LISTEN=TARGET")
    args = parser.parse_args()
    asyncio.run(_serve(args))
    # The thread blocked reading standard input would keep the interpreter alive.
    sys.stdout.flush()
    import os

    os._exit(0)


if __name__ == "__main__":
    main()
