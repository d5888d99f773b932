"""Guessing: the usual host names on the standard ports, probed side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from preflight.discover._model import (
    Candidate,
    Lookup,
    Protocol,
)
from preflight.discover._probe import probe
from preflight.discover._run import Run
from preflight.options import Security


async def guess(
    run: Run,
    protocols: Sequence[Protocol],
    ports: Mapping[str, Sequence[tuple[int, Security]]],
    probe_timeout: float,
) -> None:
    """Probe the usual host names of the protocols still unanswered, on their ports."""
    hosts: dict[Protocol, list[str]] = {
        "smtp": [f"smtp.{run.domain}", f"mail.{run.domain}", run.domain],
        "imap": [f"imap.{run.domain}", f"mail.{run.domain}", run.domain],
    }

    async def one(protocol: Protocol, host: str, port: int, security: Security) -> Candidate:
        lookup = await run.resolve(host)
        if lookup.code is not None:
            return Candidate(
                protocol,
                host,
                port,
                security,
                "guess",
                answered=False,
                detail=lookup.message,
            )
        return await probe(
            protocol,
            host,
            lookup.addresses,
            port,
            security,
            "guess",
            context=run.context,
            timeout=probe_timeout,
            local_hostname=run.options.local_hostname,
        )

    tasks: list[asyncio.Task[Candidate]] = []
    async with asyncio.TaskGroup() as group:
        for protocol in protocols:
            for host in hosts[protocol]:
                for port, security in ports[protocol]:
                    tasks.append(group.create_task(one(protocol, host, port, security)))
    run.guesses = [task.result() for task in tasks]
    for protocol in protocols:
        tried = [c for c in run.guesses if c.protocol == protocol]
        answered = [c for c in tried if c.answered]
        run.lookups.append(
            Lookup(
                "guess",
                protocol,
                "found" if answered else "none",
                ", ".join(c.label() for c in answered)
                or f"none of {', '.join(hosts[protocol])} answered",
            )
        )
