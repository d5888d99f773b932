"""What waiting costs: accounts that wait (for a silent server, or for a place under
``--per-host``) should cost no CPU while they wait.

Starts a TCP server on loopback that accepts and never answers, checks N accounts on it
with ``check_many`` (``per_host=5``: 5 connections wait for a greeting, the others for
a place), and prints the process's CPU time and sleeps (voluntary context switches)
every 2 seconds while nothing can happen. Run with ``.venv/bin/python bench/waiting.py
[N]``; about 12 seconds.

Measured 2026-12-02 (2-core VM, 40 accounts): after the first 2 s (connections opened),
0.3-0.4 ms of CPU per 2 s and one sleep per 2 s, the sampler's own: waiting is free.
So the CPU per account that ``compare.py``'s concentrated runs show rising at a low
``--per-host`` (10.5 ms at 5 against 8.8 ms at 20) is not the waiting: it follows the
number of times the process sleeps and wakes per account (6.8 against 2.5; about
0.4 ms each), as fewer sessions at once give each wake-up fewer events to handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import sys
import threading
import time

from preflight.options import CheckOptions, Timeouts
from preflight.runner import check_many


def silent_server() -> tuple[int, list[socket.socket]]:
    """A port that accepts connections and never says anything."""
    server = socket.create_server(("127.0.0.1", 0), backlog=256)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return int(server.getsockname()[1]), held


async def main(count: int) -> None:
    port, _ = silent_server()
    body = {
        "from_name": "Wait",
        "from_email": "wait@example.invalid",
        "user_name": "wait@example.invalid",
        "password": "not-used",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "imap_host": "127.0.0.1",
        "imap_port": port,
        "warmup_enabled": False,
    }
    # Nothing times out during the measurement; no DNS at all.
    options = CheckOptions(
        timeout=30,
        timeouts=Timeouts(connect=5, greeting=25, command=25, sniff_after=25),
        check_domain=False,
        check_blocklist=False,
        check_tracking=False,
        check_imap=False,
        dns_server="127.0.0.1:9",
        smtp_security="plain",
        throttle_retry=None,
    )

    async def run() -> None:
        async for _ in check_many([dict(body) for _ in range(count)], options, per_host=5):
            pass

    task = asyncio.create_task(run())
    print(f"{count} accounts, per_host 5, on a server that never answers")
    cpu = time.process_time()
    sleeps = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    for second in range(2, 14, 2):
        await asyncio.sleep(2)
        now = time.process_time()
        slept = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
        used = (now - cpu) * 1000
        print(f"  {second:>2} s: CPU in the last 2 s {used:6.1f} ms, sleeps {slept - sleeps}")
        cpu, sleeps = now, slept
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40))
