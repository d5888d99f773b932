"""`preflight submit` under faults: secrets echoed by the platform, a refused or revoked
key, bad --base-url, unusable journals, long Retry-After, two runs at once, a kill
mid-POST. Real processes, the local SmartLead stand-in, real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.accounts import valid_payload
from fixtures.smartlead import RateLimit, SmartLeadServer
from fixtures.stack import Stack
from preflight.secret import Secret
from preflight.smartlead._client import LookupFailed, SaveOutcome, SmartLeadClient
from preflight.smartlead._journal import Journal

API_KEY = "sl-key-CANARY-fault-8q3z"


@pytest.fixture
def smartlead() -> Iterator[SmartLeadServer]:
    with SmartLeadServer(api_key=API_KEY, rate_limit=RateLimit(enabled=False)) as server:
        yield server
        assert server.errors == []


class Trap:
    """A listening socket standing in for every mail server: counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    running = Trap()
    yield running
    running.close()


def trapped(trap: Trap, n: int = 0) -> dict[str, Any]:
    """A valid account whose every server is the trap."""
    return {
        "from_name": f"Trap {n}",
        "from_email": f"trap{n}@example.test",
        "user_name": f"trap{n}@example.test",
        "password": f"pw-trap-CANARY-{n}",
        "smtp_host": "127.0.0.1",
        "smtp_port": trap.port,
        "imap_host": "127.0.0.1",
        "imap_port": trap.port,
        "warmup_enabled": False,
    }


def good(stack: Stack, n: int = 0, **changes: Any) -> dict[str, Any]:
    """A good account against the local mail stack; n makes its from_email unique."""
    local, domain = stack.credentials()[0].split("@")
    numbered = {"from_name": f"Sender {n}", "from_email": f"{local}+f{n}@{domain}"}
    return valid_payload(stack, **{**numbered, **changes})


def needs_postfix(stack: Stack) -> None:
    if "postfix" in stack.unavailable:
        pytest.skip(stack.unavailable["postfix"])


def write(path: Path, bodies: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(b, ensure_ascii=False) + "\n" for b in bodies))
    return path


def command(base_url: str, accounts: Path, *extra: str, stack: Stack | None = None) -> list[str]:
    net: list[str] = []
    if stack is not None:
        host, port = stack.dns
        net = [
            "--ca-file",
            str(stack.ca_file),
            "--dns-server",
            f"{host}:{port}",
            "--dns-for-hosts",
        ]
    else:
        net = ["--dns-server", "127.0.0.1:9"]
    return [
        sys.executable,
        "-m",
        "preflight",
        "submit",
        str(accounts),
        "--base-url",
        base_url,
        *net,
        "--timeout",
        "10",
        *extra,
    ]


def run(
    base_url: str,
    accounts: Path,
    *extra: str,
    stack: Stack | None = None,
    key: str = API_KEY,
    secrets: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command(base_url, accounts, *extra, stack=stack),
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NO_COLOR": "1", "SMARTLEAD_API_KEY": key},
        check=False,
    )
    leaked = [s for s in (API_KEY, key, *secrets) if s in done.stdout + done.stderr]
    assert leaked == [], "a secret was printed"
    assert "Traceback" not in done.stderr
    return done


