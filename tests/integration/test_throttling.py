"""A server that throttles logins above N at once (issue 12: adaptive per-host limits).

The server is a clear-text SMTP server in threads on loopback that counts its open
sessions; a login while more than ``N`` sessions are open is answered as Gmail does,
``454 4.7.0 Too many login attempts, please try again later``. preflight starts at
``--per-host`` 10, halves the host's bound on the first throttling reply, and checks
each throttled account once more: every account ends checked, none throttled.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from dnslib import MX, QTYPE, RR, A  # type: ignore[import-untyped]  # no type info

import preflight
from fixtures.dns_server import DnsServer, Zone
from fixtures.threaded import threaded_server
from preflight.options import CheckOptions, Timeouts

DOMAIN = "throttle.test"
N = 3  # logins the server takes at once
PER_HOST = 10
HOLD = 0.3  # seconds a good login takes


@dataclass
class Throttling:
    """Counts open sessions; a login while more than ``N`` are open is refused."""

    open_now: int = 0
    throttled: int = 0
    logins: int = 0
    first_throttle: float | None = None
    #: (opened, closed, opened after the first throttling reply) of every session.
    sessions: list[tuple[float, float, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def settled(self) -> float:
        """When the last session begun before the first throttling reply ended."""
        ordered = sorted(self.sessions)
        return max(c for n, (_, c, after) in enumerate(ordered) if n < PER_HOST or not after)

    def most_at_once_after_the_first_throttle(self) -> int:
        """The most sessions open at once once the sessions begun before the first
        throttling reply have ended (the first PER_HOST sessions count as begun
        before it however late this server took them: the client opened them all
        before any reply; a loaded machine may accept them late)."""
        ordered = sorted(self.sessions)
        settled = self.settled()
        events = [(t, +1) for t, _, _ in ordered if t >= settled]
        events += [(c, -1) for t, c, _ in ordered if t < settled < c or t >= settled]
        events += [(settled, +1) for t, c, _ in ordered if t < settled < c]
        most = now = 0
        for _, step in sorted(events, key=lambda e: (e[0], e[1])):
            now += step
            most = max(most, now)
        return most

    def serve(self, conn: socket.socket) -> None:
        opened = time.monotonic()
        with self.lock:
            self.open_now += 1
            after = self.first_throttle is not None
        try:
            conn.settimeout(30)
            conn.sendall(b"220 throttle.test ESMTP\r\n")
            buffer = b""
            while chunk := conn.recv(4096):
                buffer += chunk
                while b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    verb = line.split(b" ", 1)[0].upper()
                    if verb == b"EHLO":
                        conn.sendall(b"250-throttle.test\r\n250 AUTH PLAIN LOGIN\r\n")
                    elif verb == b"AUTH":
                        with self.lock:
                            refuse = self.open_now > N
                            if refuse:
                                self.throttled += 1
                                if self.first_throttle is None:
                                    self.first_throttle = time.monotonic()
                            else:
                                self.logins += 1
                        if refuse:
                            conn.sendall(
                                b"454 4.7.0 Too many login attempts, please try again later.\r\n"
                            )
                        else:
                            time.sleep(HOLD)
                            conn.sendall(b"235 2.7.0 Accepted\r\n")
                    elif verb == b"QUIT":
                        conn.sendall(b"221 2.0.0 Bye\r\n")
                        return
                    else:
                        conn.sendall(b"250 2.0.0 OK\r\n")
        except OSError:
            pass
        finally:
            with self.lock:
                self.open_now -= 1
                self.sessions.append((opened, time.monotonic(), after))
            conn.close()


@contextlib.contextmanager
def throttling_server() -> Iterator[tuple[Throttling, int]]:
    state = Throttling()
    with threaded_server(lambda conn, _: state.serve(conn), join_timeout=10) as (port, _):
        yield state, port


@pytest.fixture
def dns() -> Iterator[str]:
    records = {
        f"{DOMAIN}.": (RR(f"{DOMAIN}.", QTYPE.MX, rdata=MX(f"mx.{DOMAIN}.", 10), ttl=300),),
        f"mx.{DOMAIN}.": (RR(f"mx.{DOMAIN}.", QTYPE.A, rdata=A("127.0.0.1"), ttl=300),),
    }
    server = DnsServer(Zone(records=records, rcodes={}, dropped=()))
    host, port = server.start()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


def body(n: int, port: int) -> dict[str, object]:
    return {
        "from_name": f"T{n}",
        "from_email": f"t{n}@{DOMAIN}",
        "user_name": f"t{n}@{DOMAIN}",
        "password": "CANARY-throttle",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "imap_host": "127.0.0.1",
        "imap_port": port,
        "warmup_enabled": False,
    }


def options(dns_server: str, **changes: object) -> CheckOptions:
    values: dict[str, object] = {
        "dns_server": dns_server,
        "smtp_security": "plain",
        "allow_plaintext_auth": True,
        "check_imap": False,
        "check_domain": False,
        "timeout": 20,
        "timeouts": Timeouts(sniff_after=60),
        "throttle_retry": 0.3,
    }
    values.update(changes)
    return CheckOptions(**values)  # type: ignore[arg-type]


async def run(dns_server: str, port: int, count: int, **changes: object) -> list[object]:
    return [
        r
        async for r in preflight.check_many(
            [body(n, port) for n in range(count)],
            options(dns_server, **changes),
            concurrency=count,
            per_host=PER_HOST,
        )
    ]


@pytest.mark.asyncio
async def test_throttled_accounts_are_checked_again_within_a_lower_bound(dns: str) -> None:
    """30 accounts at --per-host 10 against a server that takes 3 logins at once: every
    account passes (the throttled ones on their second try), and once the server has
    throttled, it never again sees more than N + 1 sessions at once."""
    with throttling_server() as (server, port):
        reports = await run(dns, port, 30)
    smtp = [r.checks[2] for r in reports]  # type: ignore[attr-defined]
    assert server.throttled > 0, "the server never throttled: the test proves nothing"
    assert [c.code for c in smtp] == [preflight.Code.OK] * 30
    assert server.logins == 30
    assert any(after for _, _, after in server.sessions), "no session after the first throttle"
    later = [opened for opened, _, _ in server.sessions if opened >= server.settled()]
    assert len(later) >= 5, "too few sessions after the first ones ended: nothing measured"
    assert server.most_at_once_after_the_first_throttle() <= N + 1


@pytest.mark.asyncio
async def test_without_the_retry_throttling_is_reported(dns: str) -> None:
    """--throttle-retry 0 (None here): the throttled accounts are reported at once, with
    the throttling code and the server's reply; the others pass."""
    with throttling_server() as (server, port):
        reports = await run(dns, port, 12, throttle_retry=None)
    codes = [r.checks[2].code for r in reports]  # type: ignore[attr-defined]
    assert server.throttled == codes.count(preflight.Code.AUTH_THROTTLED) > 0
    assert codes.count(preflight.Code.OK) == server.logins
    throttled = next(
        r.checks[2]  # type: ignore[attr-defined]
        for r in reports
        if r.checks[2].code is preflight.Code.AUTH_THROTTLED  # type: ignore[attr-defined]
    )
    assert "Too many login attempts" in throttled.message
