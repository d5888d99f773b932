"""Turning accounts into reports.

``validate`` runs the payload check alone. ``check_account`` runs it, then, for a
valid payload, the network probes side by side (``mx``, ``smtp``, ``imap``) under
one deadline; ``check_many`` does that for many accounts with bounded concurrency
and yields reports as they finish; ``check_sync`` is the one-call form for scripts
and hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import ssl
import sys
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from typing import TYPE_CHECKING, Any, Final, Literal

from preflight._limits import HostLimit
from preflight.options import CheckOptions
from preflight.payload import Account, parse_account, secret_values
from preflight.reader import RawAccount
from preflight.report import CHECK_NAMES, AccountReport, CheckResult, Code, Status, skipped

if TYPE_CHECKING:
    import dns.asyncresolver

    from preflight._resolver import HostLookup
    from preflight.checks.blocklist import AddressFindings, ZoneResult

__all__ = [
    "Shared",
    "account_label",
    "check_account",
    "check_many",
    "check_payload",
    "check_sync",
    "validate",
    "validate_all",
]

#: Accounts checked at once by default: enough to hide network round trips, few
#: enough not to look like an attack to one provider.
DEFAULT_CONCURRENCY = 100

_PAYLOAD_HINT = (
    "Fix the fields listed in details.errors; names and types are those of the "
    "save-account API (POST /api/v1/email-accounts/save)."
)


def account_label(data: object) -> str | None:
    """The report's ``account``: ``from_email`` as given, when it is text.

    Bounded (it is echoed in every format: an address has at most 254 characters),
    and never a password: a from_email equal to one is not shown. It is not escaped
    here: the JSON formats give it back as it was, the text format escapes it.
    """
    if isinstance(data, dict):
        value = data.get("from_email")
        if isinstance(value, str) and value not in secret_values(data):
            return value if len(value) <= _MAX_LABEL else value[:_MAX_LABEL] + "…"
    return None


#: The longest ``account`` a report gives (RFC 5321's limit for an address).
_MAX_LABEL: Final = 254


def check_payload(raw: RawAccount) -> tuple[CheckResult, Account | None]:
    """The ``payload`` check of one account, and the account when it is valid."""
    started = time.perf_counter()
    if raw.error is not None:
        errors = [{"field": None, "message": raw.error}]
        result = CheckResult(
            "payload",
            Status.FAIL,
            Code.PAYLOAD_INVALID,
            raw.error,
            _PAYLOAD_HINT,
            _ms(started),
            {"errors": errors},
        )
        return result, None
    parsed = parse_account(raw.data)
    details: dict[str, object] = {}
    if parsed.errors:
        details["errors"] = [p.to_dict() for p in parsed.errors]
    if parsed.warnings:
        details["warnings"] = [p.to_dict() for p in parsed.warnings]
    if parsed.errors:
        count = len(parsed.errors)
        message = parsed.errors[0].message if count == 1 else f"{count} problems in the payload"
        result = CheckResult(
            "payload",
            Status.FAIL,
            Code.PAYLOAD_INVALID,
            message,
            _PAYLOAD_HINT,
            _ms(started),
            details,
        )
    elif parsed.warnings:
        count = len(parsed.warnings)
        message = "payload is valid, with " + ("1 warning" if count == 1 else f"{count} warnings")
        hint = parsed.warnings[0].message if count == 1 else "See details.warnings."
        result = CheckResult("payload", Status.WARN, Code.OK, message, hint, _ms(started), details)
    else:
        result = CheckResult(
            "payload", Status.PASS, Code.OK, "payload is valid", None, _ms(started)
        )
    return result, parsed.account


def validate(payload: RawAccount | Mapping[str, Any], *, index: int = 0) -> AccountReport:
    """The report of ``preflight validate``: the payload check alone, no network.

    ``payload`` is the save-account body (a mapping: field names and values as the
    SmartLead API takes them) or a :class:`RawAccount` from
    :func:`preflight.read_accounts`. ``index`` is the report's ``index`` for a
    mapping (a :class:`RawAccount` carries its own). The other checks are reported
    as skipped.
    """
    raw = _as_raw(payload, index)
    payload_result, account = check_payload(raw)
    why = (
        "not run: validate checks the payload only"
        if account is not None
        else "not run: the payload is invalid"
    )
    checks = (payload_result, *(skipped(name, why) for name in CHECK_NAMES[1:]))
    return AccountReport(raw.index, account_label(raw.data), checks, raw.line)


def validate_all(accounts: Iterable[RawAccount]) -> Iterator[AccountReport]:
    """Validate accounts one after another, as they are read."""
    for raw in accounts:
        yield validate(raw)


#: Logins open at once to one server host by default: 500 accounts on smtp.gmail.com
#: must not look like an attack and get the address throttled.
DEFAULT_PER_HOST = 5


class Shared:
    """What the accounts of one run share: the resolver and its cache, host
    addresses, and the per-host bound on simultaneous connections.

    :func:`check_many` makes one for its run. A caller that schedules
    :func:`check_account` itself passes one ``Shared`` to every call of a batch
    (``shared=``), so the batch looks up each domain once and opens at most
    ``per_host`` connections to one server host; then calls :meth:`close` once
    the batch is done. Build it inside the event loop that runs the checks.

    ``options`` are the batch's :class:`CheckOptions` (its resolver settings are
    used here); ``per_host`` (at least 1) bounds simultaneous logins per host.
    """

    def __init__(self, options: CheckOptions, per_host: int = DEFAULT_PER_HOST) -> None:
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        self.options = options
        self._resolver: dns.asyncresolver.Resolver | None = None
        self.per_host = per_host
        self._hosts: dict[str, asyncio.Task[HostLookup]] = {}
        self._slots: dict[str, HostLimit] = {}
        self._mx: dict[str, asyncio.Task[CheckResult]] = {}
        self._domains: dict[tuple[str, str, str], asyncio.Task[CheckResult]] = {}
        self._alternatives: dict[tuple[str, ...], asyncio.Task[str | None]] = {}
        self._contexts: dict[tuple[str | None, bool], asyncio.Future[ssl.SSLContext]] = {}
        # The blocklist check's look-ups, one in flight per (domain or address, zones).
        self._blocklist_domains: dict[
            tuple[str, tuple[str, ...]], asyncio.Task[tuple[ZoneResult, ...]]
        ] = {}
        self._blocklist_addresses: dict[
            tuple[str, tuple[str, ...]], asyncio.Task[AddressFindings]
        ] = {}
        self._dns_loaded: asyncio.Future[None] | None = None
        self._tracking: dict[tuple[str, str], asyncio.Task[CheckResult]] = {}

    @property
    def resolver(self) -> dns.asyncresolver.Resolver:
        """The run's resolver and its cache, made when first needed (dnspython takes
        tens of milliseconds to import: a run of invalid payloads never needs it)."""
        if self._resolver is None:
            from preflight._resolver import make_resolver

            self._resolver = make_resolver(self.options)
        return self._resolver

    def dns_loaded(self) -> asyncio.Future[None]:
        """dnspython and the DNS checks' modules, imported once in a thread.

        Importing them takes tens of milliseconds of CPU (more than a round trip on a
        fast network). On a cold start the probes need none of it: imported in the
        event loop's thread, it would hold back their conversations; in a thread, it
        runs while they wait for the servers (the interpreter lets the loop's thread
        in within milliseconds when a reply arrives). Called after the probes'
        own modules are loaded, so that the two threads never import the same ones.
        """
        if self._dns_loaded is None:
            if all(name in sys.modules for name in _DNS_MODULES):
                self._dns_loaded = asyncio.get_running_loop().create_future()
                self._dns_loaded.set_result(None)
            else:
                loop = asyncio.get_running_loop()
                self._dns_loaded = loop.run_in_executor(None, _import_dns)
        return self._dns_loaded

    def lookup(self, host: str) -> asyncio.Task[HostLookup]:
        """The addresses of ``host``, looked up once per run (a timed-out look-up is
        tried again by the next account that needs it)."""
        from preflight._resolver import resolve_host
        from preflight.report import Code as _Code

        key = host.lower()
        task = self._hosts.get(key)
        stale = (
            task is not None
            and task.done()
            and (
                task.cancelled()
                or task.exception() is not None
                or task.result().code is _Code.TIMEOUT
            )
        )
        if task is None or stale:
            # dnspython only when the host names go to the DNS server: the system's
            # resolver (getaddrinfo) needs none of it.
            by_dns = self.options.dns_server and self.options.resolve_hosts_with_dns_server
            resolver = self.resolver if by_dns else None
            task = asyncio.ensure_future(resolve_host(host, self.options, resolver))
            self._hosts[key] = task
        return task

    def mx(self, domain: str) -> asyncio.Future[CheckResult]:
        """The mx check of ``domain``: looked up once per run (a thousand accounts of
        one domain: one look-up, one result); a result that says only that DNS failed
        (a timeout, SERVFAIL) is asked again by the next account."""
        key = domain.lower()
        task = self._mx.get(key)
        if task is None:

            async def look_up() -> CheckResult:
                await self.dns_loaded()
                from preflight.checks.mx import probe_mx

                return await probe_mx(domain, self.resolver, self.options.timeout)

            task = asyncio.ensure_future(look_up())
            self._mx[key] = task
            task.add_done_callback(lambda t: _forget_dns_failure(t, key, self._mx))
        return task

    def domain(
        self, account: Account, mx: asyncio.Future[CheckResult], deadline: float
    ) -> asyncio.Future[CheckResult]:
        """The domain check of an account's sending domain, once per run and
        (domain, type, SMTP host): accounts of one domain share it, like ``mx``."""
        key = (
            account.email_domain.lower(),
            account.type.value if account.type else "",
            account.smtp_host.lower(),
        )
        task = self._domains.get(key)
        if task is None:
            task = asyncio.ensure_future(_domain(account, self.options, self, mx, deadline))
            self._domains[key] = task
            task.add_done_callback(lambda t: _forget_dns_failure(t, key, self._domains))
        return task

    # --- The blocklist check (issue 14) ---------------------------------------------

    def blocklist_domain(
        self, domain: str, zones: tuple[str, ...], deadline: float
    ) -> asyncio.Task[tuple[ZoneResult, ...]]:
        """The domain blocklists' answers for ``domain``: looked up once per run and
        (domain, zones); an answer that could not be had is asked again by the next
        account that needs it."""
        from preflight.checks.blocklist import lookup_domain

        key = (domain.lower(), zones)
        task = self._blocklist_domains.get(key)
        if task is None:
            task = asyncio.ensure_future(lookup_domain(domain, zones, self.resolver, deadline))
            self._blocklist_domains[key] = task
            task.add_done_callback(lambda t: _forget_unavailable(t, key, self._blocklist_domains))
        return task

    def blocklist_address(
        self, address: str, zones: tuple[str, ...], deadline: float
    ) -> asyncio.Task[AddressFindings]:
        """The IP blocklists' answers and the reverse DNS of an SMTP server's address:
        once per run and (address, zones), like :meth:`blocklist_domain`."""
        from preflight.checks.blocklist import lookup_address

        key = (address, zones)
        task = self._blocklist_addresses.get(key)
        if task is None:
            task = asyncio.ensure_future(lookup_address(address, zones, self.resolver, deadline))
            self._blocklist_addresses[key] = task
            task.add_done_callback(lambda t: _forget_unavailable(t, key, self._blocklist_addresses))
        return task

    def tracking(self, url: str, deadline: float) -> asyncio.Future[CheckResult]:
        """The tracking check of ``url``'s host, once per run for a (host, scheme): the
        accounts of one tracking domain share its look-ups and handshake. A result cut
        short by time is looked at again by the next account that needs it."""
        from preflight.payload import tracking_url_parts

        scheme, host = tracking_url_parts(url)
        key = (host, scheme or "")
        task = self._tracking.get(key)
        stale = (
            task is not None
            and task.done()
            and (task.cancelled() or task.exception() is not None or _timed_out(task.result()))
        )
        if task is None or stale:
            task = asyncio.ensure_future(_tracking(url, self.options, self, deadline))
            self._tracking[key] = task
        return task

    def alternatives(
        self,
        protocol: Literal["smtp", "imap"],
        account: Account,
        code: Code,
        timeout: float,
        options: CheckOptions | None = None,
    ) -> asyncio.Task[str | None]:
        """The search for settings that answer after the account's server failed with
        ``code``: one per (protocol, host, port, code, provider) for the whole run, so a
        thousand accounts with the same wrong port cost one search, not a thousand.
        ``timeout`` bounds the search its first account starts, with that account's
        ``options`` (default: the run's)."""
        from preflight._net import mode_for_port
        from preflight.discover import suggest_alternatives
        from preflight.providers import by_domain

        host = account.smtp_host if protocol == "smtp" else account.imap_host
        port = account.smtp_port if protocol == "smtp" else account.imap_port
        used = options or self.options
        mode = mode_for_port(
            protocol, port, used.smtp_security if protocol == "smtp" else used.imap_security
        )
        provider = by_domain(account.email_domain)
        key = (protocol, host.lower(), str(port), mode, code.value, provider.id if provider else "")
        task = self._alternatives.get(key)
        if task is None or task.cancelled():

            async def search() -> str | None:
                lookup = await asyncio.shield(self.lookup(host))
                return await suggest_alternatives(
                    protocol,
                    host,
                    port,
                    options=used,
                    code=code.value,
                    addresses=lookup.addresses or None,
                    email_domain=account.email_domain,
                    timeout=timeout,
                    tried=mode,
                )

            task = asyncio.ensure_future(search())
            self._alternatives[key] = task
        return task

    def tls_context(self, options: CheckOptions) -> asyncio.Future[ssl.SSLContext]:
        """The TLS client context for ``options``, built once per run in a thread
        (loading the system's CA store takes tens of milliseconds of CPU)."""
        from preflight._tls import make_context

        key = (options.ca_file, options.insecure)
        context = self._contexts.get(key)
        if context is None:
            loop = asyncio.get_running_loop()
            context = loop.run_in_executor(None, make_context, *key)
            self._contexts[key] = context
        return context

    def slot(self, host: str) -> HostLimit:
        """The bound on simultaneous checks of ``host``: ``per_host`` at most, halved
        on throttling replies and grown back slowly (:class:`~preflight._limits.HostLimit`)."""
        key = host.lower()
        if key not in self._slots:
            self._slots[key] = HostLimit(self.per_host)
        return self._slots[key]

    def close(self) -> None:
        """Cancel the look-ups still in flight (the accounts using them are done)."""
        for task in [
            *self._hosts.values(),
            *self._mx.values(),
            *self._domains.values(),
            *self._alternatives.values(),
            *self._blocklist_domains.values(),
            *self._blocklist_addresses.values(),
            *self._tracking.values(),
        ]:
            task.cancel()


#: Codes that say a DNS answer could not be had, not what the answer is.
_DNS_FAILURES: Final = frozenset({Code.DNS_TIMEOUT, Code.DNS_SERVFAIL, Code.TIMEOUT})


def _forget_dns_failure(
    task: asyncio.Task[CheckResult], key: object, tasks: dict[Any, Any]
) -> None:
    """An mx or domain result is kept for the run, unless DNS failed somewhere in it:
    the next account asks again."""
    if task.cancelled() or task.exception() is not None:
        tasks.pop(key, None)
        return
    result = task.result()
    problems = result.details.get("problems") or ()
    if result.code in _DNS_FAILURES or any(
        isinstance(p, Mapping) and p.get("code") in _DNS_FAILURES for p in problems
    ):
        tasks.pop(key, None)


def _forget_unavailable(task: asyncio.Task[Any], key: object, tasks: dict[Any, Any]) -> None:
    """A blocklist look-up is kept for the run, unless some answer could not be had
    (a timeout, a refusal): the next account asks again."""
    if task.cancelled() or task.exception() is not None:
        tasks.pop(key, None)
        return
    result = task.result()
    zones = result if isinstance(result, tuple) else result.zones
    rdns = None if isinstance(result, tuple) else result.rdns
    if any(z.verdict == "unavailable" for z in zones) or (
        rdns is not None and rdns.result == "unavailable"
    ):
        tasks.pop(key, None)


#: What the DNS checks import (see :meth:`Shared.dns_loaded`), the heaviest first.
_DNS_MODULES: Final = (
    "dns.asyncresolver",
    "preflight._resolver",
    "preflight.checks.mx",
    "preflight.checks.domain",
    "preflight.checks.blocklist",
)


def _import_dns() -> None:
    import importlib

    for name in _DNS_MODULES:
        importlib.import_module(name)
    if "preflight.checks._imap_client" in sys.modules:
        # Reads package metadata, whose module dnspython has just imported too.
        from preflight.checks._imap_client import warn_if_untested

        warn_if_untested()


async def _shared(future: asyncio.Future[CheckResult]) -> CheckResult:
    return await asyncio.shield(future)


def _as_raw(payload: RawAccount | Mapping[str, Any], index: int) -> RawAccount:
    if isinstance(payload, RawAccount):
        return payload
    # A read-only or custom mapping is read as the dict it stands for.
    data = (
        dict(payload) if isinstance(payload, Mapping) and not isinstance(payload, dict) else payload
    )
    return RawAccount(index, None, data)


async def check_account(
    payload: RawAccount | Mapping[str, Any],
    options: CheckOptions | None = None,
    *,
    index: int = 0,
    shared: Shared | None = None,
) -> AccountReport:
    """Check one account: the payload, then DNS, SMTP and IMAP side by side.

    - ``payload``: the save-account body (a mapping) or a :class:`RawAccount`
      from :func:`preflight.read_accounts`.
    - ``options``: deadline, trust, resolver and probe settings
      (:class:`CheckOptions`; the defaults when ``None``).
    - ``index``: the report's ``index`` for a mapping (a :class:`RawAccount`
      carries its own).
    - ``shared``: a :class:`Shared` common to a batch of calls (one DNS cache, one
      per-host bound); ``None`` gives this call one of its own.

    The report is complete within ``options.timeout`` seconds (plus a little for
    closing connections) of the moment its servers had a free slot
    (``Shared.per_host``). An invalid payload contacts nothing. A failed check is
    in the report, not raised.
    """
    options = options or CheckOptions()
    raw = _as_raw(payload, index)
    payload_result, account = check_payload(raw)
    label = account_label(raw.data)
    if account is None:
        why = "not run: the payload is invalid"
        checks = (payload_result, *(skipped(name, why) for name in CHECK_NAMES[1:]))
        return AccountReport(raw.index, label, checks, raw.line)

    own = shared is None
    run = shared if shared is not None else Shared(options)
    try:
        hosts = sorted(
            {account.smtp_host.lower()}
            | ({account.imap_host.lower()} if options.check_imap else set())
        )
        checks = await _probe_within_limits(account, payload_result, hosts, options, run)
        if options.roundtrip:
            async with contextlib.AsyncExitStack() as slots:
                for host in hosts:
                    await slots.enter_async_context(run.slot(host).held())
                checks = (*checks, await _roundtrip(account, checks, options, run))
    finally:
        if own:
            run.close()
    return AccountReport(raw.index, label, checks, raw.line, account)


#: Replies that say "too many at once": the host's bound is halved, the account
#: checked once more after a pause.
_THROTTLING = frozenset({Code.AUTH_THROTTLED})


async def _probe_within_limits(
    account: Account,
    payload_result: CheckResult,
    hosts: list[str],
    options: CheckOptions,
    run: Shared,
) -> tuple[CheckResult, ...]:
    """The network checks, holding a place at each server host; a probe throttled by
    its server is run once more after a pause, when the host's bound has come down."""
    async with contextlib.AsyncExitStack() as slots:
        # Sorted, so two accounts never wait for each other's second host.
        epochs = {host: await slots.enter_async_context(run.slot(host).held()) for host in hosts}
        checks = await _probe(account, payload_result, options, run)
        throttled = _learn(checks, account, epochs, run)
    if not throttled or options.throttle_retry is None:
        return checks
    by_name = {check.name: check for check in checks}
    for name in throttled:
        host = (account.smtp_host if name == "smtp" else account.imap_host).lower()
        limit = run.slot(host)
        # Jittered, so the accounts throttled together do not come back together.
        await asyncio.sleep(options.throttle_retry * (1 + random.random()))  # noqa: S311
        async with limit.held(careful=True) as epoch:
            again = await _reprobe(name, account, options, run)
        if again.code in _THROTTLING:
            limit.throttled(epoch)
        else:
            limit.succeeded()
        by_name[name] = again
    return tuple(by_name[check.name] for check in checks)


def _learn(
    checks: tuple[CheckResult, ...], account: Account, epochs: dict[str, int], run: Shared
) -> list[str]:
    """Tell each host's bound how its probes went; the names of the throttled probes."""
    throttled: list[str] = []
    seen: set[str] = set()
    for check in checks:
        if check.name not in ("smtp", "imap") or check.status is Status.SKIP:
            continue
        host = (account.smtp_host if check.name == "smtp" else account.imap_host).lower()
        if check.code in _THROTTLING:
            throttled.append(check.name)
            run.slot(host).throttled(epochs[host])
            seen.add(host)
    for host in epochs:
        if host not in seen:
            run.slot(host).succeeded()
    return throttled


async def _reprobe(name: str, account: Account, options: CheckOptions, run: Shared) -> CheckResult:
    """One probe again, under a deadline of its own."""
    from preflight._tls import make_context
    from preflight.checks.imap import probe_imap
    from preflight.checks.smtp import probe_smtp

    deadline = asyncio.get_running_loop().time() + options.timeout
    probe = probe_smtp if name == "smtp" else probe_imap
    host = account.smtp_host if name == "smtp" else account.imap_host
    result = await _within(
        name,
        probe(
            account,
            asyncio.shield(run.lookup(host)),
            options,
            make_context(options.ca_file, options.insecure),
            deadline,
        ),
        deadline,
        options,
    )
    if result.status is Status.FAIL:
        details = {**result.details, "attempts": 2}
        result = dataclasses.replace(result, details=details)
    return result


async def _probe(
    account: Account, payload_result: CheckResult, options: CheckOptions, run: Shared
) -> tuple[CheckResult, ...]:
    """The network checks of a valid account, side by side, under one deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.timeout
    # On a cold start (one account, a pre-submit hook) the probes' modules are not
    # imported yet, nor dnspython, and the TLS settings not loaded (the system's CA
    # store): a few hundred milliseconds of CPU in all, the probes' conversations the
    # longest wait. So: the host names' look-ups first (the system resolver), the CA
    # store in a thread, the probes' modules, and only then dnspython, in a thread
    # (Shared.dns_loaded) while the probes talk; the mx check's query follows it.
    run.lookup(account.smtp_host)
    if options.check_imap:
        run.lookup(account.imap_host)
    tls = run.tls_context(options)
    if "preflight.checks.smtp" not in sys.modules:
        for _ in range(3):  # the look-ups' threads are started
            await asyncio.sleep(0)
    from preflight.checks.imap import probe_imap
    from preflight.checks.smtp import probe_smtp

    run.mx(account.email_domain)
    context = await tls
    # The probes keep their own deadline. The outer one is the contract's promise
    # (the deadline plus one second) when they cannot keep theirs, e.g. on a machine
    # too busy to run them in time: what is unfinished then is reported as a timeout.
    # Host names resolve (once per run) alongside the MX look-up.
    tasks: dict[str, asyncio.Task[CheckResult]] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline + 1.0), asyncio.TaskGroup() as group:
            # Shielded: the look-ups are shared with other accounts of the same domain.
            tasks["mx"] = group.create_task(_shared(run.mx(account.email_domain)))
            tasks["smtp"] = group.create_task(
                probe_smtp(
                    account,
                    asyncio.shield(run.lookup(account.smtp_host)),
                    options,
                    context,
                    deadline,
                )
            )
            if options.check_domain:
                tasks["domain"] = group.create_task(
                    _shared(run.domain(account, run.mx(account.email_domain), deadline))
                )
            if options.check_blocklist:
                tasks["blocklist"] = group.create_task(_blocklist(account, options, run, deadline))
            if options.check_tracking and account.custom_tracking_url:
                tasks["tracking"] = group.create_task(
                    _shared(run.tracking(account.custom_tracking_url, deadline))
                )
            if options.check_imap:
                tasks["imap"] = group.create_task(
                    probe_imap(
                        account,
                        asyncio.shield(run.lookup(account.imap_host)),
                        options,
                        context,
                        deadline,
                    )
                )
    results = {name: _outcome(name, task, options) for name, task in tasks.items()}
    smtp_result, imap_result = await asyncio.gather(
        _with_alternatives(results["smtp"], "smtp", account, options, run, deadline),
        _with_alternatives(results["imap"], "imap", account, options, run, deadline)
        if "imap" in results
        else _skipped_imap(),
    )
    return (
        payload_result,
        results["mx"],
        smtp_result,
        imap_result,
        results.get("domain") or skipped("domain", "not run: the domain check is off"),
        results.get("blocklist") or skipped("blocklist", "not run: the blocklist check is off"),
        results.get("tracking") or _skipped_tracking(account),
    )


def _outcome(name: str, task: asyncio.Task[CheckResult], options: CheckOptions) -> CheckResult:
    """A finished probe's result, or a timeout for one the outer deadline cut off."""
    if task.done() and not task.cancelled():
        return task.result()  # a probe's own exception (a bug) propagates from here
    return CheckResult(
        name,
        Status.FAIL,
        Code.TIMEOUT,
        f"did not finish within the {options.timeout:g} s deadline",
        "The check ran out of time: the server was too slow, or this machine too busy "
        "(lower --concurrency); retry, or raise --timeout.",
        options.timeout * 1000,
        {"step": "deadline"},
    )


def _skipped_tracking(account: Account) -> CheckResult:
    if not account.custom_tracking_url:
        return skipped("tracking", "not run: the payload has no custom_tracking_url")
    return skipped("tracking", "not run: the tracking check is off")


def _timed_out(result: CheckResult) -> bool:
    """A tracking result that says nothing for sure: time or the resolver ran out."""
    return result.code in (Code.DNS_TIMEOUT, Code.DNS_SERVFAIL, Code.TIMEOUT) or (
        result.code is Code.TRACKING_UNREACHABLE
        and "in time" in str(result.details.get("https") or "")
    )


async def _tracking(url: str, options: CheckOptions, run: Shared, deadline: float) -> CheckResult:
    """The tracking domain of ``url`` (see :mod:`preflight.checks.tracking`), once
    dnspython is loaded (in a thread: :meth:`Shared.dns_loaded`)."""
    await run.dns_loaded()
    from preflight.checks.tracking import probe_tracking

    context = await run.tls_context(options)
    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    return await probe_tracking(
        url,
        run.resolver,
        context,
        remaining,
        port=options.tracking_port,
        expected_cname=options.tracking_cname,
        strict=options.strict,
        insecure=options.insecure,
    )


async def _skipped_imap() -> CheckResult:
    return skipped("imap", "not run: no IMAP host given")


#: Failures after which other ports or servers may answer: the hint names them.
_SUGGEST_FOR = frozenset(
    {
        Code.CONNECT_TIMEOUT,
        Code.CONNECT_REFUSED,
        Code.TLS_MODE_MISMATCH,
        Code.GREETING_TIMEOUT,
        Code.STARTTLS_UNSUPPORTED,
    }
)


async def _with_alternatives(
    result: CheckResult,
    protocol: Literal["smtp", "imap"],
    account: Account,
    options: CheckOptions,
    run: Shared,
    deadline: float,
) -> CheckResult:
    """When a server could not be reached as configured, and time is left before the
    deadline, probe the settings that might answer (other ports, the provider's
    documented servers; no credentials) and name them in the hint: "465 timed out;
    smtp.example.com:587 with STARTTLS answers"."""
    if result.status is not Status.FAIL or result.code not in _SUGGEST_FOR:
        return result
    remaining = deadline - asyncio.get_running_loop().time() - 0.5
    if remaining < 1.0:
        return result
    # Shared by the run's accounts with the same server and failure; each waits for
    # it no longer than its own deadline allows.
    search = run.alternatives(protocol, account, result.code, min(4.0, remaining), options)
    try:
        extra = await asyncio.wait_for(asyncio.shield(search), remaining)
    except TimeoutError:
        return result
    if not extra:
        return result
    hint = f"{result.hint} {extra}" if result.hint else extra
    return dataclasses.replace(result, hint=hint, details={**result.details, "answers": extra})


async def _roundtrip(
    account: Account, checks: tuple[CheckResult, ...], options: CheckOptions, run: Shared
) -> CheckResult:
    """A real message from the account to itself, once both logins passed. It has a
    deadline of its own: real providers take seconds to deliver."""
    from preflight._tls import make_context
    from preflight.checks.roundtrip import probe_roundtrip

    by_name = {check.name: check for check in checks}
    failed = [n for n in ("smtp", "imap") if by_name[n].status in (Status.FAIL, Status.SKIP)]
    if failed:
        return skipped("roundtrip", f"not run: the {' and '.join(failed)} check did not pass")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.timeout
    return await _within(
        "roundtrip",
        probe_roundtrip(
            account,
            asyncio.shield(run.lookup(account.smtp_host)),
            asyncio.shield(run.lookup(account.imap_host)),
            options,
            make_context(options.ca_file, options.insecure),
            deadline,
        ),
        deadline,
        options,
    )


async def _within(
    name: str, check: Coroutine[Any, Any, CheckResult], deadline: float, options: CheckOptions
) -> CheckResult:
    """One check that keeps its own ``deadline``, held to it plus a second when it
    cannot (a machine too busy): what is unfinished then is reported as a timeout."""
    task = asyncio.ensure_future(check)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline + 1.0):
            await asyncio.wait({task})
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    return _outcome(name, task, options)