def records(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {r["account"]: r for r in map(json.loads, done.stdout.splitlines())}


# -- checked before anything runs -------------------------------------------------


def test_refused_key_exits_2_before_any_mailbox(
    smartlead: SmartLeadServer, trap: Trap, tmp_path: Path
) -> None:
    """A refused key (its 401 body echoing it) exits 2 at once; no mailbox is contacted."""
    smartlead.faults.update(echo=True)
    accounts = write(tmp_path / "a.jsonl", [trapped(trap, n) for n in range(3)])
    done = run(smartlead.base_url, accounts, key="wrong-key-CANARY-55")
    ended = time.monotonic()
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().endswith(
        "SmartLead refused the API key (401): Invalid API key: ********. "
        "Nothing was checked or sent."
    )
    assert [(r.method, r.query.get("limit")) for r in smartlead.received] == [("GET", ["1"])]
    assert trap.connections == 0
    assert ended - smartlead.received[0].time < 1.0  # the refusal ends the run at once


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("http://[::1", "is not a valid URL"),
        ("http://127.0.0.1:99999/api/v1", "port 99999 is not between 1 and 65535"),
        ("127.0.0.1:8080/api/v1", "must start with https:// (or http://)"),
        ("ftp://127.0.0.1/api/v1", "must start with https:// (or http://)"),
    ],
)
def test_bad_base_url_exits_2_before_any_check(
    trap: Trap, tmp_path: Path, base_url: str, problem: str
) -> None:
    """An unusable --base-url is exit 2 with its reason, before any mailbox is contacted."""
    accounts = write(tmp_path / "a.jsonl", [trapped(trap)])
    done = run(base_url, accounts)
    assert done.returncode == 2
    assert problem in done.stderr
    assert trap.connections == 0
    assert not (tmp_path / "a.jsonl.journal.jsonl").exists()


def test_journal_directory_exits_2(smartlead: SmartLeadServer, trap: Trap, tmp_path: Path) -> None:
    """A journal path that is a directory: exit 2, one clear line, nothing contacted."""
    accounts = write(tmp_path / "a.jsonl", [trapped(trap)])
    done = run(smartlead.base_url, accounts, "--journal", str(tmp_path))
    assert done.returncode == 2
    assert f"{tmp_path}: the journal is a directory" in done.stderr
    assert (smartlead.received, trap.connections) == ([], 0)


