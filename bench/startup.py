"""Start-up time of the preflight command, against a bare interpreter.

    python bench/startup.py [--runs 30] [--preflight bench/out/venv/bin/preflight]

Prints the median and the fastest wall time of each command over several runs, and
the ratio to `python -c pass` measured in the same run (machines here are noisy:
compare ratios, not milliseconds). The budget for `preflight --help` is 150 ms.

Commands: `preflight --help`, `preflight validate one.json`, and `preflight check
invalid.json` (a payload that fails validation: nothing is contacted, so this is
start-up, reading and reporting only). Measure the command as users install it
(`--preflight`: `bench/run` builds one with `pip install .`, bytecode compiled); an
editable install, or one whose bytecode was never written, pays extra at each start.
`python -c pass` runs the interpreter of that command's environment.
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


INVALID = {**EXAMPLE, "smtp_port": 70000}


def timed(argv: list[str], runs: int, expect: tuple[int, str] | None = None) -> list[float]:
    warm = subprocess.run(argv, capture_output=True, text=True, check=False)  # page cache
    if expect is not None:
        code, text = expect
        if warm.returncode != code or text not in warm.stdout:
            sys.exit(f"{argv}: expected exit {code} and {text!r}, got {warm.returncode}:\n"
                     f"{warm.stdout[-1000:]}{warm.stderr[-1000:]}")  # fmt: skip
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--preflight",
        metavar="PATH",
        help="the command to time (default: the one beside this interpreter, else on PATH)",
    )
    args = parser.parse_args()
    beside = Path(sys.executable).with_name("preflight")
    script = args.preflight or (str(beside) if beside.exists() else shutil.which("preflight"))
    if script is None:
        sys.exit("no preflight command: pass --preflight PATH")
    # The interpreter of the command's own environment (its script's shebang).
    python = Path(script).with_name("python")
    interpreter = str(python) if python.exists() else sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one.json"
        one.write_text(json.dumps(EXAMPLE))
        invalid = Path(tmp) / "invalid.json"
        invalid.write_text(json.dumps(INVALID))
        commands: dict[str, tuple[list[str], tuple[int, str] | None]] = {
            "python -c pass": ([interpreter, "-c", "pass"], (0, "")),
            "preflight --help": ([script, "--help"], (0, "Usage")),
            "preflight validate one.json": ([script, "validate", str(one)], (0, "")),
            "preflight check invalid.json": (
                [script, "check", str(invalid)],
                (1, "payload_invalid"),
            ),
        }
        results = {
            name: timed(argv, args.runs, expect) for name, (argv, expect) in commands.items()
        }
    base = statistics.median(results["python -c pass"])
    print(
        f"start-up, {args.runs} runs each ({time.strftime('%Y-%m-%d')}, {sys.platform}): {script}"
    )
    print(f"{'command':<30} {'median ms':>10} {'min ms':>8} {'x python':>9}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<30} {median:>10.1f} {min(times):>8.1f} {median / base:>9.2f}")
    help_ms = statistics.median(results["preflight --help"])
    verdict = "within" if help_ms < 150 else "OVER"
    print(f"\npreflight --help: {help_ms:.1f} ms median, {verdict} the 150 ms budget")


if __name__ == "__main__":
    main()
