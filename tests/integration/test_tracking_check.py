"""The tracking check (issue 14) against the local DNS server and a real HTTPS server
on loopback (fixtures/tracking.py): every tracking host of fixtures.dns_server.TRACKING
gives its code, through the library and through `preflight check`.

Nothing here asks a DNS server or host off this machine: every check has the local DNS
server as its resolver, and the account's SMTP server is a closed port on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.certs import CertSet, make_certs
from fixtures.dns_server import TRACKING, TRACKING_TARGET, CountingZone, DnsServer, Zone, build_zone
from fixtures.pytest_support import unavailable
from fixtures.threaded import threaded_server
from fixtures.tracking import tracking_server
from preflight import CheckOptions, check_account, check_many
from preflight._resolver import make_resolver
from preflight._tls import make_context
from preflight.checks.tracking import probe_tracking
from preflight.options import Timeouts
from preflight.report import CHECK_NAMES, CheckResult, Code, Status

CANARY = "CANARY-trk-9d2e"


@dataclass(frozen=True)
class Local:
    """The local DNS server (its zone counting), the HTTPS server's port, the certs."""

    dns: str
    zone: CountingZone
    port: int
    certs: CertSet


def counting(zone: Zone) -> CountingZone:
    return CountingZone(records=zone.records, rcodes=zone.rcodes, dropped=zone.dropped)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("tracking-certs"))


@pytest.fixture(scope="module")
def local(certs: CertSet) -> Iterator[Local]:
    """DNS with the tracking hosts at 127.0.0.1, and the HTTPS server on a free port."""
    zone = counting(build_zone(tracking_address="127.0.0.1"))
    dns = DnsServer(zone)
    host, port = dns.start()
    try:
        with tracking_server(certs) as (_, https_port):
            yield Local(f"{host}:{port}", zone, https_port, certs)
    finally:
        dns.stop()


def options(local: Local, **changes: Any) -> CheckOptions:
    base: dict[str, Any] = {
        "dns_server": local.dns,
        "ca_file": str(local.certs.ca_file),
        "tracking_port": local.port,
        "timeout": 5.0,
        "timeouts": Timeouts(dns=2.0, connect=2.0),
    }
    base.update(changes)
    return CheckOptions(**base)


async def probe(local: Local, url: str, **changes: Any) -> CheckResult:
    used = options(local, **changes)
    return await probe_tracking(
        url,
        make_resolver(used),
        make_context(used.ca_file, used.insecure),
        used.timeout,
        port=used.tracking_port,
        expected_cname=used.tracking_cname,
        strict=used.strict,
        insecure=used.insecure,
    )


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def payload(url: str | None, **changes: Any) -> dict[str, Any]:
    """An account whose SMTP server is a closed local port (nothing leaves the machine)."""
    body: dict[str, Any] = {
        "from_name": "Alice",
        "from_email": "alice@preflight.test",
        "user_name": "alice@preflight.test",
        "password": CANARY,
        "smtp_host": "127.0.0.1",
        "smtp_port": closed_port(),
        "imap_host": "127.0.0.1",
        "imap_port": 993,
        "warmup_enabled": False,
    }
    if url is not None:
        body["custom_tracking_url"] = url
    body.update(changes)
    return body


def codes(result: CheckResult) -> list[str]:
    return [p["code"] for p in result.details["problems"]]


# --- the library ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_good_tracking_host_passes(local: Local) -> None:
    """A CNAME to the expected target, and a certificate for the host: pass, with the
    chain, the addresses and the TLS session in details."""
    result = await probe(local, f"https://{TRACKING['good']}", tracking_cname=TRACKING_TARGET)
    assert (result.name, result.status, result.code) == ("tracking", Status.PASS, Code.OK)
    assert result.hint is None
    details = result.details
    assert details["cname_chain"] == [TRACKING_TARGET]
    assert details["addresses"] == ["127.0.0.1"]
    assert details["https"] == "verified"
    assert details["tls_version"].startswith("TLSv1")
    assert "preflight test CA" in details["cert_issuer"]
    assert details["problems"] == []


@pytest.mark.parametrize(
    ("role", "code"),
    [
        ("expired", Code.TRACKING_TLS_EXPIRED),
        ("wrong_host", Code.TRACKING_TLS_HOSTNAME_MISMATCH),
        ("untrusted", Code.TRACKING_TLS_UNTRUSTED),
    ],
)
@pytest.mark.asyncio
async def test_bad_certificates(local: Local, role: str, code: Code) -> None:
    """Each way a certificate is refused has its code, a hint that says tracked links
    break, and the certificate presented in details."""
    result = await probe(local, f"https://{TRACKING[role]}")
    assert (result.status, result.code) == (Status.WARN, code)
    assert codes(result) == [code.value]
    assert "breaks every tracked link" in (result.hint or "")
    certificate = result.details["certificate"]
    assert set(certificate) == {"subject", "san", "issuer", "not_before", "not_after"}
    assert result.details["https"] == "certificate refused"


