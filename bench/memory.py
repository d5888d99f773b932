"""Peak memory of `preflight validate` streaming many accounts.

    python bench/memory.py [--accounts 100000] [--preflight PATH]

Generates the accounts (JSON Lines, a one-line JSON array, CSV; one in ten invalid)
in a temporary directory, runs `preflight validate --format jsonl` on each in a
child process, and prints the child's peak RSS next to the same run on 1,000
accounts: flat memory means a ratio near 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FIELDS = [
    "from_name",
    "from_email",
    "user_name",
    "password",
    "smtp_host",
    "smtp_port",
    "imap_host",
    "imap_port",
    "warmup_enabled",
    "total_warmup_per_day",
    "max_email_per_day",
]


def account(i: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from_name": f"Sender {i}",
        "from_email": f"sender{i}@example{i % 97}.com",
        "user_name": f"sender{i}@example{i % 97}.com",
        "password": f"pw-{i:08d}",
        "smtp_host": f"smtp.example{i % 97}.com",
        "smtp_port": 587,
        "imap_host": f"imap.example{i % 97}.com",
        "imap_port": 993,
        "warmup_enabled": True,
        "total_warmup_per_day": 15,
        "max_email_per_day": 50,
    }
    if i % 10 == 9:
        body["smtp_port"] = 70000  # one in ten invalid
    return body


def write_files(directory: Path, count: int) -> dict[str, Path]:
    paths = {
        "jsonl": directory / f"a{count}.jsonl",
        "json array": directory / f"a{count}.json",
        "csv": directory / f"a{count}.csv",
    }
    with paths["jsonl"].open("w") as out:
        for i in range(count):
            out.write(json.dumps(account(i)) + "\n")
    with paths["json array"].open("w") as out:
        out.write("[")
        for i in range(count):
            out.write(("," if i else "") + json.dumps(account(i)))
        out.write("]")
    with paths["csv"].open("w", newline="") as out:
        writer = csv.DictWriter(out, FIELDS)
        writer.writeheader()
        for i in range(count):
            writer.writerow(account(i))
    return paths


def peak_rss_mb(argv: list[str]) -> tuple[float, float, int]:
    """Peak RSS (MB) of a child, its wall time (s), and its exit status."""
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        proc = subprocess.Popen(argv, stdout=devnull, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stderr:
        proc.stderr.close()
    return usage.ru_maxrss / 1024, time.perf_counter() - start, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument(
        "--preflight",
        metavar="PATH",
        help="the command to measure (default: the one beside this interpreter, else on PATH)",
    )
    args = parser.parse_args()
    beside = Path(sys.executable).with_name("preflight")
    script = args.preflight or (str(beside) if beside.exists() else shutil.which("preflight"))
    if script is None:
        sys.exit("no preflight command: pass --preflight PATH")
    with tempfile.TemporaryDirectory() as tmp:
        small = write_files(Path(tmp), 1_000)
        big = write_files(Path(tmp), args.accounts)
        print(f"peak RSS of `preflight validate --format jsonl` ({time.strftime('%Y-%m-%d')})")
        print(
            f"{'input':<12} {'1,000 MB':>9} {f'{args.accounts:,} MB':>12} {'ratio':>6}"
            f" {'wall s':>7} {'accounts/s':>11}"
        )
        for kind in big:
            base, _, _ = peak_rss_mb([script, "validate", "--format", "jsonl", str(small[kind])])
            peak, wall, code = peak_rss_mb(
                [script, "validate", "--format", "jsonl", str(big[kind])]
            )
            assert code == 1, f"expected exit 1 (one in ten invalid), got {code}"
            print(
                f"{kind:<12} {base:>9.1f} {peak:>12.1f} {peak / base:>6.2f} {wall:>7.1f}"
                f" {args.accounts / wall:>11,.0f}"
            )


if __name__ == "__main__":
    main()
