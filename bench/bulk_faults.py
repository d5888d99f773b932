"""A large bulk run where 10% of the servers misbehave: every report, in time, no leaks.

    python bench/bulk_faults.py [--accounts 10000] [--deadline 2]

Local stub servers on loopback: 90% of accounts meet a server that greets and
refuses the login; 10% meet one that never speaks, one that sends a byte a second,
or one that hangs up at once. Runs ``check_many`` (concurrency 200, per host 200)
and prints: reports received, wall time, the slowest check against the deadline,
open file descriptors before and after, and peak RSS. The test suite runs the same
scenario scaled down (tests/integration/test_bulk.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import preflight
from preflight.options import CheckOptions, Timeouts

DOMAIN = "bulk.test"


#: The stubs' own connections, closed before descriptors are counted: they live in
#: this process too, and a slow stub's session outlives the client's deadline.
STUB_WRITERS: set[asyncio.StreamWriter] = set()


async def serve(behaviour: str) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        STUB_WRITERS.add(writer)
        try:
            if behaviour == "silent":
                await reader.read()
            elif behaviour == "slow":
                for byte in b"220 slow\r\n":
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1)
            elif behaviour == "reject":
                writer.write(b"220 stub ESMTP\r\n")
                while line := await reader.readline():
                    verb = line.split(b" ", 1)[0].strip().upper()
                    if verb == b"EHLO":
                        writer.write(b"250-stub\r\n250 AUTH PLAIN\r\n")
                    elif verb == b"AUTH":
                        writer.write(b"535 5.7.8 no\r\n")
                    elif verb == b"QUIT":
                        writer.write(b"221 bye\r\n")
                        break
                    else:
                        writer.write(b"250 ok\r\n")
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a stub in a benchmark: the end of the run may cancel it mid-write
        finally:
            writer.close()
            STUB_WRITERS.discard(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    return server, server.sockets[0].getsockname()[1]


async def main_async(count: int, deadline: float) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    servers = {name: await serve(name) for name in ("reject", "silent", "slow", "close")}
    bad = [servers["silent"][1], servers["slow"][1], servers["close"][1]]

    def accounts() -> Iterator[dict[str, Any]]:
        for n in range(count):
            port = bad[n // 10 % 3] if n % 10 == 0 else servers["reject"][1]
            yield {
                "from_name": f"S{n}",
                "from_email": f"s{n}@{DOMAIN}",
                "user_name": f"s{n}@{DOMAIN}",
                "password": "pw",
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "imap_host": "127.0.0.1",
                "imap_port": port,
                "warmup_enabled": False,
            }

    options = CheckOptions(
        timeout=deadline,
        smtp_security="plain",
        imap_security="plain",
        allow_plaintext_auth=True,
        check_domain=False,
        # No DNS server here: the MX look-up of bulk.test must not leave the machine.
        dns_server="127.0.0.1:9",
        timeouts=Timeouts(dns=0.5, sniff_after=60, greeting=60, command=60),
    )
    started = time.perf_counter()
    seen: set[int] = set()
    slowest = 0.0
    codes: Counter[str] = Counter()
    async for report in preflight.check_many(accounts(), options, concurrency=200, per_host=200):
        seen.add(report.index)
        slowest = max(slowest, *(c.elapsed_ms for c in report.checks))
        codes[report.check("smtp").code.value] += 1
    wall = time.perf_counter() - started
    for server, _ in servers.values():
        server.close()
        await server.wait_closed()
    for writer in list(STUB_WRITERS):
        writer.transport.abort()
    await asyncio.sleep(0.2)
    fds_after = len(os.listdir("/proc/self/fd"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bulk run with 10% misbehaving servers ({time.strftime('%Y-%m-%d')})")
    print(f"{'accounts':<28} {count:>10,}")
    print(f"{'reports (distinct indices)':<28} {len(seen):>10,}")
    print(f"{'wall time':<28} {wall:>9.1f}s")
    print(f"{'accounts per second':<28} {count / wall:>10,.0f}")
    print(f"{'slowest check':<28} {slowest / 1000:>9.2f}s  (deadline {deadline:g} s + 1 s)")
    print(f"{'open descriptors before/after':<28} {fds_before:>5} / {fds_after}")
    print(f"{'peak RSS':<28} {peak:>8.1f} MB")
    print("smtp codes: " + ", ".join(f"{k} {v}" for k, v in codes.most_common()))
    assert len(seen) == count, "a report is missing"
    assert slowest <= (deadline + 1) * 1000, "a check outlasted its deadline"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--deadline", type=float, default=2.0)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    asyncio.run(main_async(args.accounts, args.deadline))


if __name__ == "__main__":
    main()
