"""The compatibility matrix as a table: every foreign server x every core case.

    python bench/compat.py [--save FILE] [--servers exim,cyrus]

Starts each server of ``fixtures.foreign.matrix.SERVERS`` (root; packages unpacked
into ``.cache/foreign`` on first use), runs each case it has the endpoint for with
preflight's own probes, exactly as ``tests/integration/test_compat.py`` does, and
prints a markdown table: the code preflight gave, with ✓ when it is the true one
and the hint says nothing false for that server, ✗ otherwise (the reasons follow
the table). A server that cannot be started is listed with the reason. Exit status
1 when any case differs or a server is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fixtures.foreign.base import ForeignServer  # noqa: E402
from fixtures.foreign.matrix import CASES, SERVERS, problems, run_case  # noqa: E402
from fixtures.process import FixtureError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="also write the markdown table here")
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help="comma-separated (default: all)"
    )
    args = parser.parse_args()
    names = [n for n in args.servers.split(",") if n]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        parser.error(f"unknown servers {unknown}; known: {', '.join(SERVERS)}")

    started = time.monotonic()
    cells: dict[tuple[str, str], str] = {}
    notes: list[str] = []
    versions: dict[str, str] = {}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="preflight-compat-") as tmp:
        for name in names:
            spec = SERVERS[name]
            with contextlib.ExitStack() as cleanup:
                began = time.monotonic()
                try:
                    server: ForeignServer = spec.start(cleanup, Path(tmp) / name)
                except FixtureError as exc:
                    failures += 1
                    versions[name] = "not started"
                    notes.append(f"- **{name}** could not be started: {exc}".splitlines()[0])
                    continue
                versions[name] = server.version
                print(f"{server.version} started in {time.monotonic() - began:.1f} s", flush=True)
                for case in CASES:
                    if case.needs not in spec.endpoints:
                        continue
                    result = asyncio.run(run_case(server, case))
                    wrong = problems(server, case, result)
                    mark = "✗" if wrong else "✓"
                    cells[(case.name, name)] = f"`{result.code.value}` {mark}"
                    print(f"  {case.name:26} {result.code.value:24} {mark}", flush=True)
                    if wrong:
                        failures += 1
                        notes += [f"- **{name}**, {case.title}: {w}" for w in wrong]

    header = ["case", *(f"{n} ({versions[n]})" for n in names)]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for case in CASES:
        row = [cells.get((case.name, n), "—") for n in names]
        if any(c != "—" for c in row):
            lines.append(f"| {case.title} | " + " | ".join(row) + " |")
    table = "\n".join(lines)
    print()
    print(table)
    print()
    print("✓: the code that is true for that server, and a hint that says nothing false there;")
    print("—: the server has no such configuration here.")
    if notes:
        print()
        print("\n".join(notes))
    print(f"\n{len(cells)} cases in {time.monotonic() - started:.1f} s")
    if args.save:
        args.save.write_text(table + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
