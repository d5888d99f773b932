"""Hints for ``check``: which settings of a failing host (or of the provider) answer."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Final

from preflight.discover._model import DEFAULT_PORTS, Candidate, Protocol
from preflight.discover._probe import probe, rank_security
from preflight.options import CheckOptions, Security

_FAILED: Final[Mapping[str, str]] = {
    "connect_timeout": "{port} timed out",
    "connect_refused": "{port} refused the connection",
    "greeting_timeout": "{port} never greeted",
    "tls_mode_mismatch": "{port} speaks another security mode",
    "tls_handshake_failed": "TLS on {port} failed",
    "starttls_unsupported": "{port} has no working STARTTLS",
}


async def suggest_alternatives(
    protocol: Protocol,
    host: str,
    port: int,
    *,
    options: CheckOptions,
    code: str | None = None,
    addresses: tuple[str, ...] | None = None,
    email_domain: str | None = None,
    timeout: float = 4.0,
    ports: Mapping[str, Sequence[tuple[int, Security]]] | None = None,
    tried: str | None = None,
) -> str | None:
    """A sentence naming settings that do answer, after ``host:port`` failed; or None.

    Probes, concurrently and within ``timeout`` seconds: ``host`` on the protocol's
    other standard ports (for ``tls_mode_mismatch``, the same port in the other mode
    too), and the bundled table's servers for ``email_domain`` when they are other
    hosts. Connection, TLS and greeting only, no credentials. ``addresses`` skips the
    look-up of ``host``; ``code`` (a :class:`~preflight.report.Code` value) words the
    failure: "465 timed out; smtp.example.com:587 with STARTTLS answers." ``tried`` is
    the security mode the failed check used (``ssl``, ``starttls``, ...; None: the
    port's convention), so that a mode mismatch tries the port in the other mode.
    """
    from preflight._resolver import make_resolver, resolve_host
    from preflight._tls import make_context
    from preflight.providers import by_domain

    table = ports or DEFAULT_PORTS
    tls_ports = {p for p, security in table[protocol] if security == "ssl"}
    tries: list[tuple[str, int, Security]] = [
        (host, p, security) for p, security in table[protocol] if p != port
    ]
    if code == "tls_mode_mismatch":
        if tried in ("ssl", "starttls", "starttls?", "plain"):
            was_tls = tried == "ssl"
        else:  # the port's convention, or a port without one
            was_tls = port in tls_ports
        tries.append((host, port, "starttls" if was_tls else "ssl"))
    provider = by_domain(email_domain) if email_domain else None
    if provider is not None:
        servers = provider.smtp if protocol == "smtp" else provider.imap
        tries += [(s.host, s.port, s.security) for s in servers if s.host != host.lower()]
    if options.dns_server:
        options = dataclasses.replace(options, resolve_hosts_with_dns_server=True)
    context = make_context(options.ca_file, options.insecure)
    resolver = make_resolver(options) if options.dns_server else None

    async def one(target: str, target_port: int, security: Security) -> Candidate | None:
        if target == host and addresses:
            found = addresses
        else:
            lookup = await resolve_host(target, options, resolver)
            if lookup.code is not None:
                return None
            found = lookup.addresses
        return await probe(
            protocol,
            target,
            found,
            target_port,
            security,
            "guess",
            context=context,
            timeout=timeout,
            local_hostname=options.local_hostname,
        )

    tasks = [asyncio.ensure_future(one(*t)) for t in tries]
    try:
        answered = await _answers(tasks, tries, host, timeout + 0.5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if code == "starttls_unsupported":  # a way to TLS is what is missing
        answered = [c for c in answered if c.security != "plain"]
    if not answered:
        return None
    best = answered[0]  # the best, the first tried among equals (see _answers)
    failed = _FAILED.get(code or "", "{host}:{port} failed").format(host=host, port=port)
    extra = ""
    if best.verified is False:
        extra = " (but its certificate does not verify)"
    elif best.security == "plain":
        extra = " (without encryption)"
    return f"{failed}; {best.label()} answers{extra}."


def _preference(
    security: Security, verified: bool | None, target: str, host: str
) -> tuple[int, bool]:
    """How good a suggestion is (lower is better): the security first, the same host
    before another one."""
    return rank_security(security, verified), target.lower() != host.lower()


async def _answers(
    tasks: Sequence[asyncio.Future[Candidate | None]],
    tries: Sequence[tuple[str, int, Security]],
    host: str,
    timeout: float,
) -> list[Candidate]:
    """The candidates that answered, without waiting longer than the answer needs.

    Best first: by security, then the same host before another, then the order of
    ``tries`` (587 before 25). Done when no try still running could beat the best
    answer so far (a try can only turn out as good as its security promises), or,
    once something answered, after a grace as long again as the first answer took
    (at least half a second): the others are on the same network, a slower one is a
    port that will time out. Never later than ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    end = started + timeout
    order = {task: n for n, task in enumerate(tasks)}
    promise = {
        task: (*_preference(s, None, t, host), order[task])
        for task, (t, _, s) in zip(tasks, tries, strict=True)
    }
    pending = set(tasks)
    answered: dict[asyncio.Future[Candidate | None], Candidate] = {}

    def key(task: asyncio.Future[Candidate | None]) -> tuple[int, bool, int]:
        c = answered[task]
        return (*_preference(c.security, c.verified, c.host, host), order[task])

    while pending:
        left = end - loop.time()
        if left <= 0:
            break
        done, pending = await asyncio.wait(
            pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            candidate = task.result()  # a probe's own exception (a bug) propagates
            if candidate is not None and candidate.answered:
                if not answered:
                    first = loop.time() - started
                    end = min(end, loop.time() + max(0.5, first))
                answered[task] = candidate
        if answered:
            best = min(key(task) for task in answered)
            if all(best < promise[task] for task in pending):
                break
    return [answered[task] for task in sorted(answered, key=key)]