@pytest.mark.asyncio
async def test_certificate_expiring_soon_is_a_warning(local: Local) -> None:
    """A valid certificate that expires within 14 days: a warning with code ok, in
    details.warnings, the hint saying to renew it."""
    result = await probe(local, f"https://{TRACKING['expiring']}")
    assert (result.status, result.code) == (Status.WARN, Code.OK)
    assert result.details["cert_days_left"] < 14
    (warning,) = result.details["warnings"]
    assert "expires in" in warning["message"]
    assert "Renew" in (result.hint or "")


@pytest.mark.asyncio
async def test_mismatch_hint_names_the_certificate_names(local: Local) -> None:
    """A certificate for other names: the hint says which names it is for."""
    result = await probe(local, f"https://{TRACKING['wrong_host']}")
    assert TRACKING["good"] in (result.hint or "")
    assert TRACKING["wrong_host"] not in result.details["certificate"]["san"]


@pytest.mark.parametrize(
    ("role", "says"),
    [
        ("nxdomain", "does not exist"),
        ("dangling", "a dangling CNAME"),
        ("nodata", "has no address"),
    ],
)
@pytest.mark.asyncio
async def test_not_found(local: Local, role: str, says: str) -> None:
    """A host that does not exist, a CNAME that leads nowhere, a name without an
    address: tracking_not_found, saying which, and no HTTPS attempt."""
    result = await probe(local, f"https://{TRACKING[role]}")
    assert (result.status, result.code) == (Status.WARN, Code.TRACKING_NOT_FOUND)
    assert codes(result) == ["tracking_not_found"]
    assert says in result.message
    assert result.details["https"] is None
    if role == "dangling":
        assert result.details["cname"] == "gone.tracking.test"


@pytest.mark.parametrize(
    ("role", "now"), [("wrong_cname", "is a CNAME to"), ("a_only", "no CNAME")]
)
@pytest.mark.asyncio
async def test_cname_mismatch(local: Local, role: str, now: str) -> None:
    """With --tracking-cname, a CNAME elsewhere or no CNAME at all is a mismatch (the
    certificate is still checked, and is fine here)."""
    result = await probe(local, f"https://{TRACKING[role]}", tracking_cname=TRACKING_TARGET)
    assert (result.status, result.code) == (Status.WARN, Code.TRACKING_CNAME_MISMATCH)
    assert codes(result) == ["tracking_cname_mismatch"]
    assert now in result.message
    assert TRACKING_TARGET in (result.hint or "")
    assert result.details["https"] == "verified"


@pytest.mark.asyncio
async def test_a_only_passes_without_expected_cname(local: Local) -> None:
    """Without --tracking-cname an A record is as good as a CNAME."""
    result = await probe(local, f"https://{TRACKING['a_only']}")
    assert (result.status, result.code) == (Status.PASS, Code.OK)
    assert result.details["cname"] is None


@pytest.mark.asyncio
async def test_http_is_a_warning(local: Local) -> None:
    """An http:// URL: tracking_not_https (links without TLS); no handshake is tried."""
    result = await probe(local, f"http://{TRACKING['good']}")
    assert (result.status, result.code) == (Status.WARN, Code.TRACKING_NOT_HTTPS)
    assert "without TLS" in result.message
    assert f"https://{TRACKING['good']}" in (result.hint or "")


@pytest.mark.asyncio
async def test_bare_host_is_checked_in_dns_only(local: Local) -> None:
    """No scheme: the host must resolve; its certificate is not judged (even a bad one)."""
    result = await probe(local, TRACKING["expired"])
    assert (result.status, result.code) == (Status.PASS, Code.OK)
    assert "not checked" in result.details["https"]


@pytest.mark.asyncio
async def test_strict_fails(local: Local) -> None:
    """--strict turns a tracking problem into a failure; a good host still passes."""
    bad = await probe(local, f"https://{TRACKING['expired']}", strict=True)
    good = await probe(local, f"https://{TRACKING['good']}", strict=True)
    assert (bad.status, bad.code) == (Status.FAIL, Code.TRACKING_TLS_EXPIRED)
    assert good.status is Status.PASS


@pytest.mark.asyncio
async def test_insecure_says_so(local: Local) -> None:
    """--insecure: the certificate is not judged, and the details say it was not verified."""
    result = await probe(local, f"https://{TRACKING['expired']}", insecure=True)
    assert (result.status, result.details["https"]) == (Status.PASS, "not verified (--insecure)")


