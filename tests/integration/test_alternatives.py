"""The search for settings that answer, after a server failed as configured (issue 11).

A thousand accounts with the same wrong port cost one search, not a thousand; the
search ends as soon as its answer is known, not when its slowest port times out.
The servers are sockets on a loopback address of their own, on the standard SMTP
ports the search tries (465, 587, 25), so the tests need root; under ``CI`` they
always run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from dnslib import MX, QTYPE, RR, A  # type: ignore[import-untyped]  # no type info

import preflight
from fixtures.accounts import valid_payload
from fixtures.dns_server import DnsServer, Zone
from fixtures.pytest_support import unavailable
from fixtures.stack import Stack
from fixtures.threaded import threaded_server
from preflight.discover import suggest_alternatives
from preflight.options import CheckOptions

HOST = "127.0.0.55"  # no other test uses it (the foreign servers have .31-.46)
DOMAIN = "alternatives.test"
WRONG_PORT = 2525  # nothing listens there: connect_refused


@dataclass
class Ports:
    """465 accepts and never speaks; 587 greets in clear text (no STARTTLS) unless
    ``greet`` is off; 25 is closed. Counts the connections each port accepted."""

    greet: bool = True
    stop: threading.Event = field(default_factory=threading.Event)
    accepted: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, port: int, conn: socket.socket, stop: threading.Event) -> None:
        with self.lock:
            self.accepted[port] += 1
        with conn:
            conn.settimeout(0.2)
            if port == 587 and self.greet:
                conn.sendall(b"220 alternatives.test ESMTP\r\n")
            buffer = b""
            while not stop.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while port == 587 and b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    verb = line.split(b" ", 1)[0].upper()
                    if verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    conn.sendall(b"250-alternatives.test\r\n250 8BITMIME\r\n")


def _serve_port(ports: Ports, port: int, conn: socket.socket, _: object) -> None:
    ports.serve(port, conn, ports.stop)


@contextlib.contextmanager
def servers(*, greet: bool = True) -> Iterator[Ports]:
    if os.geteuid() != 0:
        unavailable("binding ports 465 and 587 needs root")
    ports = Ports(greet=greet)
    with contextlib.ExitStack() as running:
        for port in (465, 587):
            handle = functools.partial(_serve_port, ports, port)
            running.enter_context(threaded_server(handle, (HOST, port), backlog=64, join_timeout=5))
        try:
            yield ports
        finally:
            ports.stop.set()  # before the servers join their connections' threads


@pytest.fixture
def dns() -> Iterator[str]:
    records = {
        f"{DOMAIN}.": (RR(f"{DOMAIN}.", QTYPE.MX, rdata=MX(f"mx.{DOMAIN}.", 10), ttl=300),),
        f"mx.{DOMAIN}.": (RR(f"mx.{DOMAIN}.", QTYPE.A, rdata=A(HOST), ttl=300),),
        f"smtp.{DOMAIN}.": (RR(f"smtp.{DOMAIN}.", QTYPE.A, rdata=A(HOST), ttl=300),),
    }
    server = DnsServer(Zone(records=records, rcodes={}, dropped=()))
    host, port = server.start()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


def options(dns_server: str, **changes: object) -> CheckOptions:
    values: dict[str, object] = {
        "dns_server": dns_server,
        "resolve_hosts_with_dns_server": True,
        "check_imap": False,
        "check_domain": False,
        "timeout": 20,
    }
    values.update(changes)
    return CheckOptions(**values)  # type: ignore[arg-type]


def body(n: int) -> dict[str, object]:
    return {
        "from_name": f"A{n}",
        "from_email": f"a{n}@{DOMAIN}",
        "user_name": f"a{n}@{DOMAIN}",
        "password": "CANARY-alternatives",
        "smtp_host": f"smtp.{DOMAIN}",
        "smtp_port": WRONG_PORT,
        "imap_host": f"smtp.{DOMAIN}",
        "imap_port": 993,
        "warmup_enabled": False,
    }


EXPECTED = (
    f"{WRONG_PORT} refused the connection; smtp.{DOMAIN}:587 with no encryption answers "
    "(without encryption)."
)


@pytest.mark.asyncio
async def test_search_ends_when_its_answer_is_known(dns: str) -> None:
    """587 answers at once, 465 never speaks: the search names 587 without waiting
    for 465's timeout (20 s here), and every port it opened is closed when it returns."""
    with servers() as ports:
        started = time.monotonic()
        hint = await suggest_alternatives(
            "smtp",
            f"smtp.{DOMAIN}",
            WRONG_PORT,
            options=options(dns),
            code="connect_refused",
            addresses=(HOST,),
            timeout=20.0,
        )
        took = time.monotonic() - started
    assert hint == EXPECTED
    assert took < 10, f"the search waited {took:.1f} s for a port that never speaks"
    assert ports.accepted == Counter({465: 1, 587: 1})


