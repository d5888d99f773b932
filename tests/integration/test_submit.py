"""`preflight submit` end to end: real mail servers, the local SmartLead server, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.accounts import valid_payload
from fixtures.smartlead import RateLimit, SmartLeadServer
from fixtures.stack import Stack

API_KEY = "sl-key-CANARY-7g2p"
CANARY = "CANARY-submit-4m9x"


@pytest.fixture
def smartlead() -> Iterator[SmartLeadServer]:
    with SmartLeadServer(api_key=API_KEY, rate_limit=RateLimit(enabled=False)) as server:
        yield server


def needs_postfix(stack: Stack) -> None:
    if "postfix" in stack.unavailable:
        pytest.skip(stack.unavailable["postfix"])


def good(stack: Stack, n: int = 0, **changes: Any) -> dict[str, Any]:
    """A good account; n makes its from_email unique (same mailbox behind it)."""
    local, domain = stack.credentials()[0].split("@")
    numbered = {"from_name": f"Sender {n}", "from_email": f"{local}+{n}@{domain}"}
    return valid_payload(stack, **{**numbered, **changes})


def write(path: Path, bodies: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def command(stack: Stack, server: SmartLeadServer, accounts: Path, *extra: str) -> list[str]:
    host, port = stack.dns
    return [
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
        f"{host}:{port}",
        "--dns-for-hosts",
        "--timeout",
        "10",
        *extra,
    ]


def run(
    stack: Stack,
    server: SmartLeadServer,
    accounts: Path,
    *extra: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command(stack, server, accounts, *extra),
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NO_COLOR": "1", "SMARTLEAD_API_KEY": API_KEY, **(env or {})},
        check=False,
    )
    leaked = [
        s for s in (API_KEY, CANARY, stack.credentials()[1]) if s in done.stdout + done.stderr
    ]
    assert leaked == [], "a secret was printed"
    return done


def records(done: subprocess.CompletedProcess[str]) -> dict[int, dict[str, Any]]:
    return {r["index"]: r for r in map(json.loads, done.stdout.splitlines())}


def journal_text(accounts: Path) -> str:
    return Path(str(accounts) + ".journal.jsonl").read_text()


def test_only_passing_accounts_are_posted_once(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """Good accounts are saved once each; failing and invalid ones never reach the API."""
    needs_postfix(stack)
    accounts = write(
        tmp_path / "a.jsonl",
        [
            good(stack, 0),
            good(stack, 1, password=CANARY),
            good(stack, 2),
            good(stack, 3, smtp_port=70000),
        ],
    )
    done = run(stack, smartlead, accounts, "--format", "jsonl")
    assert done.returncode == 1
    got = records(done)
    assert {i: r["verdict"] for i, r in got.items()} == {
        0: "saved",
        1: "failed_check",
        2: "saved",
        3: "failed_check",
    }
    assert "smtp: auth_failed" in got[1]["message"]
    assert got[0]["platform"]["account_id"] is not None
    assert [smartlead.saves_of(good(stack, n)["from_email"]) for n in range(4)] == [1, 0, 1, 0]
    posted = [r.body for r in smartlead.received if r.is_save]
    assert all(body["password"] == stack.credentials()[1] for body in posted)  # the real value
    text = journal_text(accounts)
    assert API_KEY not in text
    assert stack.credentials()[1] not in text
    assert CANARY not in text


def test_rerun_sends_nothing_twice(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """Running the same command again resumes: saved accounts are not checked or sent."""
    needs_postfix(stack)
    accounts = write(tmp_path / "a.jsonl", [good(stack, 0), good(stack, 1)])
    first = run(stack, smartlead, accounts)
    second = run(stack, smartlead, accounts, "--format", "jsonl")
    assert (first.returncode, second.returncode) == (0, 0)
    assert "2 accounts: 2 saved" in first.stdout
    assert {r["verdict"] for r in records(second).values()} == {"already_saved"}
    assert [smartlead.saves_of(good(stack, n)["from_email"]) for n in range(2)] == [1, 1]


def test_401_stops_the_run_at_once(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """A refused API key stops the run before any save, with a clear message (exit 2)."""
    needs_postfix(stack)
    accounts = write(tmp_path / "a.jsonl", [good(stack, n) for n in range(4)])
    done = run(
        stack, smartlead, accounts, "--concurrency", "1", env={"SMARTLEAD_API_KEY": "wrong-key"}
    )
    assert done.returncode == 2
    assert "refused the API key (401)" in done.stderr
    assert "wrong-key" not in done.stdout + done.stderr
    assert [(r.method, r.query.get("limit")) for r in smartlead.received] == [("GET", ["1"])]
    assert smartlead.accounts == {}


def test_429_is_waited_out(stack: Stack, smartlead: SmartLeadServer, tmp_path: Path) -> None:
    """A 429 with Retry-After is waited out, then the account is saved, once."""
    needs_postfix(stack)
    smartlead.faults.update(force_429=1, retry_after=1)
    accounts = write(tmp_path / "a.jsonl", [good(stack, 0)])
    started = time.monotonic()
    done = run(stack, smartlead, accounts, "--format", "jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started >= 1
    assert [r.status for r in smartlead.received if r.is_save] == [429, 200]
    assert len(smartlead.accounts_of(good(stack, 0)["from_email"])) == 1


def test_unknown_outcome_is_not_duplicated_on_rerun(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """A connection dropped after the save was applied is 'unknown'; the rerun looks it up."""
    needs_postfix(stack)
    smartlead.faults.update(drop_after_read=1)
    accounts = write(tmp_path / "a.jsonl", [good(stack, 0)])
    first = run(stack, smartlead, accounts, "--format", "jsonl")
    assert first.returncode == 1
    assert records(first)[0]["verdict"] == "unknown"
    second = run(stack, smartlead, accounts, "--format", "jsonl")
    assert second.returncode == 0
    assert records(second)[0]["verdict"] == "already_saved"
    assert smartlead.saves_of(good(stack, 0)["from_email"]) == 1
    assert len(smartlead.accounts_of(good(stack, 0)["from_email"])) == 1


def test_unknown_outcome_not_applied_is_sent_again(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """A 5xx that did not apply the save: the rerun finds nothing, sends it, once."""
    needs_postfix(stack)
    smartlead.faults.update(status_5xx=1)
    accounts = write(tmp_path / "a.jsonl", [good(stack, 0)])
    first = run(stack, smartlead, accounts, "--format", "jsonl")
    assert records(first)[0]["verdict"] == "unknown"
    second = run(stack, smartlead, accounts, "--format", "jsonl")
    assert records(second)[0]["verdict"] == "saved"
    assert len(smartlead.accounts_of(good(stack, 0)["from_email"])) == 1


def test_killed_run_resumes_without_duplicates(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """A run killed (SIGKILL) halfway resumes: every account saved exactly once."""
    needs_postfix(stack)
    count = 6
    accounts = write(tmp_path / "a.jsonl", [good(stack, n) for n in range(count)])
    proc = subprocess.Popen(
        # One save a second: the kill lands between two saves, whatever the machine.
        command(stack, smartlead, accounts, "--concurrency", "2", "--burst", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "SMARTLEAD_API_KEY": API_KEY},
    )
    deadline = time.monotonic() + 60
    while len(smartlead.accounts) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert 2 <= len(smartlead.accounts) < count
    done = run(stack, smartlead, accounts, "--format", "jsonl")
    assert done.returncode == 0, done.stdout
    emails = [good(stack, n)["from_email"] for n in range(count)]
    assert [len(smartlead.accounts_of(email)) for email in emails] == [1] * count


def test_dry_run_sends_nothing(stack: Stack, smartlead: SmartLeadServer, tmp_path: Path) -> None:
    """--dry-run checks and shows the masked body; no request reaches the API, no key needed."""
    needs_postfix(stack)
    accounts = write(tmp_path / "a.jsonl", [good(stack, 0)])
    done = run(
        stack, smartlead, accounts, "--dry-run", "--format", "jsonl", env={"SMARTLEAD_API_KEY": ""}
    )
    assert done.returncode == 0, done.stderr
    record = records(done)[0]
    assert record["verdict"] == "dry_run"
    assert record["payload"]["password"] == "********"
    assert record["payload"]["smtp_host"] == stack.mail_host
    assert smartlead.received == []


def test_platform_disagreement_is_reported(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """When SmartLead's own check says SMTP fails but preflight's passed, the record says so."""
    needs_postfix(stack)
    body = good(stack, 0)
    smartlead.faults.update(smtp_failed={body["from_email"]})
    accounts = write(tmp_path / "a.jsonl", [body])
    done = run(stack, smartlead, accounts, "--format", "jsonl")
    record = records(done)[0]
    assert record["verdict"] == "saved"
    assert record["platform"]["is_smtp_success"] is False
    assert record["disagreement"] == [
        "the platform reports smtp failing, preflight found it working"
    ]


def test_platform_rejection_recorded(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """A 400 from the platform is recorded with its message; exit 1."""
    needs_postfix(stack)
    body = good(stack, 0)
    smartlead.faults.update(connection_failed={body["from_email"]})
    accounts = write(tmp_path / "a.jsonl", [body])
    done = run(stack, smartlead, accounts, "--format", "jsonl")
    assert done.returncode == 1
    record = records(done)[0]
    assert (record["verdict"], record["platform"]["http_status"]) == ("rejected", 400)
    assert "SMTP connection failed" in record["message"]


def test_no_api_key_is_usage_error(stack: Stack, tmp_path: Path) -> None:
    """Without SMARTLEAD_API_KEY or --api-key-file: exit 2, saying how to give it."""
    accounts = write(tmp_path / "a.jsonl", [good(stack, 0)])
    done = subprocess.run(
        [sys.executable, "-m", "preflight", "submit", str(accounts)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SMARTLEAD_API_KEY": ""},
        check=False,
    )
    assert done.returncode == 2
    assert "SMARTLEAD_API_KEY" in done.stderr


def test_api_key_file(stack: Stack, smartlead: SmartLeadServer, tmp_path: Path) -> None:
    """--api-key-file reads the key from a file."""
    needs_postfix(stack)
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY + "\n")
    accounts = write(tmp_path / "a.jsonl", [good(stack, 0)])
    done = run(
        stack, smartlead, accounts, "--api-key-file", str(key_file), env={"SMARTLEAD_API_KEY": ""}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(smartlead.accounts) == 1


def test_client_rate_limit_never_trips_429(stack: Stack, tmp_path: Path) -> None:
    """Within the configured limits, a batch never meets a 429 in the first place."""
    needs_postfix(stack)
    limit = RateLimit(per_second=2, per_minute=1000)
    with SmartLeadServer(api_key=API_KEY, rate_limit=limit) as server:
        accounts = write(tmp_path / "a.jsonl", [good(stack, n) for n in range(8)])
        started = time.monotonic()
        done = run(stack, server, accounts, "--burst", "2", "--format", "jsonl")
        elapsed = time.monotonic() - started
        statuses = [r.status for r in server.received if r.is_save]
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses == [200] * 8
    assert elapsed >= 3  # 8 saves at 2 a second
