"""The blocklist check against the local DNS server (fixtures/dns_server.py): listed,
clean, refused, wildcarded, SERVFAIL and silent blocklist zones, and matching,
mismatched and missing reverse DNS, through the library and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import preflight
from fixtures.accounts import valid_payload
from fixtures.dns_server import BLOCKLIST_DOMAINS, BLOCKLIST_ZONES, LISTED_IPV6, RDNS_HOSTS
from fixtures.stack import Stack
from preflight.options import CheckOptions, Timeouts
from preflight.report import CHECK_NAMES, CheckResult, Code, Status

ZONES = BLOCKLIST_ZONES
LISTED_DOMAIN = BLOCKLIST_DOMAINS["listed"]


def options(stack: Stack, **changes: Any) -> CheckOptions:
    host, port = stack.dns
    values: dict[str, Any] = {
        "ca_file": str(stack.ca_file) if stack.ca_file else None,
        "dns_server": f"{host}:{port}",
        "resolve_hosts_with_dns_server": True,
        "check_imap": False,
        "timeout": 10,
        "domain_blocklists": (ZONES["domain"],),
        "ip_blocklists": (ZONES["ip"],),
    }
    values.update(changes)
    return CheckOptions(**values)


async def blocklist(stack: Stack, body: dict[str, Any], **changes: Any) -> CheckResult:
    report = await preflight.check_account(body, options(stack, **changes))
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    return report.check("blocklist")


def own_server(stack: Stack, role: str, **changes: Any) -> dict[str, Any]:
    """An account whose SMTP host is one of the fixture's own servers (nothing listens)."""
    return valid_payload(stack, smtp_host=RDNS_HOSTS[role][0], **changes)


@pytest.mark.asyncio
async def test_clean_account_passes_with_what_was_checked(stack: Stack) -> None:
    """The stack's good account: not listed, reverse DNS confirmed; details say which
    zones were asked for which names, with the default zones too."""
    defaults = CheckOptions()
    for domain_zones, ip_zones in (
        ((ZONES["domain"],), (ZONES["ip"],)),
        (defaults.domain_blocklists, defaults.ip_blocklists),  # answered by the local server
    ):
        result = await blocklist(
            stack, valid_payload(stack), domain_blocklists=domain_zones, ip_blocklists=ip_zones
        )
        assert (result.status, result.code) == (Status.PASS, Code.OK), result.message
        details = result.details
        asked = {(c["zone"], c["query"], c["result"]) for c in details["checked"]}
        domain = stack.domains["good"]
        address = stack.mail_address
        reversed_ = ".".join(reversed(address.split(".")))
        assert asked == {
            *((z, f"{domain}.{z}", "clean") for z in domain_zones),
            *((z, f"{reversed_}.{z}", "clean") for z in ip_zones),
        }
        assert details["addresses"] == [address]
        assert details["rdns"][0]["result"] == "ok"
        assert details["rdns"][0]["ptr"] == [stack.mail_host]
        assert result.message.startswith("not listed:")
        assert stack.mail_host in result.message


@pytest.mark.asyncio
async def test_listed_domain_warns_and_fails_under_strict(stack: Stack) -> None:
    """A listed sending domain: blocklisted (warn), zone, answer and TXT given; strict fails."""
    body = valid_payload(stack, from_email=f"alice@{LISTED_DOMAIN}")
    result = await blocklist(stack, body)
    assert (result.status, result.code) == (Status.WARN, Code.BLOCKLISTED)
    listed = [c for c in result.details["checked"] if c["result"] == "listed"]
    assert listed == [
        {
            "zone": ZONES["domain"],
            "subject": LISTED_DOMAIN,
            "query": f"{LISTED_DOMAIN}.{ZONES['domain']}",
            "result": "listed",
            "answers": ["127.0.1.2"],
            "meaning": "listed (127.0.1.2)",
            "reason": f"Listed: see https://bl.test/{LISTED_DOMAIN}",
        }
    ]
    assert LISTED_DOMAIN in result.message
    assert result.hint
    assert "removal" in result.hint
    report = await preflight.check_account(body, options(stack, strict=True))
    assert report.check("blocklist").status is Status.FAIL
    assert report.ok is False


