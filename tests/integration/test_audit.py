"""`preflight audit` end to end: the local SmartLead stand-in holding accounts, the real
mail servers of the test stack, a Microsoft-like server through the test DNS, real
processes. No password the platform hands out may reach any output or file."""

from __future__ import annotations

import csv
import datetime
import html.parser
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from dnslib import QTYPE, RR, TXT, A  # type: ignore[import-untyped]

from fixtures.accounts import USERS, valid_payload
from fixtures.certs import CertFiles
from fixtures.dns_server import DnsServer, Zone, build_zone
from fixtures.pytest_support import unavailable
from fixtures.smartlead import RateLimit, SmartLeadServer
from fixtures.smtpd import SmtpdServers, SmtpdSpec
from fixtures.stack import Stack
from preflight.report import CHECK_NAMES

API_KEY = "sl-key-CANARY-audit-5v8w"
CANARY = "CANARY-audit-pw-2k7j"
MS_HOST = "smtp.office365.com"


@pytest.fixture
def smartlead() -> Iterator[SmartLeadServer]:
    with SmartLeadServer(api_key=API_KEY, rate_limit=RateLimit(enabled=False)) as server:
        yield server
        assert server.errors == []


def needs_postfix(stack: Stack) -> None:
    if "postfix" in stack.unavailable:
        pytest.skip(stack.unavailable["postfix"])


def good(stack: Stack, n: int = 0, **changes: Any) -> dict[str, Any]:
    """A good account on the stack; n makes its from_email unique (same mailbox)."""
    local, domain = stack.credentials()[0].split("@")
    numbered = {"from_name": f"Sender {n}", "from_email": f"{local}+a{n}@{domain}"}
    return valid_payload(stack, **{**numbered, **changes})


def secrets(stack: Stack) -> list[str]:
    return [API_KEY, CANARY, *USERS.values()]


def leaked(text: str, stack: Stack) -> list[str]:
    return [s for s in secrets(stack) if s in text]


def command(
    stack: Stack, server: SmartLeadServer, *extra: str, dns: tuple[str, int] | None = None
) -> list[str]:
    host, port = dns or stack.dns
    return [
        sys.executable,
        "-m",
        "preflight",
        "audit",
        "--base-url",
        server.base_url,
        "--ca-file",
        str(stack.ca_file),
        "--dns-server",
        f"{host}:{port}",
        "--dns-for-hosts",
        "--timeout",
        "10",
        "--rate-per-minute",
        "100000",
        "--burst",
        "1000",
        *extra,
    ]


def run(
    stack: Stack,
    server: SmartLeadServer,
    *extra: str,
    env: dict[str, str] | None = None,
    dns: tuple[str, int] | None = None,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command(stack, server, *extra, dns=dns),
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "NO_COLOR": "1", "SMARTLEAD_API_KEY": API_KEY, **(env or {})},
        check=False,
    )
    assert leaked(done.stdout + done.stderr, stack) == [], "a secret was printed"
    return done


