"""One discovery in progress: what each step found so far, and its DNS look-ups."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.discover._model import (
    Candidate,
    Lookup,
)
from preflight.options import CheckOptions

if TYPE_CHECKING:
    import dns.asyncresolver


@dataclass
class Run:
    """One discovery in progress: what each step found so far."""

    email: str
    domain: str
    options: CheckOptions
    resolver: dns.asyncresolver.Resolver
    context: ssl.SSLContext
    lookups: list[Lookup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mx: list[str] = field(default_factory=list)
    spf: list[str] = field(default_factory=list)
    srv: list[Candidate] = field(default_factory=list)
    autoconfig: list[Candidate] = field(default_factory=list)
    #: Thunderbird's ISPDB, by the address's domain and by its MX host's domain.
    ispdb: list[Candidate] = field(default_factory=list)
    ispdb_mx: list[Candidate] = field(default_factory=list)
    #: Where ``autodiscover.DOMAIN`` points (a CNAME), if anywhere.
    autodiscover: str = ""
    guesses: list[Candidate] = field(default_factory=list)
    nxdomain: bool = False
    _hosts: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    async def query(self, name: str, rdtype: str) -> tuple[list[Any], str]:
        from preflight._resolver import DNS_ERRORS, dns_failure

        try:
            async with asyncio.timeout(self.options.timeouts.dns + 0.5):
                answer = await self.resolver.resolve(name, rdtype, search=False)
        except DNS_ERRORS as exc:
            return [], dns_failure(exc).value
        return list(answer), "found"

    async def lookup_mx(self) -> None:
        records, result = await self.query(self.domain, "MX")
        hosts = [
            str(r.exchange).rstrip(".").lower() for r in sorted(records, key=lambda r: r.preference)
        ]
        if hosts == [""]:
            self.notes.append(f"{self.domain} has a null MX: it accepts no mail (RFC 7505)")
            hosts = []
        if result == "nxdomain":
            self.nxdomain = True
            self.notes.append(f"the domain {self.domain} does not exist (NXDOMAIN)")
        self.mx = hosts
        self.lookups.append(Lookup("mx", self.domain, result, ", ".join(hosts)))

    async def lookup_spf(self) -> None:
        records, result = await self.query(self.domain, "TXT")
        includes: list[str] = []
        for record in records:
            text = b"".join(record.strings).decode("ascii", "replace")
            if not text.lower().startswith("v=spf1"):
                continue
            for term in text.split()[1:]:
                term = term.lstrip("+?~-").lower()
                for prefix in ("include:", "redirect="):
                    if term.startswith(prefix):
                        includes.append(term[len(prefix) :])
        self.spf = includes
        if result == "found" and not includes:
            result = "none"
        self.lookups.append(Lookup("spf", self.domain, result, " ".join(includes)))

    async def lookup_autodiscover(self) -> None:
        """``autodiscover.DOMAIN``'s CNAME: Exchange (Microsoft 365) domains point it at
        ``autodiscover.outlook.com``."""
        name = f"autodiscover.{self.domain}"
        records, result = await self.query(name, "CNAME")
        targets = [str(r.target).rstrip(".").lower() for r in records]
        self.autodiscover = targets[0] if targets else ""
        self.lookups.append(Lookup("autodiscover", name, result, ", ".join(targets)))

    def resolve(self, host: str) -> asyncio.Task[Any]:
        """The host's addresses, looked up once per run (by the DNS server if given)."""
        from preflight._resolver import resolve_host

        key = host.lower()
        if key not in self._hosts:
            self._hosts[key] = asyncio.ensure_future(
                resolve_host(host, self.options, self.resolver)
            )
        return self._hosts[key]

    def close(self) -> None:
        for task in self._hosts.values():
            task.cancel()