def test_journal_not_writable_exits_2(
    smartlead: SmartLeadServer, trap: Trap, tmp_path: Path
) -> None:
    """A journal that cannot be created: exit 2, one clear line, nothing contacted."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    accounts = write(tmp_path / "a.jsonl", [trapped(trap)])
    done = run(smartlead.base_url, accounts, "--journal", str(blocker / "j.jsonl"))
    assert done.returncode == 2
    assert f"{blocker / 'j.jsonl'}: cannot" in done.stderr
    assert (smartlead.received, trap.connections) == ([], 0)


def test_journal_of_another_platform_exits_2(
    smartlead: SmartLeadServer, trap: Trap, tmp_path: Path
) -> None:
    """A journal written against another --base-url is refused, not read as 'saved'."""
    accounts = write(tmp_path / "a.jsonl", [trapped(trap)])
    journal = Path(str(accounts) + ".journal.jsonl")
    other = Journal.open(journal, base_url="http://127.0.0.1:9/api/v1", api_key=API_KEY)
    other.close()
    done = run(smartlead.base_url, accounts)
    assert done.returncode == 2
    assert f"records saves to http://127.0.0.1:9/api/v1, not to {smartlead.base_url}" in (
        done.stderr
    )
    assert (smartlead.received, trap.connections) == ([], 0)


def test_journal_of_another_key_exits_2(
    smartlead: SmartLeadServer, trap: Trap, tmp_path: Path
) -> None:
    """A journal written with another API key is refused."""
    accounts = write(tmp_path / "a.jsonl", [trapped(trap)])
    journal = Path(str(accounts) + ".journal.jsonl")
    Journal.open(journal, base_url=smartlead.base_url, api_key="other-key-CANARY").close()
    done = run(smartlead.base_url, accounts, secrets=("other-key-CANARY",))
    assert done.returncode == 2
    assert "this journal was written with another API key" in done.stderr
    assert (smartlead.received, trap.connections) == ([], 0)


def test_busy_journal_exits_2(smartlead: SmartLeadServer, trap: Trap, tmp_path: Path) -> None:
    """While another run holds the journal, a second run exits 2 naming its pid."""
    accounts = write(tmp_path / "a.jsonl", [trapped(trap)])
    journal = Path(str(accounts) + ".journal.jsonl")
    with Journal.open(journal, base_url=smartlead.base_url, api_key=API_KEY):
        done = run(smartlead.base_url, accounts)
    assert done.returncode == 2
    assert f"another preflight submit is using {journal} (pid {os.getpid()})" in done.stderr
    assert (smartlead.received, trap.connections) == ([], 0)


def test_unreadable_journal_lines_are_named(smartlead: SmartLeadServer, tmp_path: Path) -> None:
    """A journal line that is not UTF-8 is skipped and named by number; the run goes on."""
    accounts = write(tmp_path / "a.jsonl", [{"from_email": "bad@example.test"}])
    journal = Path(str(accounts) + ".journal.jsonl")
    Journal.open(journal, base_url=smartlead.base_url, api_key=API_KEY).close()
    with journal.open("ab") as handle:
        handle.write(b'{"key": "x\xff", "event": "saved"}\n')
    done = run(smartlead.base_url, accounts, "--format", "jsonl")
    assert done.returncode == 1
    assert f"{journal}: skipped unreadable line(s) 2 (not UTF-8 or not a journal entry)" in (
        done.stderr
    )
    assert records(done)["bad@example.test"]["verdict"] == "failed_check"


def test_html_listing_at_start_exits_2(
    smartlead: SmartLeadServer, trap: Trap, tmp_path: Path
) -> None:
    """An HTML page answering the key check (status 200) is exit 2, not a traceback."""
    smartlead.faults.update(listing_html=True)
    accounts = write(tmp_path / "a.jsonl", [trapped(trap)])
    done = run(smartlead.base_url, accounts)
    assert done.returncode == 2
    assert "listing accounts answered HTTP 200 with a body that is not JSON (text/html)" in (
        done.stderr
    )
    assert trap.connections == 0


# -- the client against the stand-in ---------------------------------------------


def client_for(server: SmartLeadServer, notices: list[str] | None = None) -> SmartLeadClient:
    return SmartLeadClient(
        Secret(API_KEY),
        server.base_url,
        max_retry_wait=5,
        notify=None if notices is None else notices.append,
    )


def body(email: str = "ana@example.test", **changes: Any) -> dict[str, Any]:
    data = {
        "from_name": "Ana",
        "from_email": email,
        "user_name": email,
        "password": "pw-body-CANARY-31",
        "smtp_host": "mail.example.test",
        "smtp_port": 587,
        "imap_host": "mail.example.test",
        "imap_port": 993,
        "warmup_enabled": False,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_client_html_listing_is_lookup_failed(smartlead: SmartLeadServer) -> None:
    """A look-up answered with HTML and status 200 is LookupFailed, not JSONDecodeError."""
    smartlead.faults.update(listing_html=True)

    async def look() -> None:
        async with client_for(smartlead) as api:
            await api.find_accounts("ana@example.test")

    with pytest.raises(LookupFailed) as failed:
        asyncio.run(look())
    assert str(failed.value) == (
        "listing accounts answered HTTP 200 with a body that is not JSON (text/html): "
        "a proxy or login page in the way?"
    )


def test_client_documented_errors_keep_both_parts(smartlead: SmartLeadServer) -> None:
    """The documented 400 keeps 'Invalid credentials'; the 422 string error is kept as is."""
    smartlead.faults.update(error_style="documented", connection_failed={"ana@example.test"})

    async def send() -> list[tuple[SaveOutcome, int | None, str]]:
        async with client_for(smartlead) as api:
            results = [await api.save(body()), await api.save(body("bo@x.test", from_name=None))]
        return [(r.outcome, r.status, r.message) for r in results]

    assert asyncio.run(send()) == [
        (SaveOutcome.REJECTED, 400, "SMTP connection failed: Invalid credentials"),
        (SaveOutcome.REJECTED, 422, "from_name is required"),
    ]


def test_client_scrubs_echoed_body_and_url(smartlead: SmartLeadServer) -> None:
    """A 400 quoting the body and a 500 quoting the URL keep neither password nor key."""
    smartlead.faults.update(
        echo=True, connection_failed={"ana@example.test"}, server_error={"bo@x.test"}
    )

    async def send() -> list[str]:
        async with client_for(smartlead) as api:
            return [(await api.save(body(e))).message for e in ("ana@example.test", "bo@x.test")]

    rejected, failed = asyncio.run(send())
    text = rejected + failed
    assert [s for s in (API_KEY, "pw-body-CANARY-31") if s in text] == []
    assert '"password": "********"' in rejected
    assert "api_key=********" in failed


@pytest.mark.parametrize("retry_after", ["86400", "inf"])
def test_client_long_retry_after_is_not_waited(
    smartlead: SmartLeadServer, retry_after: str
) -> None:
    """A Retry-After beyond the cap is not waited: not_sent at once, and said."""
    smartlead.faults.update(force_429=1, retry_after=retry_after)
    notices: list[str] = []

    async def send() -> tuple[SaveOutcome, str]:
        async with client_for(smartlead, notices) as api:
            result = await api.save(body())
        return result.outcome, result.message

    started = time.monotonic()
    outcome, message = asyncio.run(send())
    wait = "forever" if retry_after == "inf" else "86400 s"
    expected = (
        f"SmartLead asks to wait {wait} (Retry-After); more than --max-retry-wait 5 s: "
        "not sending ana@example.test"
    )
    assert (outcome, message, notices) == (SaveOutcome.NOT_SENT, expected, [expected])
    assert time.monotonic() - started < 2
    assert smartlead.accounts == {}


# -- end to end, with the mail stack ------------------------------------------------


@pytest.mark.parametrize("output_format", ["text", "json", "jsonl"])
def test_echoed_secrets_never_shown_or_journaled(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path, output_format: str
) -> None:
    """400/422 bodies quoting the password and a 500 quoting ?api_key= reach neither
    the output (any format) nor the journal; the journal is 0600."""
    needs_postfix(stack)
    password = stack.credentials()[1]
    rejected, invalid, failed = (good(stack, n) for n in range(3))
    invalid["id"] = 999_999  # unknown: a 422
    smartlead.faults.update(
        echo=True,
        connection_failed={rejected["from_email"]},
        server_error={failed["from_email"]},
    )
    accounts = write(tmp_path / "a.jsonl", [rejected, invalid, failed])
    done = run(
        smartlead.base_url,
        accounts,
        "--format",
        output_format,
        stack=stack,
        secrets=(password,),
    )
    assert done.returncode == 1
    statuses = sorted(r.status or 0 for r in smartlead.received if r.is_save)
    assert statuses == [400, 422, 500]
    journal = Path(str(accounts) + ".journal.jsonl")
    text = journal.read_text(encoding="utf-8")
    assert [s for s in (API_KEY, password) if s in text] == []
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    outcomes = {
        entry["key"]: (entry["http_status"], entry["message"])
        for entry in map(json.loads, text.splitlines()[1:])
        if entry["event"] != "sending"
    }
    # What was echoed is kept, masked.
    assert '"password": "********"' in outcomes[rejected["from_email"]][1]
    assert '"password": "********"' in outcomes[invalid["from_email"]][1]
    assert outcomes[failed["from_email"]] == (
        500,
        "server error (Internal error while handling POST /api/v1/email-accounts/save"
        "?api_key=********); the account may exist",
    )


def test_long_retry_after_is_said_and_not_sent(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """Retry-After: 86400 is not obeyed silently: stderr says so, the account is not_sent."""
    needs_postfix(stack)
    account = good(stack, 0)
    smartlead.faults.update(force_429=1, retry_after="86400")
    accounts = write(tmp_path / "a.jsonl", [account])
    started = time.monotonic()
    done = run(smartlead.base_url, accounts, "--format", "jsonl", stack=stack)
    assert done.returncode == 1
    assert time.monotonic() - started < 60
    message = (
        "SmartLead asks to wait 86400 s (Retry-After); more than --max-retry-wait 120 s: "
        f"not sending {account['from_email']}"
    )
    assert message in done.stderr.splitlines()
    record = records(done)[account["from_email"]]
    assert (record["verdict"], record["message"]) == ("not_sent", message)
    assert smartlead.accounts == {}


def test_short_retry_after_is_said_and_waited(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """A Retry-After within --max-retry-wait is waited out, and stderr says how long."""
    needs_postfix(stack)
    account = good(stack, 0)
    smartlead.faults.update(force_429=1, retry_after="2")
    accounts = write(tmp_path / "a.jsonl", [account])
    done = run(smartlead.base_url, accounts, "--format", "jsonl", stack=stack)
    assert done.returncode == 0, done.stderr
    assert (
        f"SmartLead asks to wait 2 s (Retry-After); waiting before sending {account['from_email']}"
    ) in done.stderr.splitlines()
    assert len(smartlead.accounts_of(account["from_email"])) == 1


def test_revoked_key_mid_run_exits_2_without_traceback(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """A key revoked after the start: the saves in flight are refused, the run stops
    cleanly with exit 2 and the journal says 'not_sent'."""
    needs_postfix(stack)
    # The key check passes, then every request is 401, its body quoting the key.
    smartlead.faults.update(revoke_key_after=1, echo=True)
    accounts = write(tmp_path / "a.jsonl", [good(stack, n) for n in range(3)])
    done = run(smartlead.base_url, accounts, "--concurrency", "3", stack=stack)
    assert done.returncode == 2
    assert (
        "SmartLead refused the API key (401): Invalid API key: ********. Nothing more was sent"
        in done.stderr
    )
    assert smartlead.accounts == {}
    journal = Path(str(accounts) + ".journal.jsonl").read_text().splitlines()
    events = [json.loads(line).get("event") for line in journal[1:]]
    assert events.count("not_sent") == events.count("sending") >= 1


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda local, domain: (local + "e\u0301", domain.upper()), id="non-NFC"),
    ],
)
def test_other_spelling_is_not_posted_again(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path, spelling: Any
) -> None:
    """An address whose normal form differs from the input is saved once, not every run."""
    needs_postfix(stack)
    user = stack.credentials()[0]
    local, domain = spelling(*user.split("@"))
    account = good(stack, 0, from_email=f"{local}@{domain}")
    accounts = write(tmp_path / "a.jsonl", [account])
    first = run(smartlead.base_url, accounts, "--format", "jsonl", stack=stack)
    second = run(smartlead.base_url, accounts, "--format", "jsonl", stack=stack)
    assert (first.returncode, second.returncode) == (0, 0), first.stdout + second.stderr
    assert [r["verdict"] for r in records(second).values()] == ["already_saved"]
    assert len([r for r in smartlead.received if r.is_save]) == 1


def test_two_runs_and_a_kill_mid_post_save_each_account_once(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """Two runs on one journal (the second refused), the first killed mid-POST, a torn
    journal tail, then a rerun: each account exists exactly once on the platform."""
    needs_postfix(stack)
    count = 4
    emails = [good(stack, n)["from_email"] for n in range(count)]
    accounts = write(tmp_path / "a.jsonl", [good(stack, n) for n in range(count)])
    journal = Path(str(accounts) + ".journal.jsonl")
    smartlead.faults.update(delay=1.5)  # every save: applied 1.5 s after it arrives
    env = {**os.environ, "SMARTLEAD_API_KEY": API_KEY}
    args = command(smartlead.base_url, accounts, "--concurrency", "1", "--burst", "1", stack=stack)
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while len(smartlead.accounts) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        # The first run holds the journal: a second one on it is refused at once.
        second = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
        assert second.returncode == 2
        assert f"another preflight submit is using {journal} (pid {first.pid})" in second.stderr
        # Kill the first while a save is on the wire (arrived, not answered yet).
        while time.monotonic() < deadline:
            pending = [r for r in smartlead.received if r.is_save and r.status is None]
            if pending and len(smartlead.accounts) < count:
                break
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    assert 1 <= len(smartlead.accounts) < count
    # The stand-in applies the killed POST after its delay: wait for it, as a
    # platform does before the client's next run.
    while any(r.is_save and r.status is None and r.account_id is None for r in smartlead.received):
        time.sleep(0.05)
        if time.monotonic() > deadline:
            break
    with journal.open("a", encoding="utf-8") as handle:
        handle.write('{"key": "' + emails[-1] + '", "event": "sav')  # torn
    smartlead.faults.update(delay=0)
    done = run(smartlead.base_url, accounts, "--format", "jsonl", stack=stack)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "was cut short (a crash mid-write)" in done.stderr
    assert [len(smartlead.accounts_of(email)) for email in emails] == [1] * count