def reports(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    document = json.loads(done.stdout)
    return {r["account"]: r for r in document["accounts"]}


def codes(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["code"] for c in report["checks"]}


def problems(report: dict[str, Any]) -> list[str]:
    audit = next(c for c in report["checks"] if c["name"] == "audit")
    return [p["code"] for p in audit["details"].get("problems", [])]


@pytest.fixture
def platform(stack: Stack, smartlead: SmartLeadServer) -> dict[str, dict[str, Any]]:
    """A platform holding a good account, a broken one it still shows connected, a good
    one it wrongly shows disconnected, and a broken one it rightly shows disconnected."""
    needs_postfix(stack)
    bodies = {
        "good": good(stack, 0),
        "broken": good(stack, 1, password=CANARY),
        "wrongly_disconnected": good(stack, 2),
        "rightly_disconnected": good(stack, 3, password=CANARY + "x"),
    }
    smartlead.add_account(bodies["good"], client_id=7)
    smartlead.add_account(bodies["broken"])
    smartlead.add_account(
        bodies["wrongly_disconnected"],
        smtp_ok=False,
        imap_ok=False,
        smtp_failure_error=f"535 Authentication failed for {USERS[stack.credentials()[0]]}",
    )
    smartlead.add_account(bodies["rightly_disconnected"], smtp_ok=False)
    return bodies


def test_audit_reports_platform_and_disagreement(
    stack: Stack, smartlead: SmartLeadServer, platform: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Every account is checked as `check` does; each report carries the platform's view
    and where it disagrees with preflight; no password reaches the output or the file."""
    out = tmp_path / "audit.json"
    done = run(stack, smartlead, "--format", "json", "--output", str(out))
    assert done.returncode == 1, done.stderr
    got = reports(subprocess.CompletedProcess([], 0, out.read_text(), ""))
    assert set(got) == {body["from_email"] for body in platform.values()}

    ok = got[platform["good"]["from_email"]]
    assert ok["ok"] is True
    assert [c["name"] for c in ok["checks"]] == [*CHECK_NAMES, "audit"]
    assert codes(ok)["smtp"] == codes(ok)["imap"] == "ok"
    assert ok["platform"]["id"] == 1
    assert ok["platform"]["status"] == "connected"
    assert ok["platform"]["client_id"] == 7
    assert ok["platform"]["warmup_status"] == "ACTIVE"
    assert ok["platform"]["warmup_reputation"] == "100%"
    assert ok["platform"]["disagreement"] == []

    broken = got[platform["broken"]["from_email"]]
    assert broken["ok"] is False
    assert codes(broken)["smtp"] == "auth_failed"
    assert broken["platform"]["status"] == "connected"
    assert [(d["protocol"], d["platform"]) for d in broken["platform"]["disagreement"]] == [
        ("smtp", "connected"),
        ("imap", "connected"),
    ]
    assert "it will disconnect" in broken["platform"]["disagreement"][0]["message"]

    wrong = got[platform["wrongly_disconnected"]["from_email"]]
    assert wrong["ok"] is True
    assert wrong["platform"]["status"] == "disconnected"
    # The platform's own error quoted the password: it is masked.
    assert wrong["platform"]["smtp_failure_error"] == "535 Authentication failed for ********"
    assert [d["platform"] for d in wrong["platform"]["disagreement"]] == ["failing", "failing"]
    assert "a reconnect will fix it" in wrong["platform"]["disagreement"][0]["message"]
    assert problems(wrong) == ["reconnect_needed"]

    agreed = got[platform["rightly_disconnected"]["from_email"]]
    assert agreed["platform"]["status"] == "smtp_failing"
    assert [d["protocol"] for d in agreed["platform"]["disagreement"]] == ["imap"]

    # One listing call and one fetch per account; nothing saved.
    paths = [(r.method, r.path.rstrip("/").rsplit("/", 1)[-1]) for r in smartlead.received]
    assert paths == [("GET", "email-accounts"), *[("GET", str(i)) for i in range(1, 5)]]
    assert not any(r.is_save for r in smartlead.received)
    assert (out.stat().st_mode & 0o777) == 0o600
    assert leaked(out.read_text(), stack) == []
    assert done.stdout == ""


def test_audit_text_summary(
    stack: Stack, smartlead: SmartLeadServer, platform: dict[str, dict[str, Any]]
) -> None:
    """The text report says per account what the platform shows, where it is wrong, and
    sums up by code and by platform status."""
    done = run(stack, smartlead)
    assert done.returncode == 1
    text = done.stdout
    assert "platform  connected (id 1; warmup ACTIVE, 100%)" in text
    assert "! SmartLead shows SMTP disconnected (535 Authentication failed for ********)" in text
    assert "! SmartLead shows SMTP connected, but the login fails now (auth_failed)" in text
    assert "4 accounts: 2 passed" in text
    assert "on the platform: 2 connected, 1 disconnected, 1 smtp_failing" in text
    assert (
        "accounts where preflight and the platform disagree: 1 a reconnect will fix, "
        "2 will disconnect"
    ) in text
    assert "reconnect_needed" in text


def test_filters_reach_the_listing(stack: Stack, smartlead: SmartLeadServer) -> None:
    """--esp, --client-id, --username and --failing become the listing's filters; only the
    matching accounts are fetched and checked."""
    smartlead.add_account(good(stack, 0, type="OUTLOOK", smtp_port=70000), client_id=3)
    smartlead.add_account(good(stack, 1, type="OUTLOOK", smtp_port=70000), client_id=3)
    smartlead.add_account(good(stack, 2, smtp_port=70000), client_id=3)
    smartlead.add_account(good(stack, 3, type="OUTLOOK", smtp_port=70000), smtp_ok=False)
    smartlead.add_account(
        good(stack, 4, type="OUTLOOK", smtp_port=70000), client_id=3, smtp_ok=False
    )
    done = run(
        stack,
        smartlead,
        *("--esp", "outlook", "--client-id", "3", "--username", "ALICE@"),
        *("--failing", "--format", "jsonl"),
    )
    listing = smartlead.received[0]
    assert {k: v for k, v in listing.query.items() if k != "api_key"} == {
        "esp": ["OUTLOOK"],
        "client_id": ["3"],
        "username": ["ALICE@"],
        "isSmtpSuccess": ["false"],
        "offset": ["0"],
        "limit": ["100"],
    }
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["account"] for r in lines] == [good(stack, 4)["from_email"]]
    assert codes(lines[0])["payload"] == "payload_invalid"  # checked: the port is wrong
    assert [r.path.rstrip("/").rsplit("/", 1)[-1] for r in smartlead.received[1:]] == ["5"]


def test_pagination_past_100(stack: Stack, smartlead: SmartLeadServer) -> None:
    """230 accounts: three listing pages of at most 100, every account audited once, in order."""
    for n in range(230):
        # An invalid port: the payload check fails and nothing is contacted (fast).
        smartlead.add_account(good(stack, n, smtp_port=0))
    done = run(stack, smartlead, "--format", "json")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert [r["platform"]["id"] for r in document["accounts"]] == list(range(1, 231))
    assert [r["index"] for r in document["accounts"]] == list(range(230))
    pages = [
        (r.query["offset"], r.query["limit"])
        for r in smartlead.received
        if r.path.rstrip("/").endswith("email-accounts")
    ]
    assert pages == [(["0"], ["100"]), (["100"], ["100"]), (["200"], ["100"])]
    fetched = [r for r in smartlead.received if not r.path.rstrip("/").endswith("email-accounts")]
    assert len(fetched) == 230


def test_401_at_start(stack: Stack, smartlead: SmartLeadServer) -> None:
    """A refused key: one clear line, exit 2, nothing checked, nothing on stdout."""
    smartlead.add_account(good(stack, 0))
    done = run(stack, smartlead, env={"SMARTLEAD_API_KEY": "wrong-CANARY-key"})
    assert done.returncode == 2
    assert "refused the API key (401)" in done.stderr
    assert "Nothing was checked" in done.stderr
    assert "wrong-CANARY-key" not in done.stdout + done.stderr
    assert done.stdout == ""
    assert len(smartlead.received) == 1


def test_401_in_the_middle_stops(stack: Stack, smartlead: SmartLeadServer) -> None:
    """A key revoked after the listing and one fetch: the audit stops (exit 2), says how
    far it got, and the reports written so far stay whole lines."""
    for n in range(4):
        smartlead.add_account(good(stack, n, smtp_port=0))
    smartlead.faults.update(revoke_key_after=2)
    done = run(stack, smartlead, "--format", "jsonl", "--concurrency", "1")
    assert done.returncode == 2
    assert "refused the API key (401)" in done.stderr
    assert "The audit stopped:" in done.stderr
    assert "of 4 accounts were reported" in done.stderr
    assert [json.loads(line)["index"] for line in done.stdout.splitlines()] in ([], [0])
    assert [r.status for r in smartlead.received] == [200, 200, 401]


def test_5xx_in_the_middle_goes_on(stack: Stack, smartlead: SmartLeadServer) -> None:
    """An account SmartLead fails to return (500) is reported as not checked; the others
    are checked; exit 1."""
    needs_postfix(stack)
    for n in range(3):
        smartlead.add_account(good(stack, n))
    smartlead.faults.update(fetch_error={2})
    done = run(stack, smartlead, "--format", "json")
    assert done.returncode == 1
    got = json.loads(done.stdout)["accounts"]
    assert [r["ok"] for r in got] == [True, False, True]
    middle = got[1]
    assert middle["account"] == good(stack, 1)["from_email"]
    assert middle["checks"][0]["name"] == "fetch"
    assert middle["checks"][0]["code"] == "fetch_failed"
    assert "HTTP 500" in middle["checks"][0]["message"]
    assert {c["status"] for c in middle["checks"][1:]} == {"skip"}
    assert middle["platform"]["id"] == 2
    csv_done = run(stack, smartlead, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(csv_done.stdout)))
    assert [r["verdict"] for r in rows] == ["pass", "not checked", "pass"]


def test_oauth_account_is_not_checked_nor_failed(stack: Stack, smartlead: SmartLeadServer) -> None:
    """An account SmartLead holds no password for (OAuth) is shown with the platform's
    status, every check skipped, and does not fail the audit."""
    smartlead.add_account(good(stack, 0, password="", type="GMAIL"), smtp_ok=False)
    done = run(stack, smartlead, "--format", "json")
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)["accounts"]
    assert report["ok"] is True
    assert report["checks"][0]["name"] == "fetch"
    assert report["checks"][0]["status"] == "skip"
    assert "an OAuth account" in report["checks"][0]["message"]
    assert {c["status"] for c in report["checks"]} == {"skip"}
    assert report["platform"]["status"] == "smtp_failing"
    text = run(stack, smartlead).stdout
    assert text.startswith(f"SKIP  {good(stack, 0)['from_email']}  (#0)  an OAuth account")
    rows = list(csv.DictReader(io.StringIO(run(stack, smartlead, "--format", "csv").stdout)))
    assert [r["verdict"] for r in rows] == ["skipped"]


def test_429_is_waited_out(stack: Stack, smartlead: SmartLeadServer) -> None:
    """A 429 on the listing or a fetch is waited out (Retry-After), and said on stderr."""
    smartlead.add_account(good(stack, 0, smtp_port=0))
    smartlead.faults.update(scope="all", force_429=2, retry_after=1)
    done = run(stack, smartlead, "--format", "jsonl")
    assert done.returncode == 1
    assert "SmartLead asks to wait 1 s (Retry-After)" in done.stderr
    assert [r.status for r in smartlead.received] == [429, 429, 200, 200]
    assert len(done.stdout.splitlines()) == 1


def test_rate_limit_is_kept(stack: Stack) -> None:
    """Within --burst, a platform limiting to 3 calls a second never answers 429."""
    with SmartLeadServer(api_key=API_KEY, rate_limit=RateLimit(per_second=3)) as server:
        for n in range(7):
            server.add_account(good(stack, n, smtp_port=0))
        cmd = command(stack, server, "--format", "jsonl")
        cmd[cmd.index("--burst") + 1] = "3"
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "SMARTLEAD_API_KEY": API_KEY},
            check=False,
        )
        statuses = [r.status for r in server.received]
    assert done.returncode == 1, done.stderr
    assert statuses == [200] * 8
    assert len(done.stdout.splitlines()) == 7


# --- a Microsoft-like server ----------------------------------------------------


def _write_cert(directory: Path, name: str, cert: trustme.LeafCert) -> CertFiles:
    files = CertFiles(cert=directory / f"{name}.pem", key=directory / f"{name}.key")
    files.cert.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    files.key.write_bytes(cert.private_key_pem.bytes())
    return files


@pytest.fixture
def microsoft(stack: Stack, tmp_path: Path) -> Iterator[tuple[tuple[str, int], int, Path]]:
    """An SMTP server on loopback presenting itself as smtp.office365.com (in the test
    DNS and in its certificate, which expires in 20 days): (dns, port, ca_file)."""
    ca = trustme.CA(organization_name="preflight test Microsoft CA")
    now = datetime.datetime.now(datetime.UTC)
    leaf = ca.issue_cert(MS_HOST, not_after=now + datetime.timedelta(days=20, hours=12))
    cert = _write_cert(tmp_path, "office365", leaf)
    assert stack.ca_file is not None
    ca_file = tmp_path / "cas.pem"
    ca_file.write_bytes(stack.ca_file.read_bytes() + ca.cert_pem.bytes())
    zone = build_zone(mail_address=stack.mail_address, strict_address=stack.strict_address)
    records = dict(zone.records)
    records[f"{MS_HOST}."] = (RR(f"{MS_HOST}.", QTYPE.A, rdata=A("127.0.0.1"), ttl=60),)
    dns = DnsServer(Zone(records=records, rcodes=zone.rcodes, dropped=zone.dropped))
    servers = SmtpdServers(USERS, cert, hostname=MS_HOST)
    try:
        address = dns.start()
        port = servers.start([SmtpdSpec("office365", "ssl")])["office365"][1]
        yield address, port, ca_file
    finally:
        servers.stop()
        dns.stop()


def test_microsoft_password_login_is_at_risk(
    stack: Stack,
    smartlead: SmartLeadServer,
    microsoft: tuple[tuple[str, int], int, Path],
) -> None:
    """An Outlook account whose password login works today is warned about (with the
    date and OAuth as the way out), and so is its server's certificate, 20 days from
    expiry; a non-Microsoft account is not."""
    dns, port, ca_file = microsoft
    ms = good(stack, 0, type="OUTLOOK", smtp_host=MS_HOST, smtp_port=port)
    smartlead.add_account(ms)
    smartlead.add_account(good(stack, 1, smtp_port=0))
    done = run(
        stack,
        smartlead,
        *("--format", "json", "--ca-file", str(ca_file), "--no-domain-check"),
        dns=dns,
    )
    got = reports(done)
    report = got[ms["from_email"]]
    assert codes(report)["smtp"] == "ok", report["checks"]
    assert report["ok"] is True
    assert problems(report) == ["basic_auth_ending", "cert_expiring"]
    audit = next(c for c in report["checks"] if c["name"] == "audit")
    assert audit["status"] == "warn"
    first, second = audit["details"]["problems"]
    assert "end of December 2026" in first["message"]
    assert "/email-accounts/save-oauth" in first["hint"]
    assert f"({MS_HOST}) expires in 20 days" in second["message"]
    other = got[good(stack, 1)["from_email"]]
    assert problems(other) == []
    assert done.returncode == 1  # the other account's port is invalid


# --- the HTML report in a real browser --------------------------------------------


class _Rows(html.parser.HTMLParser):
    """The table's body rows (cell texts, by column key) and any element not expected."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict[str, str]] = []
        self.key: str | None = None
        self.images = 0
        self.sorted: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "table":
            self.sorted = named.get("data-sorted")
        if tag == "tr" and "data-index" in named:
            self.rows.append({})
        if tag == "td" and self.rows:
            self.key = named.get("class")
            self.rows[-1][self.key or ""] = ""
        if tag == "img":
            self.images += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.key = None

    def handle_data(self, data: str) -> None:
        if self.key is not None:
            self.rows[-1][self.key] += data


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable("chromium is not installed (fixtures/install-system-deps.sh installs it)")
    return found


def browse(page: Path, tmp_path: Path, *args: str, fragment: str = "") -> str:
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            # The page is a local file: Chromium's own calls home (updates, accounts,
            # component downloads) must not leave the machine, nor even ask DNS.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            *args,
            page.as_uri() + fragment,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dom_rows(dom: str) -> _Rows:
    parsed = _Rows()
    parsed.feed(dom)
    parsed.close()
    return parsed


def test_html_report_renders_sorts_and_shows_no_secret(
    stack: Stack, smartlead: SmartLeadServer, platform: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The HTML audit in headless Chromium: failing first, sorted by a click on a header
    (and back), by #sort= in the address, no markup from the data, no password; a
    screenshot can be taken of it."""
    hostile = good(stack, 9, from_email='<img src=x onerror="alert(1)">@preflight.test')
    smartlead.add_account(hostile)
    page = tmp_path / "audit.html"
    done = run(stack, smartlead, "--format", "html", "--output", str(page))
    assert done.returncode == 1, done.stderr
    assert leaked(page.read_text(), stack) == []

    dom = browse(page, tmp_path, "--dump-dom")
    rows = dom_rows(dom)
    assert len(rows.rows) == 5
    assert rows.images == 0  # the address is text, never an element
    assert leaked(dom, stack) == []
    verdicts = [r["verdict"] for r in rows.rows]
    assert verdicts == ["fail", "fail", "fail", "warn", "pass"]
    assert '<img src=x onerror="alert(1)">@preflight.test' in {r["address"] for r in rows.rows}

    # A click on "Address" sorts by address, a second one the other way round: the
    # page's own click handler, run by the browser (a script appended to a copy).
    clicked = tmp_path / "clicked.html"
    for clicks, order in ((1, "address"), (2, "-address")):
        script = "var h=document.querySelector('th[data-key=address]');" + "h.click();" * clicks
        clicked.write_text(page.read_text().replace("</body>", f"<script>{script}</script></body>"))
        after = dom_rows(browse(clicked, tmp_path, "--dump-dom"))
        addresses = [r["address"] for r in after.rows]
        assert addresses == sorted(addresses, key=str.lower, reverse=clicks == 2)
        assert after.sorted == order

    by_index = dom_rows(browse(page, tmp_path, "--dump-dom", fragment="#sort=-index"))
    assert [int(r["index"]) for r in by_index.rows] == [4, 3, 2, 1, 0]

    shot = tmp_path / "audit-html.png"
    browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1400,600")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "csv", "html"])
def test_no_password_in_any_format_or_file(
    stack: Stack,
    smartlead: SmartLeadServer,
    platform: dict[str, dict[str, Any]],
    tmp_path: Path,
    fmt: str,
) -> None:
    """Whatever the format, the report (standard output or --output, mode 0600) and every
    file the run leaves in its directory hold no password and no key."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    cmd = command(stack, smartlead, "--format", fmt, "--output", "report")
    done = subprocess.run(
        cmd,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "NO_COLOR": "1", "SMARTLEAD_API_KEY": API_KEY},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert leaked(done.stdout + done.stderr, stack) == []
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["report"]
    assert (files[0].stat().st_mode & 0o777) == 0o600
    text = files[0].read_bytes().decode("utf-8")
    assert leaked(text, stack) == []
    assert platform["broken"]["from_email"] in text


def test_progress_on_a_terminal(stack: Stack, smartlead: SmartLeadServer) -> None:
    """On a terminal, stderr shows done/total once the listing is known."""
    import pty
    import select

    for n in range(3):
        smartlead.add_account(good(stack, n, smtp_port=0))
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc = subprocess.Popen(
        command(stack, smartlead, "--format", "jsonl"),
        stdout=subprocess.PIPE,
        stderr=secondary,
        env={**env, "SMARTLEAD_API_KEY": API_KEY},
    )
    os.close(secondary)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            try:
                data = os.read(primary, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    stdout = proc.stdout.read() if proc.stdout else b""
    proc.wait(timeout=60)
    os.close(primary)
    if proc.stdout:
        proc.stdout.close()
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 1
    assert len(stdout.splitlines()) == 3
    assert "checked 3/3: 0 passed, 3 failed" in terminal


def test_check_writes_csv_and_html_too(stack: Stack, tmp_path: Path) -> None:
    """`preflight check --format csv|html` gives the same shareable reports."""
    needs_postfix(stack)
    accounts = tmp_path / "a.jsonl"
    bodies = [good(stack, 0), good(stack, 1, password=CANARY, from_name="=1+2")]
    accounts.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    host, port = stack.dns
    base = [sys.executable, "-m", "preflight", "check", str(accounts), "--ca-file"]
    base += [str(stack.ca_file), "--dns-server", f"{host}:{port}", "--dns-for-hosts"]
    outputs = {}
    for fmt in ("csv", "html"):
        done = subprocess.run(
            [*base, "--format", fmt],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert leaked(done.stdout + done.stderr, stack) == []
        outputs[fmt] = done.stdout
    rows = list(csv.DictReader(io.StringIO(outputs["csv"], newline="")))
    assert [(r["address"], r["verdict"], r["code"], r["platform_status"]) for r in rows] == [
        (bodies[0]["from_email"], "pass", "ok", ""),
        (bodies[1]["from_email"], "fail", "auth_failed", ""),
    ]
    assert rows[1]["check"] == "smtp"
    assert rows[1]["hint"]
    page = outputs["html"]
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>preflight check</title>" in page
    assert page.index(bodies[1]["from_email"]) < page.index(bodies[0]["from_email"])


def test_domain_worse_than_the_baseline(
    stack: Stack, smartlead: SmartLeadServer, tmp_path: Path
) -> None:
    """--baseline: an earlier audit saw preflight.test with SPF and DMARC p=reject; its DNS
    then lost the SPF record and DMARC went to p=none: domain_worse says what changed."""
    needs_postfix(stack)
    smartlead.add_account(good(stack, 0))
    before = run(stack, smartlead, "--format", "json")
    assert before.returncode == 0, before.stderr
    baseline = tmp_path / "baseline.json"
    baseline.write_text(before.stdout)
    assert problems(json.loads(before.stdout)["accounts"][0]) == []

    zone = build_zone(mail_address=stack.mail_address, strict_address=stack.strict_address)
    records = dict(zone.records)
    domain = "preflight.test."
    records[domain] = tuple(r for r in records[domain] if r.rtype != QTYPE.TXT)  # no SPF
    records[f"_dmarc.{domain}"] = (
        RR(f"_dmarc.{domain}", QTYPE.TXT, rdata=TXT("v=DMARC1; p=none"), ttl=60),
    )
    dns = DnsServer(Zone(records=records, rcodes=zone.rcodes, dropped=zone.dropped))
    address = dns.start()
    try:
        after = run(stack, smartlead, "--format", "json", "--baseline", str(baseline), dns=address)
        unchanged = run(stack, smartlead, "--format", "json", "--baseline", str(baseline))
    finally:
        dns.stop()
    assert after.returncode == 0, after.stderr
    report = json.loads(after.stdout)["accounts"][0]
    assert problems(report) == ["domain_worse"]
    audit = next(c for c in report["checks"] if c["name"] == "audit")
    assert audit["message"] == (
        "preflight.test got worse since the baseline: now spf_missing; "
        "DMARC p=reject before, none now"
    )
    assert problems(json.loads(unchanged.stdout)["accounts"][0]) == []
    bad = tmp_path / "bad.json"
    bad.write_text("not a report")
    refused = run(stack, smartlead, "--baseline", str(bad))
    assert refused.returncode == 2
    assert "the baseline is not a report of preflight" in refused.stderr