@pytest.mark.asyncio
async def test_listed_server_address(stack: Stack) -> None:
    """An own server's address on the IP list; its reverse DNS is fine."""
    result = await blocklist(stack, own_server(stack, "listed"))
    assert (result.status, result.code) == (Status.WARN, Code.BLOCKLISTED)
    address = RDNS_HOSTS["listed"][1]
    assert result.details["addresses"] == [address]
    (listed,) = [c for c in result.details["checked"] if c["result"] == "listed"]
    assert (listed["subject"], listed["answers"], listed["reason"]) == (
        address,
        ["127.0.0.2"],
        "Listed: spam trap hits",
    )
    assert [p["code"] for p in result.details["problems"]] == ["blocklisted"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("role", "words"),
    [
        ("refused", "public or open resolver"),
        ("volume", "too many queries"),
        ("wildcard", "wildcarding"),
        ("servfail", "SERVFAIL"),
        ("timeout", "timed out"),
    ],
)
async def test_a_list_that_cannot_answer_is_unavailable_not_clean(
    stack: Stack, role: str, words: str
) -> None:
    """A refusal code, a wildcard, SERVFAIL or silence: unavailable, never clean."""
    zone = ZONES[role]
    result = await blocklist(
        stack,
        valid_payload(stack),
        domain_blocklists=(zone,),
        ip_blocklists=(zone,),
        timeouts=Timeouts(dns=1.0),
    )
    assert (result.status, result.code) == (Status.WARN, Code.BLOCKLIST_UNAVAILABLE)
    assert {c["result"] for c in result.details["checked"]} == {"unavailable"}
    assert len(result.details["checked"]) == 2  # the domain and the address
    assert words in result.message
    assert "--dns-server" in (result.hint or "")
    if role == "refused":
        assert "DQS" in (result.hint or "") or "Data Query Service" in (result.hint or "")
    # Not the account's doing: still a warning under --strict.
    strict = await blocklist(
        stack,
        valid_payload(stack),
        domain_blocklists=(zone,),
        ip_blocklists=(zone,),
        timeouts=Timeouts(dns=1.0),
        strict=True,
    )
    assert strict.status is Status.WARN


@pytest.mark.asyncio
async def test_a_silent_list_ends_within_the_account_deadline(stack: Stack) -> None:
    """A list that never answers, with DNS timeouts longer than the account's deadline:
    the check reports the list as unavailable, not the whole check as a timeout."""
    zone = ZONES["timeout"]
    result = await blocklist(
        stack,
        valid_payload(stack),
        domain_blocklists=(zone,),
        ip_blocklists=(),
        timeout=1.0,
        timeouts=Timeouts(dns=20.0),
    )
    assert result.code is Code.BLOCKLIST_UNAVAILABLE


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("role", "code", "words"),
    [
        ("missing", Code.RDNS_MISSING, "no reverse DNS"),
        ("mismatch", Code.RDNS_MISMATCH, "elsewhere.rdns-mismatch.test"),
    ],
)
async def test_reverse_dns_problems_warn(stack: Stack, role: str, code: Code, words: str) -> None:
    """No PTR, or a PTR that does not resolve back: a warning (fail with strict)."""
    result = await blocklist(stack, own_server(stack, role))
    assert (result.status, result.code) == (Status.WARN, code)
    assert words in result.message
    assert "hosting provider" in (result.hint or "")
    (rdns,) = result.details["rdns"]
    assert rdns["address"] == RDNS_HOSTS[role][1]
    if role == "mismatch":
        assert rdns["forward"] == {"elsewhere.rdns-mismatch.test": ["127.1.0.99"]}
    strict = await blocklist(stack, own_server(stack, role), strict=True)
    assert strict.status is Status.FAIL


@pytest.mark.asyncio
async def test_matching_reverse_dns_passes(stack: Stack) -> None:
    """An own server whose PTR resolves back to its address passes."""
    result = await blocklist(stack, own_server(stack, "matching"))
    assert (result.status, result.code) == (Status.PASS, Code.OK)
    assert result.details["rdns"][0]["ptr"] == [RDNS_HOSTS["matching"][0]]


@pytest.mark.asyncio
async def test_big_provider_servers_are_not_looked_up(stack: Stack) -> None:
    """Gmail's shared addresses say nothing about the account: only the domain is
    looked up; a Gmail address on Gmail's server leaves nothing to look up."""
    on_gmail = valid_payload(stack, smtp_host="smtp.gmail.com", smtp_port=465)
    result = await blocklist(stack, on_gmail)
    assert (result.status, result.code) == (Status.PASS, Code.OK)
    assert result.details["addresses"] == []
    assert result.details["rdns"] == []
    assert "Gmail" in result.details["ip_checks_skipped"]
    assert {c["subject"] for c in result.details["checked"]} == {stack.domains["good"]}
    gmail = {**on_gmail, "from_email": "someone@gmail.com", "user_name": "someone@gmail.com"}
    result = await blocklist(stack, gmail)
    assert (result.status, result.code) == (Status.SKIP, Code.SKIPPED)