@pytest.mark.asyncio
async def test_servfail_is_a_dns_warning(local: Local) -> None:
    """A resolver that fails for the host: dns_servfail, a warning saying what to do."""
    result = await probe(local, f"https://{TRACKING['servfail']}")
    assert (result.status, result.code) == (Status.WARN, Code.DNS_SERVFAIL)
    assert result.hint


@pytest.mark.asyncio
async def test_nothing_listening_is_unreachable(local: Local) -> None:
    """Nothing on the HTTPS port: tracking_unreachable."""
    result = await probe(local, f"https://{TRACKING['good']}", tracking_port=closed_port())
    assert (result.status, result.code) == (Status.WARN, Code.TRACKING_UNREACHABLE)
    assert "refused" in result.message


def _plain_http(conn: socket.socket, _peer: Any) -> None:
    with conn:
        conn.settimeout(5)
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")


def _silent(conn: socket.socket, _peer: Any) -> None:
    with conn:
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            while conn.recv(1024):  # until the client gives up and closes
                pass


@pytest.mark.asyncio
async def test_clear_text_on_the_https_port(local: Local) -> None:
    """A server that answers TLS with clear-text HTTP: tracking_tls_failed."""
    with threaded_server(_plain_http) as (port, _):
        result = await probe(local, f"https://{TRACKING['good']}", tracking_port=port)
    assert (result.status, result.code) == (Status.WARN, Code.TRACKING_TLS_FAILED)
    assert result.details["https"] == "no TLS"


@pytest.mark.asyncio
async def test_silent_server_is_unreachable_within_the_deadline(local: Local) -> None:
    """A server that accepts and never answers: tracking_unreachable, not a hang."""
    with threaded_server(_silent) as (port, _):
        result = await probe(local, f"https://{TRACKING['good']}", tracking_port=port, timeout=1.0)
    assert (result.status, result.code) == (Status.WARN, Code.TRACKING_UNREACHABLE)
    assert result.details["https"] == "no TLS handshake in time"


# --- in the account's report ------------------------------------------------------------


@pytest.mark.asyncio
async def test_report_has_tracking_after_domain(local: Local) -> None:
    """check_account reports the tracking check in CHECK_NAMES's place."""
    report = await check_account(
        payload(f"https://{TRACKING['expired']}"), options(local, check_imap=False)
    )
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    tracking = report.check("tracking")
    assert tracking.code is Code.TRACKING_TLS_EXPIRED
    assert CANARY not in json.dumps(report.to_dict())


@pytest.mark.asyncio
async def test_skipped_without_url_or_when_off(local: Local) -> None:
    """No custom_tracking_url (or an empty one), or --no-tracking-check: skipped, and
    the tracking host is never asked for."""
    local.zone.asked.clear()
    no_url = await check_account(payload(None), options(local, check_imap=False))
    empty = await check_account(payload(""), options(local, check_imap=False))
    off = await check_account(
        payload(f"https://{TRACKING['good']}"),
        options(local, check_imap=False, check_tracking=False),
    )
    assert no_url.check("tracking").message == "not run: the payload has no custom_tracking_url"
    assert empty.check("tracking").status is Status.SKIP
    assert off.check("tracking").message == "not run: the tracking check is off"
    assert not [name for name, _ in local.zone.asked if "tracking" in name]


@pytest.mark.asyncio
async def test_accounts_of_one_tracking_host_share_its_check(local: Local) -> None:
    """Five accounts with one tracking host: its CNAME is asked once in the run."""
    local.zone.asked.clear()
    url = f"https://{TRACKING['wrong_cname']}"
    reports = [
        report
        async for report in check_many(
            [payload(url, from_email=f"a{i}@preflight.test") for i in range(5)],
            options(local, check_imap=False, check_domain=False),
        )
    ]
    assert {r.check("tracking").code for r in reports} == {Code.OK}
    assert local.zone.asked[(TRACKING["wrong_cname"], "CNAME")] == 1


@pytest.mark.asyncio
async def test_payload_with_bad_url_contacts_nothing(local: Local) -> None:
    """An invalid custom_tracking_url fails the payload check: nothing is asked."""
    local.zone.asked.clear()
    report = await check_account(
        payload(f"https://{TRACKING['good']}:8443"), options(local, check_imap=False)
    )
    assert report.check("payload").code is Code.PAYLOAD_INVALID
    assert report.check("tracking").status is Status.SKIP
    assert not local.zone.asked


# --- `preflight check` on the real port 443 --------------------------------------------


