"""`preflight check --shard K/N`: N runs that together check every account once.

The accounts are invalid payloads (each a different mistake), so nothing is contacted:
what is under test is which accounts a shard takes, that the shards' jsonl outputs
concatenate into one report of the whole file, and that a bad K/N is a usage error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.cli import _parse_shard

CANARY = "CANARY-shard-4c1"


def accounts(path: Path, count: int) -> Path:
    rows = [
        {"from_email": f"user{n}@example.com", "password": CANARY, "smtp_port": 70000 + n}
        for n in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preflight", "check", "--format", "jsonl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_shards_together_check_every_account_once(tmp_path: Path) -> None:
    source = accounts(tmp_path / "a.jsonl", 11)
    outputs = []
    for k in (1, 2, 3):
        done = check("--shard", f"{k}/3", str(source))
        assert done.returncode == 1, done.stderr  # invalid payloads: failed accounts
        outputs.append(done.stdout)
        indexes = [json.loads(line)["index"] for line in done.stdout.splitlines()]
        assert indexes == list(range(k - 1, 11, 3))
    whole = "".join(outputs)
    reports = [json.loads(line) for line in whole.splitlines()]
    assert sorted(r["index"] for r in reports) == list(range(11))
    assert {r["account"] for r in reports} == {f"user{n}@example.com" for n in range(11)}
    assert CANARY not in whole
    # The same reports as one unsharded run gives (times aside).
    unsharded = [json.loads(line) for line in check(str(source)).stdout.splitlines()]
    assert sorted(map(timeless, reports), key=str) == sorted(map(timeless, unsharded), key=str)


def timeless(report: dict[str, Any]) -> dict[str, Any]:
    checks = [{k: v for k, v in c.items() if k != "elapsed_ms"} for c in report["checks"]]
    return {**report, "checks": checks}


@pytest.mark.parametrize("value", ["0/3", "4/3", "3", "a/b", "1/0", "-1/2", "1/2/3", ""])
def test_a_bad_shard_is_a_usage_error(tmp_path: Path, value: str) -> None:
    done = check("--shard", value, str(accounts(tmp_path / "a.jsonl", 2)))
    assert done.returncode == 2
    assert "--shard" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_shard_needs_a_file_of_accounts() -> None:
    done = check("--shard", "1/2", "--host", "smtp.example.com", "--user", "a@example.com")
    assert done.returncode == 2
    assert "--shard" in done.stderr


@settings(max_examples=200)
@given(st.integers(1, 50), st.integers(0, 200))
def test_every_index_is_in_exactly_one_shard(n: int, index: int) -> None:
    owners = [k for k in range(1, n + 1) if index % n == k - 1]
    assert len(owners) == 1
    assert _parse_shard(f"{owners[0]}/{n}") == (owners[0], n)