@pytest.mark.asyncio
async def test_ipv6_address_listed_with_confirmed_reverse_dns(stack: Stack) -> None:
    """IPv6: the 32 reversed nibbles under the zone, and the PTR under ip6.arpa."""
    from preflight._resolver import make_resolver
    from preflight.checks.blocklist import lookup_address

    resolver = make_resolver(options(stack))
    deadline = asyncio.get_running_loop().time() + 5
    found = await lookup_address(LISTED_IPV6, (ZONES["ip"], ZONES["domain"]), resolver, deadline)
    assert [z.verdict for z in found.zones] == ["listed", "clean"]
    assert found.zones[0].query.endswith(".8.b.d.0.1.0.0.2." + ZONES["ip"])
    reason = found.zones[0].reason or ""
    assert reason.isprintable()  # the escape is not passed on
    assert 200 < len(reason) <= 300
    assert found.rdns is not None
    assert (found.rdns.result, found.rdns.ptr) == ("ok", ("v6.listed-ip.test",))


@pytest.mark.asyncio
async def test_accounts_of_one_run_share_the_look_ups(stack: Stack) -> None:
    """Ten accounts of one domain on one server: each blocklist name is asked once."""
    run = preflight.Shared(options(stack))
    asked: list[tuple[str, str]] = []
    real = run.resolver.resolve

    async def counting(qname: Any, rdtype: Any = "A", *args: Any, **kwargs: Any) -> Any:
        asked.append((str(qname), str(rdtype)))
        return await real(qname, rdtype, *args, **kwargs)

    run.resolver.resolve = counting  # type: ignore[method-assign]
    body = own_server(stack, "listed", from_email=f"alice@{LISTED_DOMAIN}")
    try:
        reports = await asyncio.gather(
            *(preflight.check_account(body, options(stack), shared=run) for _ in range(10))
        )
    finally:
        run.close()
    assert {r.check("blocklist").code for r in reports} == {Code.BLOCKLISTED}
    blocklist_queries = [q for q in asked if ".blocklist.test" in q[0] or "arpa" in q[0]]
    assert len(blocklist_queries) == len(set(blocklist_queries))
    assert (f"{LISTED_DOMAIN}.{ZONES['domain']}.", "A") in blocklist_queries


@pytest.mark.asyncio
async def test_check_off(stack: Stack) -> None:
    """check_blocklist=False: the check is skipped and says it is off."""
    result = await blocklist(stack, valid_payload(stack), check_blocklist=False)
    assert (result.status, result.code) == (Status.SKIP, Code.SKIPPED)
    assert "off" in result.message


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


def cli_flags(stack: Stack) -> list[str]:
    host, port = stack.dns
    flags = ["--dns-server", f"{host}:{port}", "--dns-for-hosts", "--format", "jsonl"]
    return [*flags, "--ca-file", str(stack.ca_file)] if stack.ca_file else flags


def test_cli_listed_domain_and_strict(stack: Stack, tmp_path: Path) -> None:
    """Through the CLI: the default zones (the local server answers for DBL), then
    --domain-blocklist replacing them; a listing warns (exit as before), --strict fails."""
    body = valid_payload(stack, from_email=f"alice@{LISTED_DOMAIN}")
    accounts = tmp_path / "a.jsonl"
    accounts.write_text(json.dumps(body) + "\n")
    done = run_cli("check", str(accounts), *cli_flags(stack))
    report = json.loads(done.stdout)
    check = next(c for c in report["checks"] if c["name"] == "blocklist")
    assert (check["status"], check["code"]) == ("warn", "blocklisted"), done.stderr
    assert check["details"]["domain_zones"] == ["dbl.spamhaus.org", "multi.surbl.org"]
    assert "DBL: a spam domain" in check["message"]
    assert "https://check.spamhaus.org/" in check["hint"]
    replaced = run_cli(
        "check",
        str(accounts),
        *cli_flags(stack),
        "--domain-blocklist",
        ZONES["domain"],
        "--ip-blocklist",
        ZONES["ip"],
        "--strict",
    )
    report = json.loads(replaced.stdout)
    check = next(c for c in report["checks"] if c["name"] == "blocklist")
    assert check["details"]["domain_zones"] == [ZONES["domain"]]
    assert check["details"]["ip_zones"] == [ZONES["ip"]]
    assert (check["status"], check["code"]) == ("fail", "blocklisted")
    assert replaced.returncode == 1
    off = run_cli("check", str(accounts), *cli_flags(stack), "--no-blocklist-check", "--strict")
    check = next(c for c in json.loads(off.stdout)["checks"] if c["name"] == "blocklist")
    assert check["status"] == "skip"


def test_cli_refuses_a_bad_zone(tmp_path: Path) -> None:
    """A zone that is not a DNS name is a usage error (exit 2), before anything runs."""
    accounts = tmp_path / "a.jsonl"
    accounts.write_text("{}\n")
    done = run_cli("check", str(accounts), "--ip-blocklist", "zen spamhaus org")
    assert done.returncode == 2
    assert "--ip-blocklist" in done.stderr
    assert "Traceback" not in done.stderr
