"""Verify and submit N accounts against the local servers: default rate limit vs raised.

    python bench/submit.py [--accounts 200]

Starts the test stack (real Dovecot/Postfix logins) and the local SmartLead server
(enforcing SmartLead's documented limits, 60/min and 10/s), writes N good accounts,
and times `preflight submit` twice on fresh servers: with the default client rate
limit, and with it raised (the server's limit off for that run). Prints the wall
times and the accounts per second; every run must save all N, each exactly once,
with no 429.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures.accounts import valid_payload
from fixtures.smartlead import RateLimit, SmartLeadServer
from fixtures.stack import start_stack

KEY = "bench-key"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200)
    args = parser.parse_args()
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, start_stack(Path(tmp) / "stack") as stack:
        user, _ = stack.credentials()
        local, domain = user.split("@")
        dns_host, dns_port = stack.dns
        for label, server_limit, flags in (
            ("default (60/min, 10/s)", RateLimit(), []),
            (
                "raised (no limit)",
                RateLimit(enabled=False),
                ["--rate-per-minute", "100000", "--burst", "10000"],
            ),
        ):
            accounts = Path(tmp) / f"accounts-{len(rows)}.jsonl"
            accounts.write_text(
                "".join(
                    json.dumps(
                        valid_payload(
                            stack,
                            from_name=f"S{i}",
                            from_email=f"{local}+{i}@{domain}",
                            warmup_enabled=False,
                        )
                    )
                    + "\n"
                    for i in range(args.accounts)
                )
            )
            with SmartLeadServer(api_key=KEY, rate_limit=server_limit) as server:
                command = [
                    sys.executable,
                    "-m",
                    "preflight",
                    "submit",
                    str(accounts),
                    "--base-url",
                    server.base_url,
                    "--ca-file",
                    str(stack.ca_file),
                    "--dns-server",
                    f"{dns_host}:{dns_port}",
                    "--dns-for-hosts",
                    "--format",
                    "jsonl",
                    *flags,
                ]
                started = time.perf_counter()
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    check=False,
                    env={**os.environ, "SMARTLEAD_API_KEY": KEY},
                )
                wall = time.perf_counter() - started
                statuses = [r.status for r in server.received if r.is_save]
                assert done.returncode == 0, done.stderr[-2000:]
                assert len(server.accounts) == args.accounts
                assert 429 not in statuses, "the client tripped the rate limit"
            rows.append((label, wall))
    print(f"verify + submit {args.accounts} accounts, local servers ({time.strftime('%Y-%m-%d')})")
    print(f"{'client rate limit':<26} {'wall s':>8} {'accounts/s':>11}")
    for label, wall in rows:
        print(f"{label:<26} {wall:>8.1f} {args.accounts / wall:>11.1f}")
    # 60 in any 60 s window: the last minute-window starts (ceil(N/60) - 1) minutes in.
    floor = (math.ceil(args.accounts / 60) - 1) * 60
    print(
        f"\nSmartLead's 60 saves a minute alone mean {args.accounts} accounts take at "
        f"least {floor} s"
    )


if __name__ == "__main__":
    main()
