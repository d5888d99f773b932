"""Fewer false alarms in the domain check (issue 14), against the fixtures' DNS zone
(fixtures.dns_server: DKIM_DOMAINS, DMARC_DOMAINS): DMARC p=none passes, Microsoft
365's DKIM CNAMEs are followed (and a dangling one is "not enabled", not "missing"),
and --dkim-selector adds selectors that cannot be guessed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.dns_server import DKIM_DOMAINS, DMARC_DOMAINS, DnsServer, build_zone
from preflight._resolver import make_resolver
from preflight.checks.domain import probe_domain
from preflight.options import CheckOptions, Timeouts
from preflight.report import CheckResult, Code, Status

CANARY = "CANARY-dom-5c1b"


@pytest.fixture(scope="module")
def dns() -> Iterator[str]:
    server = DnsServer(build_zone())
    host, port = server.start()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


async def check(dns: str, domain: str, **kwargs: Any) -> CheckResult:
    options = CheckOptions(dns_server=dns, timeouts=Timeouts(dns=2.0))
    return await probe_domain(domain, make_resolver(options), 5.0, **kwargs)


def codes(result: CheckResult) -> list[str]:
    return [p["code"] for p in result.details["problems"]]


# --- DMARC p=none ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_dmarc_none_with_rua_passes(dns: str) -> None:
    """p=none with rua: pass, the policy and rua in details, one note (what next)."""
    result = await check(dns, DMARC_DOMAINS["none"], smtp_host="mail.example.test")
    assert (result.status, result.code) == (Status.PASS, Code.OK)
    assert result.details["dmarc_policy"] == "none"
    assert result.details["dmarc_rua"] == f"mailto:dmarc@{DMARC_DOMAINS['none']}"
    (note,) = result.details["notes"]
    assert "p=none" in note


@pytest.mark.asyncio
async def test_dmarc_without_rua_is_a_note(dns: str) -> None:
    """p=none without rua: still a pass; a note says no reports come back."""
    result = await check(dns, DMARC_DOMAINS["none_no_rua"], smtp_host="mail.example.test")
    assert (result.status, result.code) == (Status.PASS, Code.OK)
    assert result.details["dmarc_rua"] is None
    assert any("no rua=" in note for note in result.details["notes"])


@pytest.mark.asyncio
async def test_dmarc_none_under_strict_is_only_a_warning(dns: str) -> None:
    """--strict: p=none is dmarc_policy_none, a warning, never a failure by itself."""
    result = await check(dns, DMARC_DOMAINS["none"], smtp_host="mail.example.test", strict=True)
    assert (result.status, result.code) == (Status.WARN, Code.DMARC_POLICY_NONE)
    assert codes(result) == ["dmarc_policy_none"]


@pytest.mark.asyncio
async def test_strict_with_another_problem_fails(dns: str) -> None:
    """--strict, p=none and DKIM not enabled: the other problem fails the check."""
    result = await check(dns, DKIM_DOMAINS["m365_off"], account_type="OUTLOOK", strict=True)
    assert result.status is Status.FAIL
    assert result.code is Code.DKIM_NOT_ENABLED


# --- DKIM: Microsoft 365 CNAMEs ------------------------------------------------------------


@pytest.mark.asyncio
async def test_microsoft_cnames_followed_to_keys(dns: str) -> None:
    """selector1/selector2 CNAMEs to the tenant's onmicrosoft.com keys: DKIM found, the
    CNAMEs in details."""
    domain = DKIM_DOMAINS["m365"]
    result = await check(dns, domain, account_type="OUTLOOK")
    assert (result.status, result.code) == (Status.PASS, Code.OK), result
    assert result.details["dkim_selectors"] == ["selector1", "selector2"]
    assert result.details["dkim_cnames"]["selector1"] == (
        "selector1-m365-test._domainkey.m365test.onmicrosoft.com"
    )
    assert result.details["dkim_dangling"] == []


@pytest.mark.parametrize("role", ["m365_off", "m365_nodata"])
@pytest.mark.asyncio
async def test_dangling_microsoft_cnames_say_not_enabled(dns: str, role: str) -> None:
    """CNAMEs to tenant names that do not exist (or hold no key): dkim_not_enabled with
    the Defender portal hint, not dkim_missing."""
    domain = DKIM_DOMAINS[role]
    result = await check(dns, domain, account_type="OUTLOOK")
    assert (result.status, result.code) == (Status.WARN, Code.DKIM_NOT_ENABLED)
    assert codes(result) == ["dkim_not_enabled"]
    assert "Microsoft 365 tenant" in result.message
    assert "Defender portal" in (result.hint or "")
    assert f"Set-DkimSigningConfig -Identity {domain}" in (result.hint or "")
    assert result.details["dkim_dangling"] == ["selector1", "selector2"]


@pytest.mark.asyncio
async def test_dangling_cname_found_without_the_provider(dns: str) -> None:
    """Without type OUTLOOK, selector1/selector2 are among the common selectors: the
    dangling CNAMEs are still recognised."""
    result = await check(dns, DKIM_DOMAINS["m365_off"], smtp_host="mail.example.test")
    assert result.code is Code.DKIM_NOT_ENABLED


# --- DKIM: --dkim-selector -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_custom_selector_finds_the_key(dns: str) -> None:
    """A key on a selector nobody guesses: dkim_missing without --dkim-selector, a pass
    with it; the selectors tried are in details, the given ones first."""
    domain = DKIM_DOMAINS["custom"]
    without = await check(dns, domain, smtp_host="mail.example.test")
    assert without.code is Code.DKIM_MISSING
    assert "corp2024" not in without.details["dkim_selectors_checked"]
    found = await check(dns, domain, smtp_host="mail.example.test", dkim_selectors=["Corp2024"])
    assert (found.status, found.code) == (Status.PASS, Code.OK)
    assert found.details["dkim_selectors"] == ["corp2024"]
    assert found.details["dkim_selectors_checked"][0] == "corp2024"
    assert "default" in found.details["dkim_selectors_checked"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_dkim_selector_and_dmarc_none(dns: str, tmp_path: Path) -> None:
    """`preflight check --dkim-selector corp2024`: the domain check passes on that key;
    a p=none domain passes too, without --strict."""
    bodies = [
        {
            "from_name": "A",
            "from_email": f"a@{domain}",
            "user_name": f"a@{domain}",
            "password": CANARY,
            "smtp_host": "127.0.0.1",
            "smtp_port": _closed_port(),
            "imap_host": "127.0.0.1",
            "imap_port": 993,
            "warmup_enabled": False,
        }
        for domain in (DKIM_DOMAINS["custom"], DMARC_DOMAINS["none"])
    ]
    path = tmp_path / "accounts.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "preflight",
            "check",
            str(path),
            "--dns-server",
            dns,
            "--dkim-selector",
            "corp2024",
            "--format",
            "jsonl",
            "--timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    domains = [next(c for c in r["checks"] if c["name"] == "domain") for r in reports]
    assert [(d["status"], d["code"]) for d in domains] == [("pass", "ok"), ("pass", "ok")]
    assert domains[0]["details"]["dkim_selectors"] == ["corp2024"]
    assert domains[1]["details"]["dmarc_policy"] == "none"
    assert CANARY not in done.stdout + done.stderr
