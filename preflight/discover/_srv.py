"""SRV records (RFC 6186 and RFC 8314): the services a domain announces."""

from __future__ import annotations

import asyncio

from preflight.discover._model import (
    Candidate,
    Lookup,
    Protocol,
)
from preflight.discover._run import Run
from preflight.options import Security


async def lookup_srv(run: Run) -> None:
    """Look up the four RFC 6186/8314 services of the domain, side by side."""
    services: tuple[tuple[str, Protocol, Security], ...] = (
        ("_submissions._tcp", "smtp", "ssl"),
        ("_submission._tcp", "smtp", "starttls"),
        ("_imaps._tcp", "imap", "ssl"),
        ("_imap._tcp", "imap", "starttls"),
    )

    async def one(service: str, protocol: Protocol, security: Security) -> None:
        name = f"{service}.{run.domain}"
        records, result = await run.query(name, "SRV")
        found: list[tuple[int, int, Candidate]] = []
        for record in records:
            target = str(record.target).rstrip(".").lower()
            if not target:
                # RFC 6186 3.4: a target of "." says the service is not offered.
                run.notes.append(f"{name} says the service is not offered")
                continue
            mode: Security = "ssl" if record.port in (465, 993) else security
            candidate = Candidate(protocol, target, record.port, mode, "srv")
            found.append((record.priority, -record.weight, candidate))
        ordered = [candidate for *_, candidate in sorted(found, key=lambda f: f[:2])]
        run.srv.extend(ordered)
        detail = ", ".join(f"{c.host}:{c.port}" for c in ordered)
        run.lookups.append(Lookup("srv", name, "found" if found else result, detail))

    async with asyncio.TaskGroup() as group:
        for service, protocol, security in services:
            group.create_task(one(service, protocol, security))
