"""Reverse DNS of a mail server's address, forward-confirmed (FCrDNS).

Receivers look up the PTR record of the connecting address and then the name it
gives: when that name does not resolve back to the address (or there is no PTR at
all), many of them refuse the connection or count it towards spam. Part of the
``blocklist`` check (:mod:`preflight.checks.blocklist`), for servers of the
account's own.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import dns.asyncresolver
import dns.name

from preflight._resolver import DNS_ERRORS, DnsFailure, dns_failure
from preflight.checks._zones import ptr_name
from preflight.report import Code

__all__ = ["Rdns", "check_rdns", "rdns_problems"]

#: PTR names followed at most (an address has one, in practice).
_MAX_NAMES: Final = 5

Result = Literal["ok", "missing", "mismatch", "unavailable"]


@dataclass(frozen=True)
class Rdns:
    """What the reverse DNS of one address says."""

    address: str
    result: Result
    #: The PTR names, as published.
    ptr: tuple[str, ...] = ()
    #: Each PTR name's addresses (of the address's family).
    forward: dict[str, list[str]] = field(default_factory=dict)
    #: Why it could not be checked (``unavailable``): a DnsFailure's value.
    failure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "result": self.result,
            "ptr": list(self.ptr),
            "forward": {name: list(found) for name, found in self.forward.items()},
            "failure": self.failure,
        }


def _kind(exc: BaseException) -> DnsFailure:
    return DnsFailure.TIMEOUT if isinstance(exc, TimeoutError) else dns_failure(exc)


async def check_rdns(address: str, resolver: dns.asyncresolver.Resolver, deadline: float) -> Rdns:
    """The PTR of ``address``, and whether one of its names resolves back to it."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    try:
        async with asyncio.timeout_at(deadline):
            answer = await resolver.resolve(
                dns.name.from_text(ptr_name(address)), "PTR", search=False
            )
    except (*DNS_ERRORS, TimeoutError) as exc:
        kind = _kind(exc)
        if kind in (DnsFailure.NXDOMAIN, DnsFailure.NO_ANSWER):
            return Rdns(address, "missing")
        return Rdns(address, "unavailable", failure=kind.value)
    names = tuple(dict.fromkeys(r.target.to_text().rstrip(".").lower() for r in answer))
    names = names[:_MAX_NAMES]
    if not names:
        return Rdns(address, "missing")
    rdtype = "A" if ip.version == 4 else "AAAA"

    async def forward(name: str) -> tuple[list[str], DnsFailure | None]:
        try:
            async with asyncio.timeout_at(deadline):
                found = await resolver.resolve(dns.name.from_text(name), rdtype, search=False)
        except (*DNS_ERRORS, TimeoutError) as exc:
            kind = _kind(exc)
            if kind in (DnsFailure.NXDOMAIN, DnsFailure.NO_ANSWER):
                return [], None
            return [], kind
        return sorted({r.to_text() for r in found}), None

    answers = await asyncio.gather(*(forward(name) for name in names))
    resolved = {name: found for name, (found, _) in zip(names, answers, strict=True)}
    if any(ip in {ipaddress.ip_address(a) for a in found} for found in resolved.values()):
        return Rdns(address, "ok", names, resolved)
    failures = [kind for _, kind in answers if kind is not None]
    if failures:
        return Rdns(address, "unavailable", names, resolved, failures[0].value)
    return Rdns(address, "mismatch", names, resolved)


def rdns_problems(rdns: Rdns, smtp_host: str) -> list[tuple[Code, str, str]]:
    """The (code, message, hint) of a reverse DNS that is not right; none when it is."""
    address = rdns.address
    try:
        ipaddress.ip_address(smtp_host)
    except ValueError:
        name, keep = smtp_host, f" and keep {smtp_host} resolving to {address}"
    else:  # an address as smtp_host: there is no name to suggest
        name, keep = "the server's host name (the one it greets with)", ""
    if rdns.result == "missing":
        return [
            (
                Code.RDNS_MISSING,
                f"{address} (the SMTP server {smtp_host}) has no reverse DNS (PTR record)",
                f"Ask the hosting provider of {address} to set its reverse DNS (PTR) to "
                f"{name}{keep}: many receivers refuse or junk mail from an address "
                "without it.",
            )
        ]
    if rdns.result == "mismatch":
        names = ", ".join(rdns.ptr)
        where = "; ".join(
            f"{name} -> {', '.join(found) if found else 'nothing'}"
            for name, found in rdns.forward.items()
        )
        return [
            (
                Code.RDNS_MISMATCH,
                f"the reverse DNS of {address} names {names}, which does not resolve back "
                f"to {address} ({where})",
                f"Ask the hosting provider of {address} to set its PTR to a name whose "
                f"A/AAAA record is {address} (e.g. {name}), or point that name at "
                f"{address}: receivers check that the two agree (forward-confirmed "
                "reverse DNS).",
            )
        ]
    if rdns.result == "unavailable":
        code = Code.DNS_TIMEOUT if rdns.failure == DnsFailure.TIMEOUT.value else Code.DNS_SERVFAIL
        why = "timed out" if code is Code.DNS_TIMEOUT else "failed (SERVFAIL or REFUSED)"
        return [
            (
                code,
                f"could not check the reverse DNS of {address}: the look-up {why}",
                "Retry, or choose a resolver that answers with --dns-server.",
            )
        ]
    return []
