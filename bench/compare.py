"""preflight against what people run today, over a network with latency (issue 12).

    bash bench/run                                  # from a clean clone, as root
    .venv/bin/python bench/compare.py [--preflight bench/out/venv/bin/preflight]
        [--delay-ms 20] [--high-delay-ms 50] [--runs 10] [--spread-accounts 300]
        [--accounts 1000] [--per-host 5,10,20] [--sample 10]
        [--skip-one] [--skip-spread] [--skip-concentrated] [--skip-startup] [--skip-memory]

Needs root (Postfix on port 587 is part of the test stack only as root) and mount
namespaces (``unshare --mount``). Starts the test stack, a DNS server whose zone
points ``mail.preflight.test`` at the proxy's first address and ``mail0`` ..
``mail9.preflight.test`` at ten more, and ``bench/latency_proxy.py`` on those
127.53.0.N addresses (53/udp on the first, 587 and 993 on each, all forwarding to the
one Postfix and the one Dovecot), delaying every chunk by the delay in each
direction and charging each TCP handshake as a real network does. The whole run
happens in a private mount namespace whose ``/etc/resolv.conf`` names the proxy, so
every client resolves names its usual way (glibc for swaks, curl, smtplib and
preflight's host names; dnspython reading resolv.conf for preflight's MX check),
through the same delayed DNS; nothing outside the namespace changes. Ports are the
real ones: 587 means STARTTLS and 993 implicit TLS for every client, certificates are
verified against the test CA (the server certificate names every host used).

The ``preflight`` command is measured as users install it: ``--preflight`` (by
default ``bench/out/venv/bin/preflight``, which ``bench/run`` builds with ``pip
install .``: not editable, bytecode compiled at install). The in-process rows import
preflight into this interpreter.

Measures, in one run:

1. one account (DNS + SMTP 587 STARTTLS + AUTH + IMAP 993 LOGIN + EXAMINE), medians
   of ``--runs``, at 0 ms, ``--delay-ms`` and ``--high-delay-ms`` each way:
   ``preflight check one.json``, ``check --host ... --user ... --password-env ...``
   and ``check -`` (standard input) as whole processes against swaks then curl;
   preflight in-process against smtplib then imaplib;
2. round trips of each client: (wall at the delay - wall at 0) / RTT, against the
   floor counted step by step (printed);
3. start-up (``bench/startup.py``: ``--help``, ``validate one.json``, ``check`` of an
   invalid payload, against ``python -c pass``);
4. bulk, spread: ``--spread-accounts`` accounts over ten server hosts (each an SMTP
   and an IMAP server), preflight at its defaults against the 8-thread stdlib pool
   (``bench/stdlib_check.py``);
5. bulk, concentrated: ``--accounts`` accounts on one host, preflight at each
   ``--per-host``, the stdlib pool, and swaks then curl on the first ``--sample``
   accounts (extrapolated); for each, the most connections the server had open at
   once (counted by the proxy), wall, throughput and CPU seconds;
6. peak memory (``bench/memory.py``).

Ends with one markdown table: each measurement, its target, PASS or MISS and by how
much, then why for each miss.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Final

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import stdlib_check  # noqa: E402
from dnslib import QTYPE, RR, A  # type: ignore[import-untyped]  # noqa: E402

import fixtures.stack  # noqa: E402
from fixtures.certs import server_names  # noqa: E402
from fixtures.dns_server import DnsServer, Zone, build_zone  # noqa: E402
from fixtures.stack import Stack, start_stack  # noqa: E402

#: Set inside the private mount namespace: the proxy's loopback addresses, comma
#: separated: mail.preflight.test (and DNS) first, then one per spread server host.
NAMESPACE_ENV = "PREFLIGHT_BENCH_ADDRESSES"
MAIL_HOST = "mail.preflight.test"
#: The spread workload's server hosts: each an SMTP (587) and an IMAP (993) server.
SPREAD_HOSTS = tuple(f"mail{n}.preflight.test" for n in range(10))
NO_DOMAIN = "no-such-domain.test"
CLOSED_PORT = 465  # nothing listens on the proxy's addresses there
THREADS = 8
INSTALLED = ROOT / "bench" / "out" / "venv" / "bin" / "preflight"
PASSWORD_ENV = "PREFLIGHT_BENCH_PASSWORD"

#: Whole-process speed-up against swaks then curl, per delay each way (ms).
WHOLE_TARGET = {"low": 1.8, "high": 2.2}
SPREAD_TARGET = 5.0

# The fewest round trips for one account, step by step. The proxy charges the TCP
# handshake as a real network does, so these are also the counts through it.
FLOOR_SMTP = [
    ("DNS: A+AAAA of the SMTP host, in parallel (the MX look-up runs alongside)", 1),
    ("TCP handshake (SYN, SYN-ACK; the ACK travels with the client's first bytes)", 1),
    ("220 greeting (the client must wait for it, RFC 5321 4.3.1)", 1),
    ("EHLO (must end a pipelined group, RFC 2920)", 1),
    ("STARTTLS -> 220 (must end a group, RFC 3207)", 1),
    ("TLS 1.3 handshake (the client's Finished travels with the next EHLO)", 1),
    ("EHLO again (what was offered before TLS is void, RFC 3207)", 1),
    ("AUTH PLAIN with the initial response -> 235 (RFC 4954)", 1),
    ("QUIT: sent, its reply not awaited", 0),
]
FLOOR_IMAP = [
    ("DNS: A+AAAA of the IMAP host (the same name: the same look-up)", 1),
    ("TCP handshake", 1),
    ("TLS 1.3 handshake (the ClientHello leaves with the handshake's ACK)", 1),
    ("* OK greeting (sent once the server has the client's Finished)", 1),
    ("LOGIN and EXAMINE INBOX pipelined (RFC 3501 5.5)", 1),
    ("LOGOUT: sent, its reply not awaited", 0),
]
FLOOR = sum(trips for _, trips in FLOOR_SMTP)
#: The target for preflight's slowest path (issue 12): the floor and half a round trip.
ROUND_TRIPS_TARGET = FLOOR + 0.5


# --- the namespace -------------------------------------------------------------------


def _free(address: str) -> bool:
    """Whether 53/udp, 587 and 993 are free on ``address``."""
    sockets = []
    try:
        for kind, port in (
            (socket.SOCK_DGRAM, 53),
            (socket.SOCK_STREAM, 587),
            (socket.SOCK_STREAM, 993),
        ):
            sock = socket.socket(socket.AF_INET, kind)
            sockets.append(sock)
            sock.bind((address, port))
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()
    return True


def enter_namespace() -> int:
    """Run this script again in a private mount namespace whose resolv.conf names
    the proxy's address; return its exit status."""
    if os.geteuid() != 0:
        sys.exit(
            "bench/compare.py needs root: Postfix (port 587) runs only as root, and the "
            "proxy binds ports 53, 587 and 993. Run: sudo bash bench/run"
        )
    if shutil.which("unshare") is None:
        sys.exit("bench/compare.py needs unshare (util-linux): apt-get install util-linux")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(
            "bench/compare.py runs its clients in a private mount namespace (its own "
            f"/etc/resolv.conf), and unshare --mount failed here: {probe.stderr.strip()}"
        )
    wanted = 1 + len(SPREAD_HOSTS)
    addresses: list[str] = []
    for n in range(1, 250):
        if len(addresses) == wanted:
            break
        if _free(f"127.53.0.{n}"):
            addresses.append(f"127.53.0.{n}")
    if len(addresses) < wanted:
        sys.exit(f"fewer than {wanted} free addresses among 127.53.0.1-249 (ports 53, 587, 993)")
    with tempfile.TemporaryDirectory(prefix="preflight-bench-") as tmp:
        resolv = Path(tmp) / "resolv.conf"
        resolv.write_text(f"nameserver {addresses[0]}\noptions timeout:5 attempts:1\n")
        argv = [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
            str(resolv), sys.executable, str(Path(__file__).resolve()), *sys.argv[1:],
        ]  # fmt: skip
        try:
            return subprocess.call(argv, env={**os.environ, NAMESPACE_ENV: ",".join(addresses)})
        except KeyboardInterrupt:
            return 130