async def _domain(
    account: Account,
    options: CheckOptions,
    run: Shared,
    mx: asyncio.Future[CheckResult],
    deadline: float,
) -> CheckResult:
    """SPF, DMARC and DKIM of the sending domain. Its MX hosts say which provider SPF
    must cover: the questions that do not depend on them go out alongside the MX
    look-up, the rest once it is done."""
    await run.dns_loaded()
    from preflight.checks.domain import probe_domain

    async def hosts() -> list[str] | None:
        mx_result = await asyncio.shield(mx)
        if mx_result.code is Code.DNS_NXDOMAIN:  # already a failure in mx: not repeated
            return None
        return [r["exchange"] for r in mx_result.details.get("mx", []) if r["exchange"] != "."]

    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    return await probe_domain(
        account.email_domain,
        run.resolver,
        remaining,
        account_type=account.type.value if account.type else None,
        smtp_host=account.smtp_host,
        mx_hosts=hosts(),
        strict=options.strict,
        dkim_selectors=options.dkim_selectors,
    )


async def _blocklist(
    account: Account, options: CheckOptions, run: Shared, deadline: float
) -> CheckResult:
    """The sending domain on the domain blocklists and, for a server of the account's
    own (not a big provider's shared one), its addresses on the IP blocklists and
    their reverse DNS; the look-ups are shared by the run's accounts."""
    started = time.perf_counter()
    await run.dns_loaded()  # dnspython and this check's modules, loaded in a thread
    from preflight import providers
    from preflight.checks.blocklist import probe_blocklist

    domain = account.email_domain
    domain_zones = tuple(options.domain_blocklists)
    ip_zones = tuple(options.ip_blocklists)
    domain_results = None
    if domain_zones and not providers.is_mailbox_domain(domain):
        domain_results = asyncio.shield(run.blocklist_domain(domain, domain_zones, deadline))
    address_results = None
    skipped_ips = None
    provider = providers.by_host_name(account.smtp_host)
    if provider is not None:
        skipped_ips = (
            f"{account.smtp_host} is {provider.name}'s: its shared addresses say nothing "
            "about the account"
        )
    else:
        lookup = await asyncio.shield(run.lookup(account.smtp_host))
        if lookup.addresses:
            address_results = [
                asyncio.shield(run.blocklist_address(address, ip_zones, deadline))
                for address in lookup.addresses
            ]
        else:
            skipped_ips = f"{account.smtp_host} has no address (see the smtp check)"
    return await probe_blocklist(
        domain,
        account.smtp_host,
        domain_results,
        address_results,
        domain_zones=domain_zones,
        ip_zones=ip_zones,
        skipped_ips=skipped_ips,
        strict=options.strict,
        started=started,
    )


