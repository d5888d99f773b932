"""One account's full check against the local servers: side by side versus in a row.

    python bench/probes.py [--runs 20]

Starts the test stack (root: Dovecot and Postfix on 127.0.0.11), then for one good
account measures (medians over the runs):
- the wall time of ``check_account`` (mx, smtp, imap concurrently);
- the sum of the three probes run one after another (the baseline);
and, against a port that accepts connections and never speaks, how long the check
takes to report against its --timeout deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures.accounts import valid_payload
from fixtures.stack import start_stack
from preflight._resolver import make_resolver, resolve_host
from preflight._tls import make_context
from preflight.checks.imap import probe_imap
from preflight.checks.mx import probe_mx
from preflight.checks.smtp import probe_smtp
from preflight.options import CheckOptions
from preflight.payload import parse_account
from preflight.runner import check_account


async def sequential(body: dict[str, Any], options: CheckOptions) -> float:
    """The same probes, one after another; returns wall seconds."""
    account = parse_account(body).account
    assert account is not None
    loop = asyncio.get_running_loop()
    resolver = make_resolver(options)
    context = make_context(options.ca_file, options.insecure)
    started = time.perf_counter()
    await probe_mx(account.email_domain, resolver, options.timeout)
    for probe, host in ((probe_smtp, account.smtp_host), (probe_imap, account.imap_host)):
        lookup = asyncio.ensure_future(resolve_host(host, options, resolver))
        await lookup
        result = await probe(account, lookup, options, context, loop.time() + options.timeout)
        assert result.status.value in ("pass", "warn"), result
    return time.perf_counter() - started


async def concurrent(body: dict[str, Any], options: CheckOptions) -> float:
    started = time.perf_counter()
    report = await check_account(body, options)
    assert report.ok, report
    return time.perf_counter() - started


async def silent(body: dict[str, Any], options: CheckOptions) -> float:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    loop = asyncio.get_running_loop()
    server.setblocking(False)

    async def accept() -> None:
        while True:
            conn, _ = await loop.sock_accept(server)
            held.append(conn)

    acceptor = asyncio.ensure_future(accept())
    body = {
        **body,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "imap_host": "127.0.0.1",
        "imap_port": port,
    }
    started = time.perf_counter()
    report = await check_account(body, options)
    elapsed = time.perf_counter() - started
    acceptor.cancel()
    for conn in held:
        conn.close()
    server.close()
    assert not report.ok
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--deadline", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, start_stack(Path(tmp)) as stack:
        body = valid_payload(stack, from_name="Bench", warmup_enabled=False)
        host, port = stack.dns
        options = CheckOptions(
            ca_file=str(stack.ca_file),
            dns_server=f"{host}:{port}",
            resolve_hosts_with_dns_server=True,
        )

        async def run() -> tuple[list[float], list[float], float]:
            await concurrent(body, options)  # warm up imports and caches
            seq, con = [], []
            for _ in range(args.runs):
                seq.append(await sequential(body, options))
                con.append(await concurrent(body, options))
            slow = await silent(body, CheckOptions(timeout=args.deadline))
            return seq, con, slow

        seq, con, slow = asyncio.run(run())
    s, c = statistics.median(seq), statistics.median(con)
    print(f"one good account, 587 STARTTLS + 993, local servers, {args.runs} runs (medians)")
    print(f"{'probes one after another':<34} {s * 1000:8.1f} ms   1.00")
    print(f"{'check_account (side by side)':<34} {c * 1000:8.1f} ms   {c / s:.2f}")
    print(
        f"\nsilent server, --timeout {args.deadline:g}: report after {slow:.2f} s "
        f"({slow - args.deadline:+.2f} s against the deadline; the contract allows +1 s)"
    )


if __name__ == "__main__":
    main()