def cover_spread_hosts() -> None:
    """Have the test stack's server certificate name the spread hosts too.

    The fixtures issue one certificate (signed by the test CA) for every name in
    ``fixtures.stack.server_names``: ``mail.preflight.test``, localhost and the
    stack's addresses. The spread workload reaches the same Postfix and Dovecot as
    ``mail0`` .. ``mail9.preflight.test``, so those names are added before the stack
    starts; verification stays on for every client.
    """

    def names(*addresses: str) -> tuple[str, ...]:
        return (*server_names(*addresses), *SPREAD_HOSTS)

    vars(fixtures.stack)["server_names"] = names  # what _start_local_mail_in_slot calls


def check_certificate(stack: Stack) -> None:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(stack.certs.server.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    missing = set(SPREAD_HOSTS) - set(names.get_values_for_type(x509.DNSName))
    if missing:
        sys.exit(
            f"the test stack's certificate does not name {sorted(missing)}: fixtures/stack.py "
            "no longer takes its names from server_names (see cover_spread_hosts)"
        )


def bench_zone(addresses: Sequence[str]) -> Zone:
    """The test zone, ``mail.preflight.test`` at the first address and each spread
    host at one of the others."""
    zone = build_zone(mail_address=addresses[0])
    records = dict(zone.records)
    for host, address in zip(SPREAD_HOSTS, addresses[1:], strict=True):
        owner = host + "."
        records[owner] = (RR(owner, QTYPE.A, rdata=A(address), ttl=60),)
    return dataclasses.replace(zone, records=MappingProxyType(records))


# --- running things --------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child
    code: int
    system: float = 0.0  # of cpu, the kernel's part
    #: Times the child went to sleep waiting (voluntary context switches): each is a
    #: wake-up later, and a wake-up costs CPU beyond the work it wakes for.
    sleeps: int = 0


def run_command(
    argv: list[str],
    stdout: Any = None,
    stdin: IO[bytes] | None = None,
    env: dict[str, str] | None = None,
) -> Ran:
    """Run a command; its wall time, CPU time (wait4) and exit status."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    errors = proc.stderr.read()  # small; read before waiting so the child never blocks
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode not in (0, 1) and not argv[0].endswith(("swaks", "curl")):
        sys.stderr.write(errors.decode(errors="replace")[-2000:])
    return Ran(
        wall, usage.ru_utime + usage.ru_stime, proc.returncode, usage.ru_stime, usage.ru_nvcsw
    )


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (/proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [float(t) for t in stat.readline().split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def busy_since(before: tuple[float, float]) -> float:
    """The machine's CPU use since ``before``, 0-1 (every core counted)."""
    busy, total = machine_cpu()
    return (busy - before[0]) / max(total - before[1], 1.0)


class Proxy:
    """``bench/latency_proxy.py``: 53/udp, 587 and 993 on the first address, 587 and
    993 on the others, with ``delay_ms`` each way."""

    def __init__(
        self, addresses: Sequence[str], delay_ms: float, stack: Stack, dns: tuple[str, int]
    ) -> None:
        smtp, imap = stack.smtp["starttls"], stack.imap["ssl"]
        argv = [sys.executable, str(BENCH / "latency_proxy.py"), "--delay-ms", str(delay_ms),
                "--udp", f"{addresses[0]}:53={dns[0]}:{dns[1]}"]  # fmt: skip
        for address in addresses:
            argv += ["--tcp", f"{address}:587={smtp.host}:{smtp.port}",
                     "--tcp", f"{address}:993={imap.host}:{imap.port}"]  # fmt: skip
        self.names = {
            addresses[0]: MAIL_HOST,
            **dict(zip(addresses[1:], SPREAD_HOSTS, strict=True)),
        }
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        if not self.process.stdout.readline():
            raise RuntimeError("the latency proxy did not start (see its error above)")

    def stats(self) -> dict[str, Any]:
        """Connections to the servers since the previous call (latency_proxy.py)."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        stats: dict[str, Any] = json.loads(self.process.stdout.readline())
        return stats

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.terminate()
        self.process.wait(10)


@contextmanager
def latency(
    addresses: Sequence[str], delay_ms: float, stack: Stack, dns: tuple[str, int]
) -> Iterator[Proxy]:
    proxy = Proxy(addresses, delay_ms, stack, dns)
    try:
        yield proxy
    finally:
        proxy.close()


def account(user: str, password: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from_name": "Bench",
        "from_email": user,
        "user_name": user,
        "password": password,
        "smtp_host": MAIL_HOST,
        "smtp_port": 587,
        "imap_host": MAIL_HOST,
        "imap_port": 993,
        "warmup_enabled": False,
    }
    body.update(changes)
    return body


def swaks_argv(body: dict[str, Any], ca_file: Path) -> list[str]:
    return [
        "swaks", "--server", f"{body['smtp_host']}:{body['smtp_port']}", "--tls",
        "--tls-verify", "--tls-ca-path", str(ca_file),
        "--auth", "PLAIN", "--auth-user", body["user_name"], "--auth-password", body["password"],
        "--from", body["from_email"], "--to", body["from_email"],
        "--quit-after", "AUTH", "--timeout", "10", "--silent", "2",
    ]  # fmt: skip


def curl_argv(body: dict[str, Any], ca_file: Path) -> list[str]:
    return [
        "curl", "--silent", "--show-error", "--max-time", "10", "--cacert", str(ca_file),
        "--user", f"{body['user_name']}:{body['password']}",
        f"imaps://{body['imap_host']}:{body['imap_port']}/", "--request", "EXAMINE INBOX",
    ]  # fmt: skip


def installed_command(path: str) -> str:
    """``path``, after checking that it runs this tree's preflight, installed."""
    command = Path(path).absolute()
    if not command.exists():
        sys.exit(
            f"{path} does not exist: bash bench/run builds it (python3 -m venv bench/out/venv "
            "&& bench/out/venv/bin/pip install .), or pass --preflight PATH"
        )
    python = command.with_name("python")
    where = subprocess.run(
        [str(python), "-c", "import os, preflight; print(os.path.dirname(preflight.__file__))"],
        capture_output=True, text=True, check=False, cwd="/",
    ).stdout.strip()  # fmt: skip
    package = Path(where) if where else None
    if package is None or package == ROOT / "preflight":
        sys.exit(f"{path} is not a (non-editable) installed preflight: {where or 'no package'}")
    source = ROOT / "preflight"
    ours = {f.relative_to(source) for f in source.rglob("*.py")}
    theirs = {f.relative_to(package) for f in package.rglob("*.py")}
    stale = sorted(
        (ours ^ theirs)
        | {f for f in ours & theirs if (package / f).read_bytes() != (source / f).read_bytes()}
    )
    if stale:
        sys.exit(
            f"{path} runs another version of preflight than this tree ({len(stale)} files "
            f"differ, e.g. {stale[0]}): bash bench/run reinstalls it"
        )
    return str(command)


# --- 1 and 2: one account -----------------------------------------------------------------


@dataclass
class OneAccount:
    """Wall times (s) per client, by delay each way (s)."""

    times: dict[str, dict[float, list[float]]] = field(default_factory=dict)
    tls: str = ""
    #: CPU seconds (user + system, all threads) of each whole-process run, by delay.
    cpu: dict[str, dict[float, list[float]]] = field(default_factory=dict)
    #: One `check one.json` per delay, in JSON: (wall ms, {check: elapsed_ms}).
    timeline: dict[float, tuple[float, dict[str, float]]] = field(default_factory=dict)

    def median(self, client: str, delay: float) -> float:
        return statistics.median(self.times[client][delay])

    def round_trips(self, client: str, delay: float) -> float:
        return (self.median(client, delay) - self.median(client, 0.0)) / (2 * delay)


CLIENTS = {
    "preflight": "preflight, in-process (check_account)",
    "stdlib": "stdlib smtplib then imaplib, in-process",
    "cmd_file": "`preflight check one.json`",
    "cmd_flags": "`preflight check --host ... --password-env ...`",
    "cmd_stdin": "`preflight check -` (standard input)",
    "swaks_curl": "`swaks` then `curl`",
}
COMMANDS = ("cmd_file", "cmd_flags", "cmd_stdin")


def one_account(
    result: OneAccount,
    delay: float,
    stack: Stack,
    runs: int,
    workdir: Path,
    runner: asyncio.Runner,
    command: str,
    also: str | None = None,
) -> None:
    from preflight.options import CheckOptions
    from preflight.runner import check_account

    user, password = stack.credentials()
    body = account(user, password)
    one = workdir / "one.json"
    one.write_text(json.dumps(body))
    assert stack.ca_file is not None
    ca = stack.ca_file
    options = CheckOptions(ca_file=str(ca))
    context = ssl.create_default_context()
    context.load_verify_locations(str(ca))
    env = {**os.environ, PASSWORD_ENV: password}

    def preflight() -> None:
        report = runner.run(check_account(body, options))
        assert report.ok, [(c.name, c.code.value, c.message) for c in report.checks]
        smtp = report.check("smtp").details
        imap = report.check("imap").details
        result.tls = f"SMTP {smtp.get('tls_version')}, IMAP {imap.get('tls_version')}"

    def stdlib() -> None:
        outcome = stdlib_check.check_account(body, context, stdlib_check.Resolver())
        assert outcome == ("ok", "ok"), outcome

    def checked(ran: Ran, what: str) -> float:
        assert ran.code == 0, f"{what} exited {ran.code}"
        result.cpu.setdefault(what, {}).setdefault(delay, []).append(ran.cpu)
        return ran.wall

    def cmd_file() -> float:
        return checked(run_command([command, "check", str(one), "--ca-file", str(ca)]), "cmd_file")

    def cmd_flags() -> float:
        argv = [command, "check", "--host", MAIL_HOST, "--port", "587", "--imap-host", MAIL_HOST,
                "--imap-port", "993", "--user", user, "--password-env", PASSWORD_ENV,
                "--ca-file", str(ca)]  # fmt: skip
        return checked(run_command(argv, env=env), "cmd_flags")

    def cmd_stdin() -> float:
        with one.open("rb") as stdin:
            ran = run_command([command, "check", "-", "--ca-file", str(ca)], stdin=stdin)
        return checked(ran, "cmd_stdin")

    def cmd_also() -> float:
        assert also is not None
        ran = run_command([also, "check", str(one), "--ca-file", str(ca)])
        return checked(ran, "cmd_also")

    def swaks_curl() -> float:
        smtp = run_command(swaks_argv(body, ca))
        imap = run_command(curl_argv(body, ca))
        assert (smtp.code, imap.code) == (0, 0), f"swaks {smtp.code}, curl {imap.code}"
        return smtp.wall + imap.wall

    def timed(call: Callable[[], object]) -> Callable[[], float]:
        def run() -> float:
            started = time.perf_counter()
            call()
            return time.perf_counter() - started

        return run

    measure: dict[str, Callable[[], float]] = {
        "preflight": timed(preflight),
        "stdlib": timed(stdlib),
        "cmd_file": cmd_file,
        "cmd_flags": cmd_flags,
        "cmd_stdin": cmd_stdin,
        "swaks_curl": swaks_curl,
    }
    if also is not None:
        measure["cmd_also"] = cmd_also
    for run in measure.values():
        run()  # warm up: imports, page cache
    for _ in range(runs):  # interleaved, so that noise spreads over every client
        for name, run in measure.items():
            result.times.setdefault(name, {}).setdefault(delay, []).append(run())
    # Where one whole process's time goes: each check's own time (from the moment it
    # starts, after the imports it needs), against the process's wall time.
    out = workdir / "one-report.json"
    with out.open("wb") as report:
        ran = run_command(
            [command, "check", str(one), "--ca-file", str(ca), "--format", "json"], stdout=report
        )
    checks = json.loads(out.read_text())["accounts"][0]["checks"]
    result.timeline[delay] = (
        ran.wall * 1000,
        {c["name"]: c["elapsed_ms"] for c in checks if c["status"] != "skip"},
    )


def print_floor() -> None:
    print("\nthe floor: fewest round trips one account's check allows, per path (the proxy")
    print("charges the TCP handshake, so these are the counts on a real network and through it)")
    for title, steps in (("SMTP 587 (STARTTLS, AUTH)", FLOOR_SMTP), ("IMAP 993", FLOOR_IMAP)):
        print(f"  {title}")
        for step, trips in steps:
            print(f"    {step:<80} {trips:>3}")
        print(f"    {'total':<80} {sum(t for _, t in steps):>3}")
    print(
        f"  slowest path: SMTP, {FLOOR} round trips; the MX and sending-domain look-ups (1) "
        f"run alongside.\n  Target for preflight (issue 12): at most the floor + 0.5 = "
        f"{ROUND_TRIPS_TARGET:g}."
    )


def print_one(result: OneAccount, delays: Sequence[float]) -> None:
    shown = [d for d in delays if d > 0]
    print("\n1. one account, medians (ms) at 0 ms and at each delay each way; round trips = "
          "(wall - wall at 0) / RTT")  # fmt: skip
    head = "".join(f" {f'{d * 1000:g} ms':>8}" for d in delays)
    trips = "".join(f" {f'RTT@{2 * d * 1000:g}':>8}" for d in shown)
    print(f"  {'client':<50}{head}{trips}")
    for name, label in CLIENTS.items():
        walls = "".join(f" {result.median(name, d) * 1000:>8.0f}" for d in delays)
        rts = "".join(f" {result.round_trips(name, d):>8.1f}" for d in shown)
        print(f"  {label:<50}{walls}{rts}")
    for delay in shown:
        base = result.median("swaks_curl", delay)
        ratios = ", ".join(
            f"{CLIENTS[c]} {base / result.median(c, delay):.2f}x" for c in ("preflight", *COMMANDS)
        )
        print(f"  faster than swaks then curl at RTT {2 * delay * 1000:g} ms: {ratios}")
        if "cmd_also" in CLIENTS:
            other = result.median("cmd_also", delay) / result.median("cmd_file", delay)
            print(f"  this build's `check one.json` against --also's at RTT "
                  f"{2 * delay * 1000:g} ms: {other:.3f}x faster")  # fmt: skip
    print(f"  TLS used: {result.tls}")
    print("  CPU of each whole process (ms, user + system, every thread; medians):")
    for name, by_delay in result.cpu.items():
        cpus = ", ".join(
            f"{d * 1000:g} ms each way {statistics.median(v) * 1000:.0f}"
            for d, v in by_delay.items()
        )
        print(f"    {CLIENTS[name]:<50} {cpus}")
    print("  one `check one.json` per delay: wall, and each check's own time (ms; a check's "
          "clock starts once the modules it needs are loaded)")  # fmt: skip
    for delay, (wall, checks) in sorted(result.timeline.items()):
        each = ", ".join(f"{name} {ms:.0f}" for name, ms in checks.items())
        print(f"    {delay * 1000:g} ms each way: wall {wall:.0f}; {each}")


# --- 4 and 5: bulk -----------------------------------------------------------------------

KINDS = ["good"] * 7 + ["wrong_password", "closed_port", "no_domain"]

# What each kind must come back as: preflight (mx, smtp, imap), stdlib (smtp, imap).
EXPECTED_PREFLIGHT = {
    "good": ("ok", "ok", "ok"),
    "wrong_password": ("ok", "auth_failed", "auth_failed"),
    "closed_port": ("ok", "connect_refused", "ok"),
    "no_domain": ("dns_nxdomain", "host_not_found", "host_not_found"),
}
EXPECTED_STDLIB = {
    "good": ("ok", "ok"),
    "wrong_password": ("auth_failed", "auth_failed"),
    "closed_port": ("connect_refused", "ok"),
    "no_domain": ("host_not_found", "host_not_found"),
}


def bulk_accounts(
    count: int, users: dict[str, str], hosts: Sequence[str] = (MAIL_HOST,)
) -> list[tuple[str, dict[str, Any]]]:
    """``count`` accounts of the mix (7 in 10 good, ...), on ``hosts`` in turn (every
    host gets every kind)."""
    names = sorted(users)
    accounts = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        user = names[i % len(names)]
        host = hosts[(i + i // len(KINDS)) % len(hosts)]
        body = account(user, users[user], from_name=f"Bench {i}", smtp_host=host, imap_host=host)
        if kind == "wrong_password":
            body["password"] = "not-the-password"
        elif kind == "closed_port":
            body["smtp_port"] = CLOSED_PORT
        elif kind == "no_domain":
            local = user.split("@")[0]
            body.update(from_email=f"{local}@{NO_DOMAIN}", smtp_host=f"mail.{NO_DOMAIN}",
                        imap_host=f"mail.{NO_DOMAIN}")  # fmt: skip
        accounts.append((kind, body))
    return accounts


@dataclass
class BulkRun:
    label: str
    accounts: int
    ran: Ran
    mismatches: int
    note: str = ""
    busy: float | None = None  # the whole machine's CPU use during the run, 0-1
    stats: dict[str, Any] | None = None  # the proxy's counts (latency_proxy.py)
    account_s: float | None = None  # mean time of one account's check (preflight's reports)
    names: dict[str, str] = field(default_factory=dict)  # proxy address -> host name
    per_host: int | None = None  # preflight's --per-host in this run
    workload: str = ""
    #: CPU seconds the latency proxy used during the run (one process, one core at most).
    proxy_cpu: float | None = None
    #: The mean time (s) of each check that ran, from the reports.
    check_times: dict[str, float] = field(default_factory=dict)

    def most_per_host(self) -> tuple[int, int]:
        """The most SMTP and the most IMAP connections open at once to one host."""
        listeners = self.stats["tcp"] if self.stats is not None else []
        return (
            max((t["peak"] for t in listeners if t["listen"][1] == 587), default=0),
            max((t["peak"] for t in listeners if t["listen"][1] == 993), default=0),
        )

    @property
    def rate(self) -> float:
        return self.accounts / self.ran.wall

    def at_once(self) -> str:
        """The most connections the servers had open at once, as the proxy counted."""
        if self.stats is None:
            return "-"
        hosts = self.stats["hosts"]
        listeners = self.stats["tcp"]
        if len(hosts) == 0:
            return "-"
        busiest = max(hosts, key=lambda h: (hosts[h]["peak"], h))
        smtp = max((t["peak"] for t in listeners if t["listen"][0] == busiest and
                    t["listen"][1] == 587), default=0)  # fmt: skip
        imap = max((t["peak"] for t in listeners if t["listen"][0] == busiest and
                    t["listen"][1] == 993), default=0)  # fmt: skip
        used = sum(1 for h in hosts.values() if h["connections"])
        return (
            f"{hosts[busiest]['peak']} on one host (SMTP {smtp}, IMAP {imap})"
            if used <= 1
            else f"{hosts[busiest]['peak']} on the busiest host, "
            f"{self.names.get(busiest, busiest)} (SMTP {smtp}, IMAP {imap}), "
            f"{self.stats['all']['peak']} on {used} hosts together"
        )


LOGINS: Final = ("smtp", "imap")


def _outcomes(
    kinds: list[str], lines: list[str], preflight: bool
) -> tuple[int, Counter[str], float | None, dict[str, float]]:
    """Mismatches against the expected outcomes, the commonest ones, and (preflight)
    the mean time of an account's check and of each check that ran (seconds)."""
    seen: Counter[str] = Counter()
    wrong = 0
    got: dict[int, tuple[str, ...]] = {}
    times: list[float] = []
    each: dict[str, list[float]] = {}
    for line in lines:
        record = json.loads(line)
        if preflight:
            codes = {c["name"]: c["code"] for c in record["checks"]}
            got[record["index"]] = (codes["mx"], codes["smtp"], codes["imap"])
            # An account's own time: its logins (the DNS checks' results are shared by
            # the run's accounts, with the time of the first one that looked them up).
            own = [c.get("elapsed_ms") or 0.0 for c in record["checks"] if c["name"] in LOGINS]
            times.append(max(own, default=0.0) / 1000)
            for c in record["checks"]:
                if c["status"] != "skip":
                    each.setdefault(c["name"], []).append((c.get("elapsed_ms") or 0.0) / 1000)
        else:
            got[record["index"]] = (record["smtp"], record["imap"])
    expected = EXPECTED_PREFLIGHT if preflight else EXPECTED_STDLIB
    for index, kind in enumerate(kinds):
        outcome = got.get(index)
        if outcome != expected[kind]:
            wrong += 1
            seen[f"{kind}: {outcome}"] += 1
    means = {name: statistics.fmean(values) for name, values in each.items()}
    return wrong, seen, (statistics.fmean(times) if times else None), means


def _report_mismatches(label: str, seen: Counter[str]) -> None:
    for what, times in seen.most_common(5):
        print(f"  ! {label}: {times} x unexpected outcome {what}", file=sys.stderr)


def bulk(
    name: str,
    accounts: list[tuple[str, dict[str, Any]]],
    variants: list[tuple[str, list[str], str]],
    command: str,
    stack: Stack,
    proxy: Proxy,
    workdir: Path,
    per_host: int | None,
    sample: int = 0,
) -> list[BulkRun]:
    """Each preflight variant, then the stdlib pool, then (``sample``) swaks then curl."""
    assert stack.ca_file is not None
    ca = str(stack.ca_file)
    count = len(accounts)
    kinds = [kind for kind, _ in accounts]
    path = workdir / f"{name}.jsonl"
    path.write_text("".join(json.dumps(body) + "\n" for _, body in accounts))
    runs: list[BulkRun] = []
    for label, flags, note in variants:
        print(f"    {label} ...", flush=True)
        out = workdir / f"{name}-preflight-{len(runs)}.jsonl"
        proxy.stats()  # a new count
        before = machine_cpu()
        proxy_before = process_cpu(proxy.process.pid)
        with out.open("w") as sink:
            ran = run_command(
                [command, "check", "--format", "jsonl", "--ca-file", ca, *flags, str(path)], sink
            )
        busy = busy_since(before)
        proxy_cpu = process_cpu(proxy.process.pid) - proxy_before
        stats = proxy.stats()
        outcome = _outcomes(kinds, out.read_text().splitlines(), preflight=True)
        wrong, seen, account_s, check_times = outcome
        bound = int(flags[flags.index("--per-host") + 1]) if "--per-host" in flags else per_host
        runs.append(
            BulkRun(
                label, count, ran, wrong, note, busy, stats, account_s, proxy.names, bound, name,
                proxy_cpu, check_times,
            )
        )  # fmt: skip
        _report_mismatches(label, seen)
    print(f"    stdlib, {THREADS} threads ...", flush=True)
    out = workdir / f"{name}-stdlib.jsonl"
    proxy.stats()
    before = machine_cpu()
    proxy_before = process_cpu(proxy.process.pid)
    with out.open("w") as sink:
        ran = run_command(
            [sys.executable, str(BENCH / "stdlib_check.py"), str(path), "--ca-file", ca,
             "--threads", str(THREADS)], sink,
        )  # fmt: skip
    busy = busy_since(before)
    proxy_cpu = process_cpu(proxy.process.pid) - proxy_before
    stats = proxy.stats()
    wrong, seen, _, _ = _outcomes(kinds, out.read_text().splitlines(), preflight=False)
    note = f"{THREADS} threads, smtplib then imaplib, 10 s socket timeout"
    runs.append(BulkRun(f"stdlib, ThreadPoolExecutor({THREADS})", count, ran, wrong, note, busy,
                        stats, None, proxy.names, proxy_cpu=proxy_cpu))  # fmt: skip
    _report_mismatches("stdlib", seen)
    if sample <= 0:
        return runs

    # swaks then curl, one account after the other, as a shell loop would.
    print(f"    swaks then curl, first {sample} ...", flush=True)
    wall = cpu = 0.0
    wrong = 0
    for kind, body in accounts[:sample]:
        smtp = run_command(swaks_argv(body, stack.ca_file))
        imap = run_command(curl_argv(body, stack.ca_file))
        wall += smtp.wall + imap.wall
        cpu += smtp.cpu + imap.cpu
        expect_smtp_ok = kind == "good"
        expect_imap_ok = kind in ("good", "closed_port")
        if (smtp.code == 0) != expect_smtp_ok or (imap.code == 0) != expect_imap_ok:
            wrong += 1
    scale = count / sample
    runs.append(BulkRun(
        f"swaks then curl, loop (first {sample}, x{scale:g})", count,
        Ran(wall * scale, cpu * scale, 0), wrong,
        f"measured on {sample} accounts ({wall:.1f} s), extrapolated",
    ))  # fmt: skip
    return runs


def print_bulk(title: str, runs: list[BulkRun]) -> None:
    print(f"\n{title}")
    base = next(r for r in runs if r.label.startswith("stdlib"))
    print(
        f"  {'client':<48} {'wall s':>7} {'acc/s':>6} {'x pool':>6} {'CPU s':>6}"
        f" {'CPU ms/acc':>10} {'sys %':>5} {'sleeps/acc':>10} {'machine':>7} {'wrong':>5}"
        "  most connections open at once"
    )
    for run in runs:
        busy = f"{run.busy * 100:.0f}%" if run.busy is not None else "-"
        print(
            f"  {run.label:<48} {run.ran.wall:>7.1f} {run.rate:>6.1f} {run.rate / base.rate:>6.2f}"
            f" {run.ran.cpu:>6.1f} {run.ran.cpu / run.accounts * 1000:>10.2f}"
            f" {run.ran.system / run.ran.cpu * 100 if run.ran.cpu else 0:>5.0f}"
            f" {run.ran.sleeps / run.accounts:>10.1f} {busy:>7}"
            f" {run.mismatches:>5}  {run.at_once()}"
        )
        if run.note:
            print(f"      {run.note}")
        if run.account_s is not None:
            print(
                f"      one account's check took {run.account_s:.2f} s on average: "
                f"{run.rate * run.account_s:.1f} accounts in flight on average"
            )
        if run.check_times:
            each = ", ".join(f"{k} {v:.2f}" for k, v in run.check_times.items())
            print(f"      each check's own time (s, mean): {each}")
        if run.proxy_cpu is not None and run.ran.wall > 0:
            print(
                f"      the latency proxy used {run.proxy_cpu / run.ran.wall * 100:.0f}% of one "
                "core meanwhile (one process: 100% would make it the bottleneck)"
            )
    print(
        "  CPU s: the client's own (user + system); machine: the whole machine's CPU use "
        f"during the run ({os.cpu_count()} cores = 100%): client, proxy, Postfix, Dovecot.\n"
        "  Most connections open at once: counted by the proxy, as the servers see them "
        "(each a login)."
    )
    failures = sum(1 for r in KINDS if r == "wrong_password") * base.accounts // len(KINDS)
    print(
        f"  Dovecot answers a failed login after ~0.5 s (Postfix's SMTP AUTH too: it asks "
        f"Dovecot): ~{failures} accounts with a wrong password cost preflight ~0.5 s each "
        f"(SMTP and IMAP side by side), the pool ~1 s (one after the other)."
    )


def option_default(help_text: str, option: str) -> int | None:
    """An integer option's default, from ``preflight check --help``."""
    found = re.search(re.escape(option) + r"\b.*?\[default:\s*(\d+)", help_text, re.DOTALL)
    return int(found[1]) if found else None


# --- 3 and 6: the existing scripts -------------------------------------------------------


def run_script(name: str, args: list[str]) -> str:
    print(f"\n== bench/{name} {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, str(BENCH / name), *args], capture_output=True, text=True, check=False
    )
    print(done.stdout, end="")
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    return done.stdout


def parse_startup(text: str) -> dict[str, float]:
    medians = {}
    for line in text.splitlines():
        found = re.match(r"^(.+?)\s{2,}([\d.]+)\s+([\d.]+)\s+([\d.]+)$", line)
        if found:
            medians[found[1].strip()] = float(found[2])
    return medians


def parse_memory(text: str) -> dict[str, tuple[float, float, float]]:
    peaks = {}
    for line in text.splitlines():
        found = re.match(r"^(jsonl|json array|csv)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s", line)
        if found:
            peaks[found[1]] = (float(found[2]), float(found[3]), float(found[4]))
    return peaks


# --- the summary -------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} x {model} (nproc {os.cpu_count()}), {platform.system()} " + (
        platform.release()
    )


def verdict(ok: bool, short: str) -> str:
    return "PASS" if ok else f"MISS: {short}"


Row = tuple[str, str, str, str, str]


def summary_one(args: argparse.Namespace, one: OneAccount, rows: list[Row], why: list[str]) -> None:
    delays = {"low": args.delay_ms / 1000, "high": args.high_delay_ms / 1000}
    for level, delay in delays.items():
        if delay <= 0:
            continue
        rtt_ms = 2 * delay * 1000
        target = WHOLE_TARGET[level]
        sc = one.median("swaks_curl", delay)
        for client in COMMANDS:
            pre = one.median(client, delay)
            ratio = sc / pre
            rows.append((
                f"1. one account, RTT {rtt_ms:g} ms: {CLIENTS[client]} vs `swaks` then `curl`",
                f"{pre * 1000:.0f} ms", f"{sc * 1000:.0f} ms",
                f">= {target:g}x faster",
                verdict(ratio >= target,
                        f"{ratio:.2f}x; {target:g}x needs <= {sc / target * 1000:.0f} ms"),
            ))  # fmt: skip
            if ratio < target:
                inproc = one.median("preflight", delay)
                extra = pre - inproc
                extra_0 = one.median(client, 0.0) - one.median("preflight", 0.0)
                budget = sc / target - inproc
                why.append(
                    f"{CLIENTS[client]} at RTT {rtt_ms:g} ms, {ratio:.2f}x: {target:g}x needs "
                    f"<= {sc / target * 1000:.0f} ms. The same check in-process (the network "
                    f"path, {one.round_trips('preflight', delay):.1f} round trips) takes "
                    f"{inproc * 1000:.0f} ms, "
                    + (
                        f"so the process may add at most {budget * 1000:.0f} ms; it adds "
                        if budget >= 0
                        else f"already {-budget * 1000:.0f} ms over: the network path must "
                        "shrink first; the process adds "
                    )
                    + f"{extra * 1000:.0f} ms "
                    f"({extra_0 * 1000:.0f} ms with no latency: interpreter start-up, imports, "
                    f"reading the input, the report), where swaks then curl take "
                    f"{one.median('swaks_curl', 0.0) * 1000:.0f} ms with no latency at all. "
                    f"The process uses {statistics.median(one.cpu[client][delay]) * 1000:.0f} "
                    "ms of CPU (user + system, every thread; a floor on its wall time "
                    "with one core busy at a time, most of it imports). "
                    f"In-process, the ratio is {sc / inproc:.2f}x."
                )
        inproc = one.median("preflight", delay)
        rows.append((
            f"1. one account, RTT {rtt_ms:g} ms: preflight in-process vs `swaks` then `curl`",
            f"{inproc * 1000:.0f} ms", f"{sc * 1000:.0f} ms", "-",
            f"{sc / inproc:.2f}x faster",
        ))  # fmt: skip
    for delay in delays.values():
        if delay <= 0:
            continue
        rtt_ms = 2 * delay * 1000
        trips = one.round_trips("preflight", delay)
        rows.append((
            f"2. one account, RTT {rtt_ms:g} ms: round trips, preflight in-process "
            "(slowest path SMTP 587)",
            f"{trips:.2f} ({one.median('preflight', delay) * 1000:.0f} ms)",
            f"floor {FLOOR}", f"<= floor + 0.5 = {ROUND_TRIPS_TARGET:g}",
            verdict(trips <= ROUND_TRIPS_TARGET, f"{trips - ROUND_TRIPS_TARGET:.2f} over"),
        ))  # fmt: skip
        if trips > ROUND_TRIPS_TARGET:
            both = [one.round_trips("preflight", d) for d in delays.values() if d > 0]
            steady = len(both) > 1 and all(t > ROUND_TRIPS_TARGET for t in both)
            why.append(
                f"round trips at RTT {rtt_ms:g} ms: {trips:.1f} against a floor of {FLOOR} "
                "(steps above). "
                + (
                    f"Over at every RTT ({', '.join(f'{t:.1f}' for t in both)}): a step the "
                    "floor does not count, e.g. waiting for QUIT's 221 or LOGOUT's reply."
                    if steady
                    else f"Half a round trip is {delay * 1000:g} ms, within the noise of a busy "
                    f"machine (the check takes {one.median('preflight', 0.0) * 1000:.0f} ms "
                    "with no latency): compare with the other RTT's row."
                )
            )
        std = one.median("stdlib", delay)
        rows.append((
            f"2. one account, RTT {rtt_ms:g} ms: preflight vs stdlib smtplib then imaplib "
            "(in-process)",
            f"{one.median('preflight', delay) * 1000:.0f} ms, {trips:.1f} RTT",
            f"{std * 1000:.0f} ms, {one.round_trips('stdlib', delay):.1f} RTT", "-",
            f"{std / one.median('preflight', delay):.2f}x faster",
        ))  # fmt: skip


def bulk_row(run: BulkRun, base: BulkRun) -> tuple[str, str]:
    busy = f", machine {run.busy * 100:.0f}% busy" if run.busy is not None else ""
    base_busy = f", machine {base.busy * 100:.0f}%" if base.busy is not None else ""
    cpu = f"{run.ran.cpu:.1f} s CPU ({run.ran.cpu / run.accounts * 1000:.1f} ms/account)"
    ours = f"{run.ran.wall:.1f} s, {run.rate:.1f} acc/s, {cpu}{busy}"
    if run.stats is not None:
        ours += f"; at once: {run.at_once()}"
    theirs = (
        f"{THREADS} threads: {base.ran.wall:.1f} s, {base.rate:.1f} acc/s, "
        f"{base.ran.cpu:.1f} s CPU{base_busy}"
    )
    return ours, theirs


def summary_bulk(
    spread: list[BulkRun],
    concentrated: list[BulkRun],
    defaults: dict[str, int | None],
    rows: list[Row],
    why: list[str],
) -> None:
    if spread:
        base = next(r for r in spread if r.label.startswith("stdlib"))
        run = spread[0]
        ratio = run.rate / base.rate
        ours, theirs = bulk_row(run, base)
        rows.append((
            f"4. bulk, spread: {run.accounts:,} accounts over {len(SPREAD_HOSTS)} SMTP + "
            f"{len(SPREAD_HOSTS)} IMAP hosts, {run.label}",
            ours, theirs, f">= {SPREAD_TARGET:g}x throughput",
            verdict(ratio >= SPREAD_TARGET, f"{ratio:.2f}x: {run.rate:.0f} acc/s of the "
                    f"{SPREAD_TARGET * base.rate:.0f} needed"),
        ))  # fmt: skip
        if ratio < SPREAD_TARGET and run.account_s:
            in_flight = run.rate * run.account_s
            pool_s = THREADS / base.rate
            needed = SPREAD_TARGET * base.rate * run.account_s
            concurrency, per_host = defaults.get("--concurrency"), defaults.get("--per-host")
            why.append(
                f"bulk, spread, {ratio:.2f}x: throughput is accounts in flight / time per account. "
                f"preflight's account took {run.account_s:.2f} s against {pool_s:.2f} s in a "
                f"pool thread ({pool_s / run.account_s:.1f}x), with {in_flight:.1f} accounts in "
                f"flight on average against the pool's {THREADS}; {SPREAD_TARGET:g}x needs "
                f"~{needed:.0f} in flight at this account time. The defaults allow "
                f"--concurrency {concurrency} at once and --per-host {per_host} per host "
                f"({len(SPREAD_HOSTS)} hosts: {(per_host or 0) * len(SPREAD_HOSTS)}); "
                f"the machine was {(run.busy or 0) * 100:.0f}% busy (the client, the proxy, "
                "Postfix and Dovecot share it)."
            )
        if any(r.mismatches for r in spread):
            found = ", ".join(f"{r.label}: {r.mismatches}" for r in spread if r.mismatches)
            rows.append(("4. bulk, spread: unexpected outcomes", found, "-", "0", "MISS"))
    if concentrated:
        base = next(r for r in concentrated if r.label.startswith("stdlib"))
        for run in concentrated:
            if run is base:
                continue
            ours, theirs = bulk_row(run, base)
            if run.label.startswith("swaks"):
                ours = f"{run.ran.wall:.0f} s, {run.rate:.1f} acc/s, {run.ran.cpu:.1f} s CPU"
                result = f"{concentrated[0].rate / run.rate:.0f}x slower than preflight (defaults)"
            else:
                result = f"{run.rate / base.rate:.2f}x the pool"
            rows.append((
                f"5. bulk, concentrated: {run.accounts:,} accounts on one host, {run.label}",
                ours, theirs, "- (choose)", result,
            ))  # fmt: skip
        if any(r.mismatches for r in concentrated):
            found = ", ".join(f"{r.label}: {r.mismatches}" for r in concentrated if r.mismatches)
            rows.append(("5. bulk, concentrated: unexpected outcomes", found, "-", "0", "MISS"))


NOTHING = ", nothing contacted"


def summary_politeness(runs: list[BulkRun], rows: list[Row], why: list[str]) -> None:
    """Whether any host saw more connections of one protocol than --per-host."""
    checked = [r for r in runs if r.per_host is not None and r.stats is not None]
    if not checked:
        return
    seen = []
    over = []
    for run in checked:
        smtp, imap = run.most_per_host()
        seen.append(f"{run.workload} {run.per_host}: {smtp}/{imap}")
        if max(smtp, imap) > (run.per_host or 0):
            over.append(f"{run.label} ({run.accounts:,} accounts): SMTP {smtp}, IMAP {imap}")
    rows.append((
        "4-5. bulk, politeness: most SMTP/IMAP connections open at once to one host "
        "(workload, --per-host: SMTP/IMAP)",
        ", ".join(seen), "-", "<= --per-host",
        verdict(not over, f"{len(over)} run(s) over"),
    ))  # fmt: skip
    if over:
        why.append(
            "politeness: a host saw more connections of one protocol at once than --per-host "
            f"in {'; '.join(over)} (counted by the proxy until the client's end of stream "
            "reaches the server, as the server sees it)."
        )


def summary(
    args: argparse.Namespace,
    one: OneAccount | None,
    spread: list[BulkRun],
    concentrated: list[BulkRun],
    defaults: dict[str, int | None],
    startup: dict[str, float],
    memory: dict[str, tuple[float, float, float]],
) -> str:
    """The markdown table of every measurement against its target, and why the misses."""
    rows: list[Row] = []
    why: list[str] = []
    if one is not None:
        summary_one(args, one, rows, why)
    if startup:
        base_ms = startup.get("python -c pass", 0.0)
        help_ms = startup.get("preflight --help")
        if help_ms is not None:
            rows.append((
                "3. start-up, `preflight --help` (median)", f"{help_ms:.0f} ms",
                f"`python -c pass` {base_ms:.0f} ms ({help_ms / base_ms:.1f}x)", "< 150 ms",
                verdict(help_ms < 150, f"{help_ms - 150:.0f} ms over"),
            ))  # fmt: skip
        for name in ("preflight validate one.json", "preflight check invalid.json"):
            ms = startup.get(name)
            if ms is not None:
                rows.append((
                    f"3. start-up, `{name}` (median{NOTHING if 'check' in name else ''})",
                    f"{ms:.0f} ms", f"`python -c pass` {base_ms:.0f} ms ({ms / base_ms:.1f}x)",
                    "-", "-",
                ))  # fmt: skip
    summary_bulk(spread, concentrated, defaults, rows, why)
    summary_politeness(spread + concentrated, rows, why)
    for kind, (small, big, ratio) in memory.items():
        rows.append((
            f"6. peak RSS, `validate` streaming {args.memory_accounts:,} accounts ({kind})",
            f"{big:.1f} MB", f"1,000 accounts: {small:.1f} MB (x{ratio:.2f})", "flat",
            "PASS" if ratio <= 1.1 else f"MISS: grows x{ratio:.2f}",
        ))  # fmt: skip

    delays = [f"{args.delay_ms:g} ms each way (RTT {2 * args.delay_ms:g} ms)"]
    if args.high_delay_ms > 0:
        delays.append(f"{args.high_delay_ms:g} ms (RTT {2 * args.high_delay_ms:g} ms)")
    lines = [
        f"## preflight benchmarks, {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {machine()}. Latency: {' and '.join(delays)} for one account, "
        f"{args.delay_ms:g} ms each way for bulk, added by `bench/latency_proxy.py`, which "
        "charges the TCP handshake as a real network does. `preflight` as users install it "
        "(`pip install .`, not editable, bytecode compiled). Reproduce: `bash bench/run` as "
        "root.",
        "",
        "| measurement | preflight | baseline | target | result |",
        "| --- | --- | --- | --- | --- |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    if why:
        lines += ["", "Why the misses:", *(f"- {reason}" for reason in why)]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> None:
    addresses = os.environ[NAMESPACE_ENV].split(",")
    for tool in ("swaks", "curl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: run bash bench/run (it installs it), or apt-get "
                     f"install {tool}")  # fmt: skip
    command = installed_command(args.preflight)
    help_text = subprocess.run(
        [command, "check", "--help"], capture_output=True, text=True, check=False
    ).stdout
    defaults = {o: option_default(help_text, o) for o in ("--concurrency", "--per-host")}
    one: OneAccount | None = None
    spread: list[BulkRun] = []
    concentrated: list[BulkRun] = []
    started = time.perf_counter()
    print(f"preflight benchmarks: {command}; proxy on {addresses[0]} ({MAIL_HOST}) and "
          f"{addresses[1]}-{addresses[-1]} ({SPREAD_HOSTS[0]}-{SPREAD_HOSTS[-1]})",
          flush=True)  # fmt: skip
    cover_spread_hosts()
    with (
        tempfile.TemporaryDirectory(prefix="preflight-bench-") as tmp,
        start_stack(Path(tmp) / "stack") as stack,
    ):
        if "starttls" not in stack.smtp or "ssl" not in stack.imap:
            sys.exit(f"the test stack lacks Postfix 587 or Dovecot 993: {dict(stack.unavailable)}")
        check_certificate(stack)
        dns = DnsServer(bench_zone(addresses))
        dns_address = dns.start()
        work = Path(tmp)
        try:
            if not args.skip_one:
                one = OneAccount()
                delays = [0.0, args.delay_ms] + ([args.high_delay_ms] if args.high_delay_ms > 0
                                                 else [])  # fmt: skip
                with asyncio.Runner() as runner:
                    for delay in delays:
                        print(f"  one account at {delay:g} ms x {args.runs} ...", flush=True)
                        with latency(addresses, delay, stack, dns_address):
                            one_account(one, delay / 1000, stack, args.runs, work, runner,
                                        command, args.also)  # fmt: skip
                print_floor()
                print_one(one, [d / 1000 for d in delays])
            users = dict(stack.users)
            if not args.skip_spread:
                hosts = len(SPREAD_HOSTS)
                print(f"\n  bulk, spread: {args.spread_accounts:,} accounts over {hosts} "
                      f"hosts, {args.delay_ms:g} ms ...", flush=True)  # fmt: skip
                accounts = bulk_accounts(args.spread_accounts, users, SPREAD_HOSTS)
                variants: list[tuple[str, list[str], str]] = [(
                    "preflight check (defaults)", [],
                    f"defaults: --concurrency {defaults['--concurrency']}, "
                    f"--per-host {defaults['--per-host']}",
                )]  # fmt: skip
                with latency(addresses, args.delay_ms, stack, dns_address) as proxy:
                    spread = bulk("spread", accounts, variants, command, stack, proxy, work,
                                  defaults["--per-host"])  # fmt: skip
                print_bulk(
                    f"4. bulk, spread: {args.spread_accounts:,} accounts over "
                    f"{len(SPREAD_HOSTS)} SMTP and {len(SPREAD_HOSTS)} IMAP hosts (7 in 10 good; "
                    "1 in 10 each: wrong password, closed SMTP port, no such domain), "
                    f"{args.delay_ms:g} ms each way",
                    spread,
                )
            if not args.skip_concentrated:
                print(f"\n  bulk, concentrated: {args.accounts:,} accounts on one host at "
                      f"{args.delay_ms:g} ms ...", flush=True)  # fmt: skip
                accounts = bulk_accounts(args.accounts, users)
                variants = [
                    (f"preflight check --per-host {n}", ["--per-host", str(n)],
                     "the default" if n == defaults["--per-host"] else "")
                    for n in args.per_host
                ]  # fmt: skip
                with latency(addresses, args.delay_ms, stack, dns_address) as proxy:
                    concentrated = bulk(
                        "concentrated", accounts, variants, command, stack, proxy, work,
                        defaults["--per-host"], args.sample,
                    )  # fmt: skip
                print_bulk(
                    f"5. bulk, concentrated: {args.accounts:,} accounts on one host "
                    f"({MAIL_HOST}; the same mix), {args.delay_ms:g} ms each way",
                    concentrated,
                )
        finally:
            dns.stop()
    startup: dict[str, float] = {}
    memory: dict[str, tuple[float, float, float]] = {}
    if not args.skip_startup:
        startup = parse_startup(run_script(
            "startup.py", ["--runs", str(args.startup_runs), "--preflight", command]
        ))  # fmt: skip
    if not args.skip_memory:
        memory = parse_memory(run_script(
            "memory.py", ["--accounts", str(args.memory_accounts), "--preflight", command]
        ))  # fmt: skip
    table = summary(args, one, spread, concentrated, defaults, startup, memory)
    print("\n" + table, end="")
    elapsed = time.perf_counter() - started
    print(f"\n(measured in {elapsed // 60:.0f} min {elapsed % 60:.0f} s)")
    if args.save:
        Path(args.save).write_text(table)
        print(f"(the table is also in {args.save})")


def per_host_list(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preflight", default=str(INSTALLED), metavar="PATH",
                        help="the installed command to measure (default: %(default)s)")  # fmt: skip
    parser.add_argument("--also", metavar="PATH",
                        help="another installed preflight command (e.g. an earlier commit's) "
                        "whose `check one.json` runs interleaved with this tree's, for an A/B "
                        "ratio in one run")  # fmt: skip
    parser.add_argument("--delay-ms", type=float, default=20.0, help="added each way")
    parser.add_argument("--high-delay-ms", type=float, default=50.0,
                        help="one account again at this delay (0: not)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=10, help="one-account runs per client")
    parser.add_argument("--spread-accounts", type=int, default=300, help="spread bulk size")
    parser.add_argument("--accounts", type=int, default=1000, help="concentrated bulk size")
    parser.add_argument("--per-host", type=per_host_list, default=[5, 10, 20],
                        help="concentrated bulk: --per-host values (default 5,10,20)")  # fmt: skip
    parser.add_argument("--sample", type=int, default=10, help="swaks+curl bulk sample (0: none)")
    parser.add_argument("--startup-runs", type=int, default=20)
    parser.add_argument("--memory-accounts", type=int, default=100_000)
    parser.add_argument("--save", metavar="FILE", help="also write the final table to FILE")
    for part in ("one", "spread", "concentrated", "startup", "memory"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    args = parser.parse_args()
    if args.also:
        CLIENTS["cmd_also"] = "`preflight check one.json`, the --also build"
    if os.environ.get(NAMESPACE_ENV) is None:
        sys.exit(enter_namespace())
    run(args)


if __name__ == "__main__":
    main()