@pytest.mark.asyncio
async def test_accounts_with_the_same_wrong_port_share_one_search(dns: str) -> None:
    """Eight accounts checked at once, all on smtp.alternatives.test:2525: each hint
    names 587, and the search behind them opened each other port once, not eight times."""
    with servers() as ports:
        reports = [
            r
            async for r in preflight.check_many(
                [body(n) for n in range(8)], options(dns), concurrency=8, per_host=8
            )
        ]
        again = [r async for r in preflight.check_many([body(9)], options(dns))]
    for report in reports:
        smtp = report.checks[2]
        assert (smtp.name, smtp.code) == ("smtp", preflight.Code.CONNECT_REFUSED)
        assert smtp.details["answers"] == EXPECTED
        assert smtp.hint is not None
        assert smtp.hint.endswith(EXPECTED)
    # One search for the first run, one for the second (a run shares, runs do not).
    assert ports.accepted == Counter({465: 2, 587: 2})
    assert again[0].checks[2].details["answers"] == EXPECTED


@pytest.mark.asyncio
async def test_an_account_waits_for_a_shared_search_no_longer_than_its_deadline(
    dns: str,
) -> None:
    """A shared search started by an account with time to spare does not hold an
    account whose deadline is near: that one is reported on time, without a hint."""
    from preflight.payload import parse_account
    from preflight.report import CheckResult, Status
    from preflight.runner import Shared, _with_alternatives

    with servers(greet=False):  # nothing answers: the search runs to its timeout
        run = Shared(options(dns))
        try:
            account = parse_account(body(0)).account
            assert account is not None
            code = preflight.Code.CONNECT_REFUSED
            failed = CheckResult("smtp", Status.FAIL, code, "refused", "hint", 1.0)
            # Another account's search, with 30 s to spare.
            other = run.alternatives("smtp", account, code, 30.0)
            loop = asyncio.get_running_loop()
            started = loop.time()
            result = await _with_alternatives(
                failed, "smtp", account, options(dns), run, started + 2.0
            )
            took = loop.time() - started
            assert result == failed  # no hint, on time, and the shared search goes on
            assert took < 2.0
            assert not other.done()
        finally:
            run.close()


@contextlib.asynccontextmanager
async def greeters(delays: tuple[float, ...]) -> AsyncIterator[list[int]]:
    """SMTP servers offering STARTTLS on loopback, one per delay, each greeting that
    late (the search only sees the offer: it never starts TLS)."""

    def serving(delay: float) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(delay)
            writer.write(b"220 greeter ESMTP\r\n")
            while line := await reader.readline():
                if line.upper().startswith(b"QUIT"):
                    writer.write(b"221 bye\r\n")
                    break
                writer.write(b"250-greeter\r\n250 STARTTLS\r\n")
            writer.close()

        return serve

    servers = [await asyncio.start_server(serving(d), "127.0.0.1", 0) for d in delays]
    try:
        yield [s.sockets[0].getsockname()[1] for s in servers]
    finally:
        for server in servers:
            server.close()


@pytest.mark.asyncio
async def test_among_equal_answers_the_one_tried_first_is_named(dns: str) -> None:
    """Two ports answer alike (both offer STARTTLS): the one listed first (587 before
    25; here a slow one before a quick one) is named, though the other answered first."""
    async with greeters((0.4, 0.0)) as (slow, quick):
        hint = await suggest_alternatives(
            "smtp",
            "127.0.0.1",
            1,
            options=options(dns),
            code="connect_refused",
            addresses=("127.0.0.1",),
            ports={"smtp": ((slow, "starttls"), (quick, "starttls")), "imap": ()},
        )
    assert hint == f"1 refused the connection; 127.0.0.1:{slow} with STARTTLS answers."


@pytest.mark.asyncio
async def test_a_mode_mismatch_tries_the_port_in_the_mode_not_used(stack: Stack) -> None:
    """465 checked with STARTTLS (--smtp-security starttls): the hint names 465 with
    SSL/TLS, the mode the check did not use, not 465 with STARTTLS again."""
    if "postfix" in stack.unavailable:
        pytest.skip(stack.unavailable["postfix"])
    host, port = stack.dns
    checked = CheckOptions(
        ca_file=str(stack.ca_file),
        dns_server=f"{host}:{port}",
        resolve_hosts_with_dns_server=True,
        smtp_security="starttls",
        check_imap=False,
        check_domain=False,
    )
    report = await preflight.check_account(valid_payload(stack, smtp_port=465), checked)
    smtp = report.checks[2]
    assert smtp.code is preflight.Code.TLS_MODE_MISMATCH
    assert smtp.details["answers"] == (
        f"465 speaks another security mode; {stack.mail_host}:465 with SSL/TLS answers."
    )