@dataclass(frozen=True)
class Https443:
    dns: str
    ca_file: Path


@pytest.fixture(scope="module")
def https443(certs: CertSet) -> Iterator[Https443]:
    """The HTTPS server on port 443 of a free loopback address (root only), and a DNS
    server whose tracking hosts lead there."""
    if os.geteuid() != 0:
        unavailable("port 443 can only be bound as root")
    candidates = [f"127.0.0.{n}" for n in range(71, 91)]
    try:
        server = tracking_server(certs, 443, candidates)
        address, _ = server.__enter__()
    except OSError as exc:
        unavailable(f"no loopback address with port 443 free: {exc}")
    try:
        dns = DnsServer(build_zone(tracking_address=address))
        host, port = dns.start()
        try:
            yield Https443(f"{host}:{port}", certs.ca_file)
        finally:
            dns.stop()
    finally:
        server.__exit__(None, None, None)


def run_check(
    https: Https443, tmp_path: Path, *bodies: dict[str, Any], args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "accounts.jsonl"
    path.write_text("".join(json.dumps(body) + "\n" for body in bodies))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "preflight",
            "check",
            str(path),
            "--dns-server",
            https.dns,
            "--ca-file",
            str(https.ca_file),
            "--no-domain-check",
            "--timeout",
            "10",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tracking_of(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    return [next(c for c in r["checks"] if c["name"] == "tracking") for r in reports]


def test_cli_reports_each_tracking_problem(https443: Https443, tmp_path: Path) -> None:
    """`preflight check --format jsonl` on port 443: good, expired, mismatched and dangling
    tracking hosts, each with its code; warnings only, so the tracking check fails nothing."""
    roles = ["good", "expired", "wrong_host", "untrusted", "dangling"]
    bodies = [payload(f"https://{TRACKING[r]}", from_email=f"{r}@preflight.test") for r in roles]
    done = run_check(https443, tmp_path, *bodies, args=("--format", "jsonl"))
    found = {c["details"]["host"]: (c["status"], c["code"]) for c in tracking_of(done)}
    assert found == {
        TRACKING["good"]: ("pass", "ok"),
        TRACKING["expired"]: ("warn", "tracking_tls_expired"),
        TRACKING["wrong_host"]: ("warn", "tracking_tls_hostname_mismatch"),
        TRACKING["untrusted"]: ("warn", "tracking_tls_untrusted"),
        TRACKING["dangling"]: ("warn", "tracking_not_found"),
    }
    assert CANARY not in done.stdout + done.stderr


def test_cli_strict_and_tracking_cname(https443: Https443, tmp_path: Path) -> None:
    """--strict --tracking-cname: a CNAME elsewhere fails the account (exit 1), with the
    hint naming the target."""
    done = run_check(
        https443,
        tmp_path,
        payload(f"https://{TRACKING['wrong_cname']}"),
        args=("--format", "json", "--strict", "--tracking-cname", TRACKING_TARGET.upper()),
    )
    assert done.returncode == 1, done.stderr
    (tracking,) = tracking_of_json(done)
    assert (tracking["status"], tracking["code"]) == ("fail", "tracking_cname_mismatch")
    assert TRACKING_TARGET in tracking["hint"]


def tracking_of_json(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    accounts = json.loads(done.stdout)["accounts"]
    return [next(c for c in a["checks"] if c["name"] == "tracking") for a in accounts]


def test_cli_text_shows_the_hint(https443: Https443, tmp_path: Path) -> None:
    """The text report shows the tracking warning with its hint, and --no-tracking-check
    skips it."""
    body = payload(f"https://{TRACKING['expired']}")
    shown = run_check(https443, tmp_path, body)
    assert "tracking_tls_expired" in shown.stdout
    assert "breaks every tracked link" in shown.stdout
    off = run_check(https443, tmp_path, body, args=("--no-tracking-check", "--format", "json"))
    (tracking,) = tracking_of_json(off)
    assert tracking["status"] == "skip"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--tracking-cname", "https://open.sleadtrack.com"), "expected a host name"),
        (("--tracking-cname", "bad host"), "expected a host name"),
        (("--dkim-selector", "has space"), "a DKIM selector is"),
        (("--dkim-selector", "x._domainkey.example.com/"), "a DKIM selector is"),
    ],
)
def test_cli_bad_flags_are_usage_errors(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    """A malformed --tracking-cname or --dkim-selector: exit 2 with a clear line, nothing
    checked, no traceback."""
    path = tmp_path / "a.json"
    path.write_text(json.dumps(payload(None)))
    done = subprocess.run(
        [sys.executable, "-m", "preflight", "check", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
