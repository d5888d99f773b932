"""Start-up time of the preflight command, against a bare interpreter.

    python bench/startup.py [--runs 30]

Prints the median and the fastest wall time of each command over several runs, and
the ratio to `python -c pass` measured in the same run (machines here are noisy:
compare ratios, not milliseconds). The budget for `preflight --help` is 150 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = {
    "from_name": "John Doe",
    "from_email": "john@example.com",
    "user_name": "john@example.com",
    "password": "your_app_password",
    "smtp_host": "smtp.gmail.com",
    "smtp_port": 587,
    "imap_host": "imap.gmail.com",
    "imap_port": 993,
    "warmup_enabled": True,
    "type": "GMAIL",
}


def timed(argv: list[str], runs: int) -> list[float]:
    subprocess.run(argv, capture_output=True, check=False)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    script = shutil.which("preflight") or str(Path(sys.executable).with_name("preflight"))
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one.json"
        one.write_text(json.dumps(EXAMPLE))
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "preflight --help": [script, "--help"],
            "preflight validate one.json": [script, "validate", str(one)],
        }
        results = {name: timed(argv, args.runs) for name, argv in commands.items()}
    base = statistics.median(results["python -c pass"])
    print(f"start-up, {args.runs} runs each ({time.strftime('%Y-%m-%d')}, {sys.platform})")
    print(f"{'command':<30} {'median ms':>10} {'min ms':>8} {'x python':>9}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<30} {median:>10.1f} {min(times):>8.1f} {median / base:>9.2f}")
    help_ms = statistics.median(results["preflight --help"])
    verdict = "within" if help_ms < 150 else "OVER"
    print(f"\npreflight --help: {help_ms:.1f} ms median, {verdict} the 150 ms budget")


if __name__ == "__main__":
    main()