async def check_many(
    payloads: Iterable[RawAccount | Mapping[str, Any]]
    | AsyncIterable[RawAccount | Mapping[str, Any]],
    options: CheckOptions | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    per_host: int = DEFAULT_PER_HOST,
    ordered: bool = False,
) -> AsyncIterator[AccountReport]:
    """Check many accounts, at most ``concurrency`` at a time and at most
    ``per_host`` connections to one server host, yielding each report as it
    finishes (in input order when ``ordered``). Input is read lazily.

    ``payloads`` is an iterable or async iterable of save-account bodies (mappings)
    or :class:`RawAccount`; a mapping's report ``index`` is its position in it.
    ``options`` as for :func:`check_account`; ``concurrency`` and ``per_host`` are
    at least 1.

    Closing the iterator early (or cancelling the task iterating it) cancels the
    checks in flight; their connections are closed.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    options = options or CheckOptions()
    run = Shared(options, per_host)  # one resolver, one DNS cache, for the whole run
    source = _aiter(payloads)
    pending: set[asyncio.Task[AccountReport]] = set()
    waiting: dict[int, AccountReport] = {}
    next_index = 0
    counter = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < concurrency:
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    exhausted = True
                    break
                raw = _as_raw(item, counter)
                counter += 1
                pending.add(asyncio.ensure_future(check_account(raw, options, shared=run)))
            if not pending:
                break
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: t.result().index):
                report = task.result()
                if not ordered:
                    yield report
                    continue
                waiting[report.index] = report
            while ordered and next_index in waiting:
                yield waiting.pop(next_index)
                next_index += 1
        for index in sorted(waiting):
            yield waiting[index]
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        run.close()


async def _aiter(
    items: Iterable[RawAccount | Mapping[str, Any]] | AsyncIterable[RawAccount | Mapping[str, Any]],
) -> AsyncIterator[RawAccount | Mapping[str, Any]]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def check_sync(
    payload: RawAccount | Mapping[str, Any], options: CheckOptions | None = None
) -> AccountReport:
    """Check one account from synchronous code (a script, a pre-submit hook).

    ``payload`` and ``options`` as for :func:`check_account`.

    ``report = preflight.check_sync(payload)``, then act on ``report.ok``.
    Inside a running event loop, ``await preflight.check_account(payload)`` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(check_account(payload, options))
    raise RuntimeError("check_sync() cannot run inside an event loop: await check_account()")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
