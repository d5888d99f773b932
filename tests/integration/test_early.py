"""A cold start's connection opened before the libraries load (preflight._early).

The command line looks up the first account's server and connects to it in a thread
while asyncio, TLS and the protocol clients import; the probe takes that socket
instead of connecting again. What must hold: the server sees one connection per
protocol, not two; the probe's session runs on the early socket; a refused early
connection is reported exactly as a refused connection always is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from fixtures.threaded import threaded_server
from preflight import _early
from preflight._net import ConnectFailure, open_socket
from preflight._resolver import _resolve_system

CANARY = "CANARY-early-9d2"


@dataclass
class Server:
    """A clear-text SMTP server that takes any login; records its clients' ports."""

    peers: list[int] = field(default_factory=list)
    logins: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        with self.lock:
            self.peers.append(peer[1])
        with conn:
            conn.settimeout(10)
            conn.sendall(b"220 early.test ESMTP\r\n")
            buffer = b""
            try:
                while chunk := conn.recv(4096):
                    buffer += chunk
                    while b"\r\n" in buffer:
                        line, buffer = buffer.split(b"\r\n", 1)
                        verb = line.split(b" ", 1)[0].upper()
                        if verb == b"EHLO":
                            conn.sendall(b"250-early.test\r\n250 AUTH PLAIN\r\n")
                        elif verb == b"AUTH":
                            with self.lock:
                                self.logins += 1
                            conn.sendall(b"235 2.7.0 Accepted\r\n")
                        elif verb == b"QUIT":
                            conn.sendall(b"221 2.0.0 Bye\r\n")
                            return
                        else:
                            conn.sendall(b"250 2.0.0 OK\r\n")
            except OSError:
                pass


@contextlib.contextmanager
def server() -> Iterator[tuple[Server, int]]:
    state = Server()
    with threaded_server(state.serve, join_timeout=10) as (port, _):
        yield state, port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.asyncio
async def test_the_probe_takes_the_early_socket() -> None:
    """start() looks up and connects; the look-up is the probes' look-up, and
    open_socket() returns the early socket itself: one connection, from its port."""
    with server() as (state, port):
        _early.start("localhost", port, 5.0)
        addresses = await _resolve_system("localhost")
        assert addresses[0] in ("127.0.0.1", "::1")
        if addresses[0] != "127.0.0.1":
            pytest.skip("localhost resolves to IPv6 first here")
        sock = await open_socket(addresses, port, 5.0)
        try:
            assert sock.getblocking() is False
            local_port = sock.getsockname()[1]
            greeting = await asyncio.get_running_loop().sock_recv(sock, 100)
        finally:
            sock.close()
        assert greeting.startswith(b"220 early.test")
        assert state.peers == [local_port]
        assert _early.claim("127.0.0.1", port) is None  # taken once


@pytest.mark.asyncio
async def test_a_refused_early_connection_is_reported_as_refused() -> None:
    port = free_port()
    _early.start("127.0.0.1", port, 5.0)
    with pytest.raises(ConnectFailure) as failure:
        await open_socket(("127.0.0.1",), port, 5.0)
    assert failure.value.code.value == "connect_refused"


def run_check(port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "preflight",
            "check",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--smtp-security",
            "plain",
            "--allow-plaintext-auth",
            "--user",
            "early@example.com",
            "--password-env",
            "EARLY_PW",
            "--no-domain-check",
            "--no-blocklist-check",
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EARLY_PW": CANARY},
        check=False,
    )


def test_the_command_connects_once() -> None:
    """`preflight check --host ...` (a cold start): one connection to the server, the
    login on it, the report as usual, and the password nowhere in the output."""
    with server() as (state, port):
        done = run_check(port)
    assert CANARY not in done.stdout + done.stderr
    import json

    smtp = json.loads(done.stdout)["accounts"][0]["checks"][2]
    assert (smtp["name"], smtp["code"]) == ("smtp", "ok"), smtp
    assert len(state.peers) == 1
    assert state.logins == 1


def test_the_command_reports_a_refused_port_as_before() -> None:
    port = free_port()
    done = run_check(port)
    import json

    smtp = json.loads(done.stdout)["accounts"][0]["checks"][2]
    assert (smtp["code"], done.returncode) == ("connect_refused", 1)
    assert f"connection to port {port} refused" in smtp["message"]


@pytest.mark.asyncio
async def test_a_failed_early_look_up_is_the_probes_to_report() -> None:
    """A name that does not resolve: the early look-up's error is the one the probe's
    look-up raises (as the system resolver would), and nothing is claimed."""
    _early.start("no-such-host.invalid", 587, 5.0)
    with pytest.raises(socket.gaierror):
        await _resolve_system("no-such-host.invalid")
    assert await _early.take("127.0.0.1", 587) is None
