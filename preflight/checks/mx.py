"""The ``mx`` check: can the sender's domain receive mail at all?

Looks up the MX records of ``from_email``'s domain. A null MX (RFC 7505, ``0 .``)
says the domain accepts no mail; no MX but an address record means mail goes to
that address (RFC 5321 section 5.1), which works but is unusual for a sending
domain: a warning. dnspython exceptions become codes through the one table,
:func:`preflight._resolver.dns_failure`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import dns.asyncresolver
import dns.resolver

from preflight._resolver import DNS_ERRORS, SENDER_DOMAIN_CODES, DnsFailure, dns_failure
from preflight.report import CheckResult, Code, Status

__all__ = ["probe_mx"]

_HINTS = {
    Code.DNS_NXDOMAIN: "The sender's domain does not exist: check the spelling of from_email.",
    Code.DNS_NULL_MX: (
        "The domain says it accepts no mail (null MX): replies and bounces cannot reach it. "
        "Use an address on a domain that receives mail."
    ),
    Code.DNS_NO_MX: (
        "The domain has no MX record: add MX records for it at the DNS host (the mail "
        "provider's setup page lists them)."
    ),
    Code.DNS_TIMEOUT: "The DNS server did not answer: retry, or choose one with --dns-server.",
    Code.DNS_SERVFAIL: (
        "The DNS server could not answer for this domain (SERVFAIL/REFUSED): the domain's "
        "DNS may be broken (e.g. DNSSEC), or the resolver refuses it. Try --dns-server."
    ),
}


_MESSAGES = {
    DnsFailure.NXDOMAIN: "the domain {domain} does not exist",
    DnsFailure.NO_ANSWER: "{domain} has no MX record",
    DnsFailure.SERVFAIL: "no DNS server could answer for {domain} (SERVFAIL or REFUSED)",
    DnsFailure.TIMEOUT: "the DNS look-up of {domain} timed out",
    DnsFailure.ERROR: "the DNS look-up of {domain} failed",
}


def _result(
    status: Status, code: Code, message: str, started: float, details: dict[str, Any]
) -> CheckResult:
    hint = _HINTS.get(code) if status is not Status.PASS else None
    elapsed = (time.perf_counter() - started) * 1000
    return CheckResult("mx", status, code, message, hint, elapsed, details)


async def probe_mx(
    domain: str, resolver: dns.asyncresolver.Resolver, timeout: float
) -> CheckResult:
    """Check the MX records of ``domain`` (its ASCII form) within ``timeout`` seconds."""
    started = time.perf_counter()
    details: dict[str, Any] = {"domain": domain}
    try:
        async with asyncio.timeout(timeout):
            try:
                answer = await resolver.resolve(domain, "MX")
            except dns.resolver.NoAnswer:
                return await _fallback(domain, resolver, started, details)
    except DNS_ERRORS as exc:
        kind = dns_failure(exc)
        if kind in (DnsFailure.SERVFAIL, DnsFailure.ERROR):
            details["error"] = str(exc)
        message = _MESSAGES[kind].format(domain=domain)
        return _result(Status.FAIL, SENDER_DOMAIN_CODES[kind], message, started, details)

    records = sorted(
        ({"preference": r.preference, "exchange": r.exchange.to_text()} for r in answer),
        key=lambda r: (r["preference"], r["exchange"]),
    )
    details["mx"] = records
    if len(records) == 1 and records[0]["exchange"] == ".":
        return _result(
            Status.FAIL,
            Code.DNS_NULL_MX,
            f"{domain} publishes a null MX: it accepts no mail",
            started,
            details,
        )
    hosts = ", ".join(r["exchange"].rstrip(".") for r in records[:3])
    more = f" and {len(records) - 3} more" if len(records) > 3 else ""
    return _result(Status.PASS, Code.OK, f"MX: {hosts}{more}", started, details)


async def _fallback(
    domain: str, resolver: dns.asyncresolver.Resolver, started: float, details: dict[str, Any]
) -> CheckResult:
    """No MX: an A/AAAA record is the implicit MX (a warning), nothing at all a failure."""
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(domain, rdtype)
        except DNS_ERRORS as exc:
            if dns_failure(exc) in (DnsFailure.NO_ANSWER, DnsFailure.NXDOMAIN):
                continue
            raise
        addresses.extend(str(r) for r in answer)
    details["mx"] = []
    if addresses:
        details["addresses"] = addresses
        return CheckResult(
            "mx",
            Status.WARN,
            Code.DNS_NO_MX,
            f"{domain} has no MX record; mail would go to its address {addresses[0]}",
            "Publish MX records for the domain: mail to an address record alone is unusual "
            "and some senders refuse it.",
            (time.perf_counter() - started) * 1000,
            details,
        )
    return _result(
        Status.FAIL, Code.DNS_NO_MX, f"{domain} has no MX record and no address", started, details
    )
