"""The ``tracking`` check: does the payload's ``custom_tracking_url`` work?

SmartLead rewrites every link of a campaign to go through the account's custom
tracking domain. When that domain does not resolve, points elsewhere, or presents a
certificate browsers refuse, every tracked link of every message is broken, and
nothing else in the account's checks shows it. In order:

- **DNS**: the host resolves (a CNAME chain, then A/AAAA), through the run's resolver
  (``--dns-server`` when given, like the domain check). ``tracking_not_found``: it
  does not exist, its CNAME leads to a name that does not (a dangling CNAME), or it
  has no address. A resolver that fails gives ``dns_servfail``/``dns_timeout``.
- **CNAME**: with ``tracking_cname`` (``--tracking-cname TARGET``), the chain must
  pass through TARGET (``tracking_cname_mismatch``).
- **HTTPS**: for an ``https://`` URL, a TLS handshake with the host on port 443
  (``CheckOptions.tracking_port``), its certificate verified for that host name as
  a browser would (the system store plus ``--ca-file``): ``tracking_tls_untrusted``,
  ``tracking_tls_hostname_mismatch``, ``tracking_tls_expired`` (the certificate the
  host presents is then described in ``details.certificate``), ``tracking_tls_failed``
  (no TLS there), ``tracking_unreachable`` (no TCP connection). An ``http://`` URL is
  ``tracking_not_https``: the links go out without TLS. A bare host (no scheme) is
  checked in DNS only, as its scheme is not known.

Every problem is a ``warn`` (a ``fail`` with ``strict``), with a hint; all of them
are in ``details.problems``, the most important is the result's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from preflight._net import (
    ConnectFailure,
    goodbye,
    open_socket,
    presented_certificate,
    tls_handshake,
)
from preflight._resolver import DNS_ERRORS, SENDER_DOMAIN_CODES, DnsFailure, dns_failure
from preflight._tls import classify_tls_error, describe_der, describe_session, expiry_warning
from preflight.payload import tracking_url_parts
from preflight.report import CheckResult, Code, Status

if TYPE_CHECKING:
    import dns.asyncresolver

__all__ = ["probe_tracking"]

#: What a broken certificate does to the account's mail.
_BREAKS: Final = "A certificate browsers refuse breaks every tracked link in every message"

#: Most important first: the result's code is the first of these found.
_SEVERITY: Final = (
    Code.TRACKING_NOT_FOUND,
    Code.TRACKING_TLS_EXPIRED,
    Code.TRACKING_TLS_HOSTNAME_MISMATCH,
    Code.TRACKING_TLS_UNTRUSTED,
    Code.TRACKING_TLS_FAILED,
    Code.TRACKING_UNREACHABLE,
    Code.TRACKING_CNAME_MISMATCH,
    Code.TRACKING_NOT_HTTPS,
    Code.DNS_SERVFAIL,
    Code.DNS_TIMEOUT,
)

_TLS_CODES: Final = {
    Code.TLS_EXPIRED: Code.TRACKING_TLS_EXPIRED,
    Code.TLS_HOSTNAME_MISMATCH: Code.TRACKING_TLS_HOSTNAME_MISMATCH,
    Code.TLS_UNTRUSTED: Code.TRACKING_TLS_UNTRUSTED,
}

#: The longest CNAME chain followed (real ones have one or two links).
_MAX_CHAIN: Final = 8


@dataclass
class _Found:
    host: str
    details: dict[str, Any]
    problems: list[tuple[Code, str, str]] = field(default_factory=list)

    def problem(self, code: Code, message: str, hint: str) -> None:
        self.problems.append((code, message, hint))


async def probe_tracking(
    url: str,
    resolver: dns.asyncresolver.Resolver,
    context: ssl.SSLContext,
    timeout: float,
    *,
    port: int = 443,
    expected_cname: str | None = None,
    strict: bool = False,
    insecure: bool = False,
) -> CheckResult:
    """Check the tracking domain of ``url`` (a valid ``custom_tracking_url``) within
    ``timeout`` seconds: DNS, the CNAME (``expected_cname``), and for ``https://`` a TLS
    handshake on ``port`` verified with ``context``."""
    started = time.perf_counter()
    scheme, host = tracking_url_parts(url)
    expected = expected_cname.lower().rstrip(".") if expected_cname else None
    details: dict[str, Any] = {
        "url": url,
        "host": host,
        "scheme": scheme,
        "cname": None,
        "cname_chain": [],
        "expected_cname": expected,
        "addresses": [],
        "https": None,
        "problems": [],
    }
    found = _Found(host, details)
    deadline = asyncio.get_running_loop().time() + timeout
    addresses = await _resolve(found, resolver, deadline)
    if expected is not None and addresses is not None and (addresses or details["cname_chain"]):
        _check_cname(found, expected)  # (a name that does not exist has no CNAME to judge)
    if scheme == "http":
        found.problem(
            Code.TRACKING_NOT_HTTPS,
            f"custom_tracking_url {url} is http://: tracked links go out without TLS",
            f"Serve {host} over HTTPS (a certificate for {host}; SmartLead's custom "
            f"domain settings, or a proxy such as Cloudflare, give one) and use "
            f"https://{host}: browsers warn on http:// links and spam filters count them.",
        )
    elif scheme == "https" and addresses:
        await _check_https(found, addresses, port, context, deadline, insecure)
    elif scheme is None:
        details["https"] = "not checked: custom_tracking_url has no scheme (give https://HOST)"
    return _result(found, strict, started)


async def _resolve(
    found: _Found, resolver: dns.asyncresolver.Resolver, deadline: float
) -> tuple[str, ...] | None:
    """The host's addresses (empty: none), its CNAME chain in details; None when the
    resolver failed (a problem is recorded)."""
    host = found.host
    chain_task = asyncio.ensure_future(_chain(resolver, host, deadline))
    answers = await asyncio.gather(
        *(_addresses(resolver, host, rdtype, deadline) for rdtype in ("A", "AAAA"))
    )
    chain = await chain_task
    found.details["cname_chain"] = list(chain)
    found.details["cname"] = chain[0] if chain else None
    addresses = tuple(a for kind, got in answers if kind is None for a in got)
    found.details["addresses"] = list(addresses)
    if addresses:
        return addresses
    kinds = {kind for kind, _ in answers if kind is not None}
    failed = kinds - {DnsFailure.NXDOMAIN, DnsFailure.NO_ANSWER}
    if failed:
        code = SENDER_DOMAIN_CODES[sorted(failed, key=lambda k: k.value)[0]]
        what = "did not answer in time" if code is Code.DNS_TIMEOUT else "answered SERVFAIL"
        found.problem(
            code,
            f"the tracking host {host} could not be looked up: the DNS server {what}",
            "The DNS server could not answer for the tracking host: retry, or choose one "
            "with --dns-server.",
        )
        return None
    if chain:
        found.problem(
            Code.TRACKING_NOT_FOUND,
            f"the tracking host {host} is a CNAME to {chain[-1]}, which does not resolve "
            "(a dangling CNAME): every tracked link is broken",
            f"Point the CNAME of {host} at the tracking host SmartLead's custom domain "
            "settings give (check its spelling), or remove custom_tracking_url.",
        )
    elif DnsFailure.NXDOMAIN in kinds:
        found.problem(
            Code.TRACKING_NOT_FOUND,
            f"the tracking host {host} does not exist: every tracked link is broken",
            f"Create a CNAME record for {host} pointing at the tracking host SmartLead's "
            "custom domain settings give, or fix or remove custom_tracking_url.",
        )
    else:
        found.problem(
            Code.TRACKING_NOT_FOUND,
            f"the tracking host {host} has no address (no CNAME, A or AAAA record): every "
            "tracked link is broken",
            f"Add a CNAME record for {host} pointing at the tracking host SmartLead's "
            "custom domain settings give.",
        )
    return ()


async def _addresses(
    resolver: dns.asyncresolver.Resolver, host: str, rdtype: str, deadline: float
) -> tuple[DnsFailure | None, tuple[str, ...]]:
    try:
        async with asyncio.timeout_at(deadline):
            answer = await resolver.resolve(host, rdtype)
    except DNS_ERRORS as exc:
        return dns_failure(exc), ()
    return None, tuple(str(record) for record in answer)


async def _chain(
    resolver: dns.asyncresolver.Resolver, host: str, deadline: float
) -> tuple[str, ...]:
    """The CNAME chain from ``host`` (its targets in order; empty: no CNAME), followed
    one link per question, as a recursive resolver answers a CNAME question with that
    link alone. A failed question ends the chain where it is."""
    chain: list[str] = []
    name = host
    for _ in range(_MAX_CHAIN):
        try:
            async with asyncio.timeout_at(deadline):
                answer = await resolver.resolve(name, "CNAME")
        except DNS_ERRORS:
            break
        target = next((str(record.target).lower().rstrip(".") for record in answer), None)
        if target is None or target in chain or target == host:
            break
        chain.append(target)
        name = target
    return tuple(chain)


def _check_cname(found: _Found, expected: str) -> None:
    chain = found.details["cname_chain"]
    host = found.host
    if expected in chain or host == expected:
        return
    now = f"is a CNAME to {chain[0]}" if chain else "has no CNAME (its A/AAAA records are direct)"
    found.problem(
        Code.TRACKING_CNAME_MISMATCH,
        f"the tracking host {host} {now}, not to {expected}: SmartLead's tracked links "
        "would not reach it",
        f"Make {host} a CNAME record for {expected}, as SmartLead's custom domain settings "
        "say. A proxied record (Cloudflare's orange cloud) hides the CNAME: turn the proxy "
        "off, or leave out --tracking-cname.",
    )


async def _check_https(
    found: _Found,
    addresses: tuple[str, ...],
    port: int,
    context: ssl.SSLContext,
    deadline: float,
    insecure: bool,
) -> None:
    """A TLS handshake with the host, its certificate verified for the host name."""
    host = found.host
    loop = asyncio.get_running_loop()
    remaining = max(0.0, deadline - loop.time())
    try:
        sock = await open_socket(addresses, port, remaining)
    except ConnectFailure as exc:
        found.details["https"] = "no connection"
        found.problem(
            Code.TRACKING_UNREACHABLE,
            f"the tracking host {host} does not answer HTTPS: {exc.message}",
            f"Nothing serves HTTPS on {host}: every tracked link fails to open. Check the "
            "CNAME's target, or the server or proxy meant to serve it.",
        )
        return
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=host)
    try:
        async with asyncio.timeout_at(deadline):
            await tls_handshake(sock, tls, incoming, outgoing)
        session = describe_session(tls)
        with contextlib.suppress(ssl.SSLError):
            tls.unwrap()  # queues our close_notify; the server's is not awaited
        goodbye(sock, outgoing.read())
    except TimeoutError:
        found.details["https"] = "no TLS handshake in time"
        found.problem(
            Code.TRACKING_UNREACHABLE,
            f"the tracking host {host} did not complete a TLS handshake in time",
            f"{host} accepts connections but does not speak TLS in time: check the server "
            "or proxy meant to serve it.",
        )
        return
    except (OSError, ssl.SSLError) as exc:  # ssl.SSLError is an OSError
        await _tls_problem(found, exc, addresses[0], port, deadline)
        return
    finally:
        sock.close()
    found.details["https"] = "verified" if not insecure else "not verified (--insecure)"
    found.details.update(session)


async def _tls_problem(
    found: _Found, exc: BaseException, address: str, port: int, deadline: float
) -> None:
    host = found.host
    code, message = classify_tls_error(exc)
    tracking = _TLS_CODES.get(code)
    if tracking is None:
        found.details["https"] = "no TLS"
        found.problem(
            Code.TRACKING_TLS_FAILED,
            f"HTTPS on the tracking host {host} failed: {message}",
            f"{host} does not serve HTTPS: every https:// tracked link fails. Serve it "
            "with a certificate, or use http:// (tracked links then go without TLS).",
        )
        return
    found.details["https"] = "certificate refused"
    remaining = min(2.0, deadline - asyncio.get_running_loop().time())
    der = await presented_certificate(address, port, "", False, remaining)
    described = describe_der(der) if der else None
    if described is not None:
        found.details["certificate"] = described
    hints = {
        Code.TRACKING_TLS_EXPIRED: f"Renew the certificate of {host}",
        Code.TRACKING_TLS_HOSTNAME_MISMATCH: (
            f"Get a certificate that names {host}"
            + (f" (this one is for {', '.join(described['san'][:3])})" if described else "")
        ),
        Code.TRACKING_TLS_UNTRUSTED: (
            f"Replace the certificate of {host} with one from a public CA (Let's Encrypt, "
            "or the proxy's)"
        ),
    }
    found.problem(
        tracking,
        f"the tracking host {host} presents a certificate browsers refuse: {message}",
        f"{hints[tracking]}. {_BREAKS}.",
    )


def _result(found: _Found, strict: bool, started: float) -> CheckResult:
    elapsed = (time.perf_counter() - started) * 1000
    details = found.details
    problems = sorted(found.problems, key=lambda p: _SEVERITY.index(p[0]))
    details["problems"] = [
        {"code": code.value, "message": message, "hint": hint} for code, message, hint in problems
    ]
    if not problems:
        how = {
            "https": f"HTTPS {details['https']}",
            "http": "",
            None: "DNS only (no scheme)",
        }[details["scheme"]]
        via = f" (CNAME {details['cname']})" if details["cname"] else ""
        message = f"{found.host} resolves{via}" + (f"; {how}" if how else "")
        soon = expiry_warning(details)
        if soon is not None:  # a warning in the payload check's shape, code still ok
            details["warnings"] = [{"message": soon}]
            hint = f"Renew the certificate of {found.host} before it expires. {_BREAKS}."
            return CheckResult(
                "tracking", Status.WARN, Code.OK, f"{message}; {soon}", hint, elapsed, details
            )
        return CheckResult("tracking", Status.PASS, Code.OK, message, None, elapsed, details)
    code, message, hint = problems[0]
    if len(problems) > 1:
        more = len(problems) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''}: see details.problems)"
    status = Status.FAIL if strict else Status.WARN
    return CheckResult("tracking", status, code, message, hint, elapsed, details)
