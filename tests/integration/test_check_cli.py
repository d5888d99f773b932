"""`preflight check` end to end, in a real process, against the real local servers."""

from __future__ import annotations

import asyncio
import contextlib
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

import preflight
from fixtures.accounts import valid_payload
from fixtures.pytest_support import tagged
from fixtures.stack import Stack
from preflight.options import CheckOptions, Timeouts
from preflight.report import CHECK_NAMES

CANARY = "CANARY-cli-3q8w"


def needs_postfix(stack: Stack) -> None:
    if "postfix" in stack.unavailable:
        pytest.skip(stack.unavailable["postfix"])


def local_flags(stack: Stack) -> list[str]:
    host, port = stack.dns
    return ["--ca-file", str(stack.ca_file), "--dns-server", f"{host}:{port}", "--dns-for-hosts"]


def options(stack: Stack, **changes: Any) -> CheckOptions:
    host, port = stack.dns
    return CheckOptions(
        ca_file=str(stack.ca_file),
        dns_server=f"{host}:{port}",
        resolve_hosts_with_dns_server=True,
        **changes,
    )


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        check=False,
    )


def write_jsonl(path: Path, bodies: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def test_good_account_passes_every_check(stack: Stack, tmp_path: Path) -> None:
    """A good account: exit 0, and payload, mx, smtp, imap all pass with TLS details."""
    needs_postfix(stack)
    accounts = write_jsonl(tmp_path / "a.jsonl", [valid_payload(stack)])
    done = run("check", str(accounts), "--format", "jsonl", *local_flags(stack))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [c["name"] for c in report["checks"]] == list(CHECK_NAMES)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert {name: statuses[name] for name in CHECK_NAMES[:5]} == {
        "payload": "pass",
        "mx": "pass",
        "smtp": "pass",
        "imap": "pass",
        "domain": "pass",  # SPF, DMARC and DKIM of the test domain are sound
    }
    assert statuses["tracking"] == "skip"  # no custom_tracking_url
    for check in report["checks"][2:4]:
        assert check["details"]["security"] in ("ssl", "starttls")
        assert check["details"]["tls_version"].startswith("TLSv1")
        assert check["details"]["auth_mechanism"]
    assert stack.credentials()[1] not in done.stdout + done.stderr


def test_mixed_file_reports_each_and_exits_1(stack: Stack, tmp_path: Path) -> None:
    """Good, wrong-password and invalid accounts: exit 1, each reported; no canary shown."""
    needs_postfix(stack)
    bodies = [
        valid_payload(stack),
        valid_payload(stack, password=CANARY, smtp_port=465),
        valid_payload(stack, password=CANARY, smtp_port=70000, type="YAHOO"),
        valid_payload(stack, from_email=f"x@{stack.domains['nxdomain']}", password=CANARY),
    ]
    accounts = write_jsonl(tmp_path / "a.jsonl", bodies)
    for fmt in ("json", "jsonl", "text"):
        done = run("check", str(accounts), "--format", fmt, *local_flags(stack))
        assert done.returncode == 1
        assert CANARY not in done.stdout + done.stderr
    document = json.loads(
        run("check", str(accounts), "--format", "json", *local_flags(stack)).stdout
    )
    reports = document["accounts"]
    assert document["ok"] is False
    assert [r["index"] for r in reports] == [0, 1, 2, 3]  # json keeps input order
    codes = [{c["name"]: c["code"] for c in r["checks"]} for r in reports]
    assert {name: codes[0][name] for name in CHECK_NAMES[:5]} == dict.fromkeys(
        CHECK_NAMES[:5], "ok"
    )
    assert codes[1]["smtp"] == "auth_failed"
    assert codes[1]["imap"] == "auth_failed"
    assert codes[2] == {"payload": "payload_invalid", **dict.fromkeys(CHECK_NAMES[1:], "skipped")}
    assert codes[3]["mx"] == "dns_nxdomain"
    assert codes[3]["domain"] == "skipped"  # the mx check already failed it


def test_text_report_shows_hints(stack: Stack, tmp_path: Path) -> None:
    """The text table shows the failing check, its code and its hint."""
    needs_postfix(stack)
    accounts = write_jsonl(tmp_path / "a.jsonl", [valid_payload(stack, password=CANARY)])
    done = run("check", str(accounts), *local_flags(stack))
    assert done.returncode == 1
    assert "smtp      fail  auth_failed" in done.stdout
    assert "hint: " in done.stdout
    assert "1 account: 0 passed, 1 failed" in done.stdout
    assert "\x1b[" not in done.stdout  # NO_COLOR, and not a terminal


def test_account_from_flags_with_password_env(stack: Stack) -> None:
    """One account from flags, the password from an environment variable."""
    needs_postfix(stack)
    user, password = stack.credentials()
    done = run(
        "check",
        "--host",
        stack.mail_host,
        "--port",
        "465",
        "--imap-host",
        stack.mail_host,
        "--imap-port",
        "143",
        "--user",
        user,
        "--password-env",
        "PW",
        "--format",
        "jsonl",
        *local_flags(stack),
        env={"PW": password},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["account"] == user
    assert [c["details"].get("security") for c in report["checks"][2:4]] == ["ssl", "starttls"]


def test_account_from_flags_password_file_and_no_imap(stack: Stack, tmp_path: Path) -> None:
    """--password-file works; without --imap-host the IMAP check is skipped."""
    needs_postfix(stack)
    user, password = stack.credentials()
    secret = tmp_path / "pw"
    secret.write_text(password + "\n")
    done = run(
        "check",
        "--host",
        stack.mail_host,
        "--user",
        user,
        "--password-file",
        str(secret),
        "--format",
        "jsonl",
        *local_flags(stack),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    imap = json.loads(done.stdout)["checks"][3]
    assert (imap["status"], imap["code"]) == ("skip", "skipped")


def test_no_password_source_is_usage_error(stack: Stack) -> None:
    """Without a password source and without a terminal: exit 2 naming the options."""
    done = run("check", "--host", stack.mail_host, "--user", "a@b.test", stdin="")
    assert done.returncode == 2
    assert "--password-env" in done.stderr
    assert "Traceback" not in done.stderr


def test_stdin_hook_pattern(stack: Stack) -> None:
    """`preflight check - < account.json && ...`: the exit status gates the next step."""
    needs_postfix(stack)
    good = run("check", "-", *local_flags(stack), stdin=json.dumps(valid_payload(stack)))
    bad = run(
        "check", "-", *local_flags(stack), stdin=json.dumps(valid_payload(stack, password=CANARY))
    )
    assert (good.returncode, bad.returncode) == (0, 1)
    assert CANARY not in bad.stdout + bad.stderr


@pytest.fixture
def listener() -> Iterator[tuple[int, list[float]]]:
    """A TCP port that accepts and records connections, and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[float] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(time.monotonic())
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_invalid_payload_contacts_nothing(
    stack: Stack, listener: tuple[int, list[float]], tmp_path: Path
) -> None:
    """An invalid payload skips every network check: the server sees no connection."""
    port, accepted = listener
    body = valid_payload(
        stack,
        smtp_host="127.0.0.1",
        smtp_port=port,
        imap_host="127.0.0.1",
        imap_port=port,
        smtp_prot=port,
    )
    done = run("check", "-", "--format", "jsonl", *local_flags(stack), stdin=json.dumps(body))
    assert done.returncode == 1
    assert json.loads(done.stdout)["checks"][0]["code"] == "payload_invalid"
    assert accepted == []


def test_silent_servers_cannot_hold_past_deadline(
    stack: Stack, listener: tuple[int, list[float]]
) -> None:
    """Servers that never speak: the account's report comes within --timeout + 1 s."""
    port, accepted = listener
    body = valid_payload(
        stack, smtp_host="127.0.0.1", smtp_port=port, imap_host="127.0.0.1", imap_port=port
    )
    started = time.monotonic()
    done = run(
        "check",
        "-",
        "--format",
        "jsonl",
        "--timeout",
        "3",
        *local_flags(stack),
        stdin=json.dumps(body),
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["checks"][2]["code"] in ("greeting_timeout", "timeout")
    assert report["checks"][3]["code"] in ("greeting_timeout", "timeout")
    assert len(accepted) >= 2
    for check in report["checks"]:
        assert check["elapsed_ms"] <= (3 + 1) * 1000  # the deadline and its 1 s allowance
    assert elapsed < 3 + 1 + 3  # the same, seen from outside, with interpreter start-up


def test_check_sync_library_hook(stack: Stack) -> None:
    """preflight.check_sync(payload) returns a report with .ok, for hooks in other tools."""
    needs_postfix(stack)
    good = preflight.check_sync(valid_payload(stack), options(stack))
    bad = preflight.check_sync(valid_payload(stack, password=CANARY), options(stack))
    assert good.ok is True
    assert bad.ok is False
    assert bad.check("smtp").code is preflight.Code.AUTH_FAILED
    assert CANARY not in repr(bad) + json.dumps(bad.to_dict())


@pytest.mark.asyncio
async def test_probes_run_side_by_side(stack: Stack) -> None:
    """One account's wall time is close to its slowest probe, not the sum of them."""

    async def slow_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.6)  # every probe spends 0.6 s waiting for a greeting
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    server = await asyncio.start_server(slow_then_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    body = valid_payload(
        stack, smtp_host="127.0.0.1", smtp_port=port, imap_host="127.0.0.1", imap_port=port
    )
    opts = options(
        stack, smtp_security="plain", imap_security="plain", timeouts=Timeouts(sniff_after=30)
    )
    try:
        started = time.perf_counter()
        report = await preflight.check_account(body, opts)
        wall = time.perf_counter() - started
    finally:
        server.close()
        await server.wait_closed()
    smtp, imap = report.check("smtp"), report.check("imap")
    assert (smtp.code, imap.code) == (preflight.Code.PROTOCOL_ERROR, preflight.Code.PROTOCOL_ERROR)
    assert min(smtp.elapsed_ms, imap.elapsed_ms) >= 550
    assert wall < 1.0  # in a row they would take at least 1.2 s


@pytest.mark.asyncio
async def test_check_many_bounded_and_streaming(stack: Stack) -> None:
    """check_many yields one report per account, each once, under a concurrency bound."""
    needs_postfix(stack)
    bodies = [
        valid_payload(stack) if i % 2 else valid_payload(stack, password=CANARY) for i in range(8)
    ]
    seen = [
        (report.index, report.ok)
        async for report in preflight.check_many(bodies, options(stack), concurrency=3)
    ]
    assert sorted(seen) == [(i, bool(i % 2)) for i in range(8)]


@pytest.mark.asyncio
async def test_check_sync_refuses_inside_a_loop() -> None:
    """check_sync inside a running loop says to await check_account instead."""
    with pytest.raises(RuntimeError, match="await check_account"):
        preflight.check_sync({})
    await asyncio.sleep(0)


def test_deadline_options_are_one_object() -> None:
    """Timeouts live in one object with a default for every step."""
    assert CheckOptions().timeouts == Timeouts()
    assert CheckOptions().timeout == 30


def test_domain_problems_warn_unless_strict(stack: Stack, tmp_path: Path) -> None:
    """A sending domain without SPF/DMARC/DKIM warns (exit 0); --strict fails it (exit 1)."""
    needs_postfix(stack)
    body = valid_payload(stack, from_email=f"alice@{stack.domains['a_only']}")
    accounts = write_jsonl(tmp_path / "a.jsonl", [body])
    relaxed = run("check", str(accounts), "--format", "jsonl", *local_flags(stack))
    strict = run("check", str(accounts), "--format", "jsonl", "--strict", *local_flags(stack))
    assert (relaxed.returncode, strict.returncode) == (0, 1)
    domain = json.loads(relaxed.stdout)["checks"][4]
    assert (domain["name"], domain["status"], domain["code"]) == ("domain", "warn", "spf_missing")
    assert {p["code"] for p in domain["details"]["problems"]} >= {"spf_missing", "dmarc_missing"}
    assert domain["hint"]
    assert json.loads(strict.stdout)["checks"][4]["status"] == "fail"


@pytest.mark.needs_local_servers
def test_roundtrip_from_the_command_line(stack: Stack, tmp_path: Path) -> None:
    """--roundtrip: a real message goes out over 465 and is found over 993, then deleted."""
    needs_postfix(stack)
    good = valid_payload(stack, smtp_port=465)
    wrong_box = valid_payload(
        stack,
        smtp_port=465,
        imap_user_name=list(stack.users)[1],
        imap_password=list(stack.users.values())[1],
    )
    accounts = write_jsonl(tmp_path / "a.jsonl", [good, wrong_box])
    try:
        done = run(
            "check",
            str(accounts),
            "--format",
            "json",
            "--roundtrip",
            "--timeout",
            "6",
            *local_flags(stack),
        )
    finally:
        # The message of the second account went to alice's INBOX and was not found
        # where bob's IMAP login looked: remove it, other tests count INBOX.
        for user in stack.users:
            tagged(stack, user, purge=True)
    reports = json.loads(done.stdout)["accounts"]
    first, second = (r["checks"][-1] for r in reports)
    assert (first["name"], first["status"], first["details"]["folder"]) == (
        "roundtrip",
        "pass",
        "INBOX",
    )
    assert first["details"]["deleted"] is True
    assert first["details"]["delivery_ms"] > 0
    assert (second["status"], second["code"]) == ("fail", "roundtrip_not_delivered")
    assert done.returncode == 1
    plain = run("check", str(accounts), "--format", "json", *local_flags(stack))
    names = [c["name"] for c in json.loads(plain.stdout)["accounts"][0]["checks"]]
    assert names == list(CHECK_NAMES)  # no roundtrip without --roundtrip


def test_unreachable_port_hint_names_settings_that_answer(stack: Stack, tmp_path: Path) -> None:
    """When the configured port does not answer, the hint names the ones that do."""
    needs_postfix(stack)
    accounts = write_jsonl(tmp_path / "a.jsonl", [valid_payload(stack, smtp_port=2525)])
    done = run("check", str(accounts), "--format", "jsonl", *local_flags(stack))
    smtp = json.loads(done.stdout)["checks"][2]
    assert smtp["code"] == "connect_refused"
    assert f"{stack.mail_host}:465" in smtp["details"]["answers"]
    assert "answers" in smtp["hint"]


# --- issue 9: the output side ---------------------------------------------------------


def test_text_report_of_insecure_warnings(stack: Stack, tmp_path: Path) -> None:
    """--insecure: passing smtp/imap checks carry warnings; text renders them, exit 0."""
    needs_postfix(stack)
    accounts = write_jsonl(
        tmp_path / "a.jsonl", [valid_payload(stack), valid_payload(stack, smtp_port=465)]
    )
    done = run("check", str(accounts), "--insecure", *local_flags(stack))
    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("WARN  ") == 2
    assert "the certificate was not verified (--insecure)" in done.stdout
    assert "2 accounts: 2 passed (2 with warnings), 0 failed" in done.stdout
    document = json.loads(
        run("check", str(accounts), "--insecure", "--format", "json", *local_flags(stack)).stdout
    )
    smtp = document["accounts"][0]["checks"][2]
    assert smtp["details"]["warnings"] == [
        {"message": "the certificate was not verified (--insecure)"}
    ]


@contextlib.contextmanager
def hostile_smtp() -> Iterator[int]:
    """A clear-text SMTP server whose AUTH reply holds non-UTF-8 bytes and an OSC title."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def talk(conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 stub ESMTP \x1b[2J\r\n")
            for line in lines:
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-stub\r\n250 AUTH PLAIN LOGIN\r\n")
                elif verb == b"AUTH":
                    conn.sendall(b"535 5.7.8 bad \xff\xfe \x1b]0;pwned\x07 \x9b2J\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"502 no\r\n")

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            threading.Thread(target=talk, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


def test_non_utf8_reply_does_not_crash_any_output(stack: Stack, tmp_path: Path) -> None:
    """A reply with non-UTF-8 bytes and control sequences: -o FILE and a strict stdout survive."""
    with hostile_smtp() as port:
        body = valid_payload(stack, smtp_host="127.0.0.1", smtp_port=port, password=CANARY)
        accounts = write_jsonl(tmp_path / "a.jsonl", [body])
        flags = ["--smtp-security", "plain", "--allow-plaintext-auth", "--timeout", "5"]
        flags += ["--no-domain-check", *local_flags(stack)]
        for fmt in ("text", "json", "jsonl"):
            out = tmp_path / f"r.{fmt}"
            for target in (["-o", str(out)], []):
                command = ["check", str(accounts), "--format", fmt, *flags, *target]
                done = subprocess.run(
                    [sys.executable, "-m", "preflight", *command],
                    capture_output=True,
                    timeout=60,
                    env={**os.environ, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8:strict"},
                    check=False,
                )
                assert done.returncode == 1, done.stderr
                assert b"Traceback" not in done.stderr
                text = out.read_text(encoding="utf-8") if target else done.stdout.decode()
                assert CANARY not in text
                if fmt == "text":
                    assert "\x1b" not in text
                    assert "\x9b" not in text
                    assert "\\xff" in text  # the reply's 0xff byte, escaped
                    assert "smtp      fail  auth_failed" in text
                else:
                    data = json.loads(text)
                    report = data["accounts"][0] if fmt == "json" else data
                    smtp = report["checks"][2]
                    assert smtp["code"] == "auth_failed"
                    assert "\\xff" in smtp["details"]["reply"]  # the byte, escaped


def test_ctrl_c_with_output_file_keeps_interrupted_document(
    stack: Stack, listener: tuple[int, list[float]], tmp_path: Path
) -> None:
    """SIGINT with --format json -o FILE: FILE untouched until then, then the interrupted
    document, mode 0600, no temporary file left."""
    port, accepted = listener
    body = valid_payload(
        stack, smtp_host="127.0.0.1", smtp_port=port, imap_host="127.0.0.1", imap_port=port
    )
    accounts = write_jsonl(tmp_path / "a.jsonl", [valid_payload(stack, smtp_prot=1)] + [body] * 8)
    out = tmp_path / "report.json"
    out.write_text("previous report\n")
    out.chmod(0o644)
    command = ["check", str(accounts), "--format", "json", "-o", str(out), "--timeout", "60"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "preflight", *command, "--concurrency", "2", *local_flags(stack)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    deadline = time.monotonic() + 30
    while len(accepted) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.read_text() == "previous report\n"  # the run is under way; FILE is intact
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    document = json.loads(out.read_text())
    assert document["interrupted"] is True
    assert document["ok"] is False
    assert document["accounts"][0]["checks"][0]["code"] == "payload_invalid"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "report.json"]
