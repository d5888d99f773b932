"""Bulk checks: bounds per host, shared DNS answers, streaming, Ctrl-C, leaks, bad servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dnslib import MX, QTYPE, RR, A  # type: ignore[import-untyped]  # no type info

import preflight
from fixtures.dns_server import CountingZone, DnsServer
from fixtures.threaded import threaded_server
from preflight.options import CheckOptions, Timeouts

DOMAIN = "bulk.test"


@pytest.fixture
def dns() -> Iterator[tuple[str, CountingZone]]:
    records = {
        f"{DOMAIN}.": (RR(f"{DOMAIN}.", QTYPE.MX, rdata=MX(f"mx.{DOMAIN}.", 10), ttl=300),),
        f"mx.{DOMAIN}.": (RR(f"mx.{DOMAIN}.", QTYPE.A, rdata=A("127.0.0.1"), ttl=300),),
        f"smtp.{DOMAIN}.": (RR(f"smtp.{DOMAIN}.", QTYPE.A, rdata=A("127.0.0.1"), ttl=300),),
    }
    zone = CountingZone(records=records, rcodes={}, dropped=())
    server = DnsServer(zone)
    host, port = server.start()
    try:
        yield f"{host}:{port}", zone
    finally:
        server.stop()


class Behaviour:
    SILENT = "silent"  # accepts, never speaks
    SLOW = "slow"  # one byte a second
    CLOSE = "close"  # hangs up at once
    REJECT = "reject"  # greets, refuses every login
    HOLD = "hold"  # greets after a pause, then hangs up


@dataclass
class Stub:
    """A plain-text SMTP-ish server in a thread, counting connections at once."""

    behaviour: str
    pause: float = 0.3
    open_now: int = 0
    most_at_once: int = 0
    accepted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, conn: socket.socket) -> None:
        with self.lock:
            self.accepted += 1
            self.open_now += 1
            self.most_at_once = max(self.most_at_once, self.open_now)
        try:
            conn.settimeout(30)
            if self.behaviour == Behaviour.SILENT:
                conn.recv(1)
            elif self.behaviour == Behaviour.SLOW:
                for byte in b"220 slow\r\n":
                    conn.sendall(bytes([byte]))
                    time.sleep(1)
            elif self.behaviour == Behaviour.HOLD:
                time.sleep(self.pause)
            elif self.behaviour == Behaviour.REJECT:
                conn.sendall(b"220 stub ESMTP\r\n")
                buffer = b""
                while chunk := conn.recv(4096):
                    buffer += chunk
                    while b"\r\n" in buffer:
                        line, buffer = buffer.split(b"\r\n", 1)
                        verb = line.split(b" ", 1)[0].upper()
                        if verb == b"EHLO":
                            conn.sendall(b"250-stub\r\n250 AUTH PLAIN\r\n")
                        elif verb == b"AUTH":
                            conn.sendall(b"535 5.7.8 no\r\n")
                        elif verb == b"QUIT":
                            conn.sendall(b"221 bye\r\n")
                            return
                        else:
                            conn.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            with self.lock:
                self.open_now -= 1
            conn.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition`` became true within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@contextlib.contextmanager
def stub_server(behaviour: str, pause: float = 0.3) -> Iterator[tuple[Stub, int]]:
    stub = Stub(behaviour, pause)
    with threaded_server(lambda conn, _: stub.serve(conn), backlog=512) as (port, _):
        yield stub, port


def body(n: int, port: int, imap_port: int | None = None, **changes: Any) -> dict[str, Any]:
    data = {
        "from_name": f"S{n}",
        "from_email": f"s{n}@{DOMAIN}",
        "user_name": f"s{n}@{DOMAIN}",
        "password": "CANARY-bulk",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "imap_host": "127.0.0.1",
        "imap_port": imap_port or port,
        "warmup_enabled": False,
    }
    data.update(changes)
    return data


def plain(dns_server: str, **changes: Any) -> CheckOptions:
    values: dict[str, Any] = {
        "dns_server": dns_server,
        "resolve_hosts_with_dns_server": True,
        "smtp_security": "plain",
        "imap_security": "plain",
        "allow_plaintext_auth": True,
        "check_imap": False,
        "timeout": 5,
        "timeouts": Timeouts(sniff_after=60, greeting=60, command=60, connect=60),
    }
    values.update(changes)
    return CheckOptions(**values)


@pytest.mark.asyncio
async def test_per_host_bound(dns: tuple[str, CountingZone]) -> None:
    """500 accounts on one server never hold more than --per-host connections to it."""
    server, _ = dns
    with stub_server(Behaviour.HOLD, pause=0.2) as (stub, port):
        reports = [
            r
            async for r in preflight.check_many(
                [body(n, port) for n in range(30)],
                plain(server),
                concurrency=30,
                per_host=3,
            )
        ]
    assert len(reports) == 30
    assert stub.accepted == 30
    assert stub.most_at_once == 3


@pytest.mark.asyncio
async def test_dns_answers_shared_across_accounts(dns: tuple[str, CountingZone]) -> None:
    """An MX and a host address are looked up once per run while the TTL holds."""
    server, zone = dns
    with stub_server(Behaviour.REJECT) as (_, port):
        accounts = [body(n, port, smtp_host=f"smtp.{DOMAIN}") for n in range(40)]
        reports = [r async for r in preflight.check_many(accounts, plain(server))]
    assert {r.check("smtp").code for r in reports} == {preflight.Code.AUTH_FAILED}
    assert {r.check("mx").code for r in reports} == {preflight.Code.OK}
    assert zone.asked[(DOMAIN, "MX")] == 1
    assert zone.asked[(f"smtp.{DOMAIN}", "A")] == 1


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.asyncio
async def test_no_descriptor_leak_over_many_checks(dns: tuple[str, CountingZone]) -> None:
    """Thousands of checks (refused, rejected, closed early) leave no descriptor open."""
    server, _ = dns
    count = int(os.environ.get("PREFLIGHT_FD_TEST_ACCOUNTS", "3000"))
    with stub_server(Behaviour.REJECT) as (_, reject), stub_server(Behaviour.CLOSE) as (_, close):
        closed = socket.create_server(("127.0.0.1", 0))
        refused = closed.getsockname()[1]
        closed.close()
        ports = [reject, close, refused]
        before = open_fds()
        done = 0
        async for report in preflight.check_many(
            (body(n, ports[n % 3]) for n in range(count)),
            plain(server),
            concurrency=50,
            per_host=50,
        ):
            done += 1
            assert report.check("smtp").status is preflight.Status.FAIL
        # Transports close in callbacks the event loop runs next: let them run.
        await asyncio.sleep(0.2)
        after = open_fds()
    assert done == count
    assert after - before <= 2  # the run's resolver may keep one socket cached


def test_misbehaving_servers_every_report_within_deadline(
    dns: tuple[str, CountingZone],
) -> None:
    """A bulk run where 10% of servers are silent, slow or hang up: one report per
    account, each within its deadline (+1 s). Full size (10,000) in bench/."""
    server, _ = dns
    count = int(os.environ.get("PREFLIGHT_FAULT_TEST_ACCOUNTS", "600"))
    deadline = 3.0  # generous: good accounts must finish even on a busy 2-core machine
    with (
        stub_server(Behaviour.REJECT) as (_, good),
        stub_server(Behaviour.SILENT) as (_, silent),
        stub_server(Behaviour.SLOW) as (_, slow),
        stub_server(Behaviour.CLOSE) as (_, close),
    ):
        bad = [silent, slow, close]
        ports = [bad[n // 10 % 3] if n % 10 == 0 else good for n in range(count)]

        async def run() -> list[preflight.AccountReport]:
            return [
                r
                async for r in preflight.check_many(
                    [body(n, p) for n, p in enumerate(ports)],
                    plain(server, timeout=deadline),
                    concurrency=100,
                    per_host=100,
                )
            ]

        reports = asyncio.run(run())
    assert sorted(r.index for r in reports) == list(range(count))
    for report in reports:
        for check in report.checks:
            assert check.elapsed_ms <= (deadline + 1) * 1000, (report.index, check)
    codes = Counter(r.check("smtp").code.value for r in reports)
    assert codes["auth_failed"] == count - count // 10
    assert codes["greeting_timeout"] + codes["timeout"] + codes["protocol_error"] == count // 10


def write_accounts(path: Path, bodies: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "preflight", "check", *args]


def plain_flags(server: str) -> list[str]:
    return [
        "--dns-server",
        server,
        "--dns-for-hosts",
        "--smtp-security",
        "plain",
        "--allow-plaintext-auth",
        "--timeout",
        "10",
    ]


def test_ctrl_c_keeps_finished_reports_and_exits_130(
    dns: tuple[str, CountingZone], tmp_path: Path
) -> None:
    """SIGINT mid-run: no new work, connections closed, finished reports kept, exit 130."""
    server, _ = dns
    with stub_server(Behaviour.HOLD, pause=0.5) as (stub, port):
        accounts = write_accounts(tmp_path / "a.jsonl", [body(n, port) for n in range(40)])
        output = tmp_path / "out.jsonl"
        proc = subprocess.Popen(
            cli(
                str(accounts),
                "--format",
                "jsonl",
                "--output",
                str(output),
                "--concurrency",
                "4",
                "--per-host",
                "4",
                *plain_flags(server),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # The reports go to a temporary file beside --output until the run ends.
            partial = list(tmp_path.glob(".out.jsonl.*.tmp"))
            if partial and partial[0].read_text().count("\n") >= 6:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15)
        accepted_at_stop = stub.accepted
        # The run has exited: it starts nothing more, but a connection it opened just
        # before may still wait in the listen queue. One of our own, queued behind it,
        # tells when the stub has taken them all; then every session ends (HOLD).
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            assert wait_until(lambda: stub.accepted > accepted_at_stop)
        assert wait_until(lambda: stub.open_now == 0)  # every connection closed
        assert stub.accepted == accepted_at_stop + 1  # ours: nothing new started
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert "Interrupted" in stderr
    assert not list(tmp_path.glob(".out.jsonl.*.tmp"))
    lines = output.read_text().splitlines()
    reports = [json.loads(line) for line in lines]  # every line is a whole report
    assert 6 <= len(reports) < 40
    assert stdout == ""


def test_ctrl_c_json_document_stays_valid(dns: tuple[str, CountingZone], tmp_path: Path) -> None:
    """With --format json an interrupted run still writes one valid document, marked so."""
    server, _ = dns
    with stub_server(Behaviour.HOLD, pause=0.5) as (stub, port):
        accounts = write_accounts(tmp_path / "a.jsonl", [body(n, port) for n in range(40)])
        proc = subprocess.Popen(
            cli(
                str(accounts),
                "--format",
                "json",
                "--concurrency",
                "4",
                "--per-host",
                "4",
                *plain_flags(server),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        # Four at a time: a ninth connection means the first four accounts are done.
        while stub.accepted < 9 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=15)
    assert proc.returncode == 130
    document = json.loads(stdout)
    assert document["interrupted"] is True
    assert document["ok"] is False
    assert 0 < len(document["accounts"]) < 40


def read_pty(fd: int, proc: subprocess.Popen[bytes]) -> str:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("no_color", [False, True])
def test_progress_line_on_a_terminal_only(
    dns: tuple[str, CountingZone], tmp_path: Path, no_color: bool
) -> None:
    """A terminal on stderr gets a progress line (done/total, pass/fail, rate); NO_COLOR none."""
    server, _ = dns
    with stub_server(Behaviour.REJECT) as (_, port):
        accounts = write_accounts(tmp_path / "a.jsonl", [body(n, port) for n in range(12)])
        primary, secondary = pty.openpty()
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        if no_color:
            env["NO_COLOR"] = "1"
        # Standard output to a file, not a pipe: a pipe nobody reads while the pty is
        # read fills up (64 KiB) and blocks the reports' writer.
        with (tmp_path / "out.jsonl").open("wb") as out:
            proc = subprocess.Popen(
                cli(str(accounts), "--format", "jsonl", *plain_flags(server)),
                stdout=out,
                stderr=secondary,
                env=env,
            )
            os.close(secondary)
            terminal = read_pty(primary, proc)
            proc.wait(timeout=30)
        os.close(primary)
        stdout = (tmp_path / "out.jsonl").read_bytes()
    assert proc.returncode == 1
    assert len(stdout.splitlines()) == 12
    if no_color:
        assert "checked" not in terminal
    else:
        assert "checked 12/12: 0 passed, 12 failed" in terminal
        assert "/s" in terminal


def test_text_summary_counts_per_code(dns: tuple[str, CountingZone], tmp_path: Path) -> None:
    """The text report ends with one line per code: '12  auth_failed'."""
    server, _ = dns
    with stub_server(Behaviour.REJECT) as (_, port):
        accounts = write_accounts(tmp_path / "a.jsonl", [body(n, port) for n in range(12)])
        done = subprocess.run(
            cli(str(accounts), *plain_flags(server)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert "12 accounts: 0 passed, 12 failed" in done.stdout
    assert "    12  auth_failed" in done.stdout
