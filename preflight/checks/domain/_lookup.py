"""The domain check's TXT look-ups (each name asked once, under one deadline; DNS
exceptions become codes here, by the one table in :mod:`preflight._resolver`), and what
the parts of the check found."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import dns.asyncresolver

from preflight._resolver import DNS_ERRORS, SENDER_DOMAIN_CODES, DnsFailure, dns_failure
from preflight.checks.domain._spf import Finding, TxtLookup
from preflight.providers import Provider
from preflight.report import Code

#: The longest SPF or DMARC record a report quotes whole (a TXT answer may hold 64 KB;
#: real records are a few hundred characters).
TXT_SHOWN = 2048


async def _lookup_txt(
    resolver: dns.asyncresolver.Resolver, name: str, deadline: float
) -> TxtLookup:
    """The TXT records of ``name``; DNS exceptions become codes here (by the one table)."""
    try:
        async with asyncio.timeout_at(deadline):
            answer = await resolver.resolve(name, "TXT")
    except DNS_ERRORS as exc:
        kind = dns_failure(exc)
        if kind is DnsFailure.NXDOMAIN:
            return TxtLookup(name, nxdomain=True, canonical=_alias_of(name, exc))
        if kind is DnsFailure.NO_ANSWER:
            return TxtLookup(name, canonical=_alias_of(name, exc))
        return TxtLookup(name, error=SENDER_DOMAIN_CODES[kind])
    # A TXT record may be split in strings of 255 bytes: they join with nothing between.
    texts = tuple(b"".join(rdata.strings).decode("utf-8", errors="replace") for rdata in answer)
    return TxtLookup(name, texts, canonical=_other(name, answer.canonical_name))


def _alias_of(name: str, exc: BaseException) -> str | None:
    """The end of ``name``'s CNAME chain, as the answer without records gave it: a CNAME
    whose target does not exist (NXDOMAIN) or has no TXT (NODATA); None when ``name``
    is no alias (or the answer does not say)."""
    import dns.resolver

    try:
        if isinstance(exc, dns.resolver.NXDOMAIN):
            return _other(name, exc.canonical_name)
        response = exc.kwargs.get("response") if isinstance(exc, dns.resolver.NoAnswer) else None
        return _other(name, response.canonical_name()) if response is not None else None
    except Exception:  # a malformed chain says nothing either way
        return None


def _other(name: str, canonical: object) -> str | None:
    """``canonical`` as text, when it is another name than ``name``."""
    text = str(canonical).lower().rstrip(".")
    return text if text and text != name.lower().rstrip(".") else None


class TxtCache:
    """TXT look-ups of one probe: each name asked once, all in one task group."""

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        deadline: float,
        group: asyncio.TaskGroup,
        asked: TxtCache | None = None,
    ) -> None:
        self._resolver = resolver
        self._deadline = deadline
        self._group = group
        #: ``asked``'s look-ups, already under way (in another group), are reused.
        self._tasks: dict[str, asyncio.Task[TxtLookup]] = dict(asked._tasks) if asked else {}

    def txt(self, name: str) -> asyncio.Task[TxtLookup]:
        key = name.lower().rstrip(".")
        task = self._tasks.get(key)
        if task is None:
            task = self._group.create_task(_lookup_txt(self._resolver, key, self._deadline))
            self._tasks[key] = task
        return task

    def cancel(self) -> None:
        """Cancel the look-ups still under way."""
        for task in self._tasks.values():
            task.cancel()

    async def fetch(self, name: str) -> TxtLookup:
        return await self.txt(name)


@dataclass
class Found:
    """What the probe found and the problems, filled in by the three parts."""

    domain: str
    provider: Provider | None
    details: dict[str, Any]
    problems: list[Finding] = field(default_factory=list)
    #: DNS failures by code -> what could not be looked up ("the SPF record", ...).
    unchecked: dict[Code, list[str]] = field(default_factory=dict)

    def problem(self, code: Code, message: str, hint: str) -> None:
        self.problems.append(Finding(code, message, hint))

    def dns_failed(self, code: Code, what: str) -> None:
        self.unchecked.setdefault(code, []).append(what)
