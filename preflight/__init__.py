"""preflight: catch bad email accounts before they are submitted.

    >>> import preflight
    >>> report = preflight.check_sync(payload)          # a save-account body (dict)
    >>> report.ok, [(c.name, c.code) for c in report.checks]

Every entry point takes the save-account body as a plain mapping (a ``dict`` of
the SmartLead API's field names), or a ``RawAccount`` from ``read_accounts``:

- ``validate(payload)``: the payload check alone, no network;
- ``check_sync(payload, options=None)``, ``await check_account(payload, options=None,
  *, index=0, shared=None)``: payload, DNS, SMTP and IMAP; a failed check is in the
  report, not raised;
- ``check_many(payloads, options=None, *, concurrency=100, per_host=5, ordered=False)``:
  many accounts, bounded concurrency, reports as they finish;
- ``guard_sync(payload, options=None)``, ``await guard(payload, options=None)``: the
  report if the account passes, else ``AccountRejected``;
- ``PreflightTransport`` / ``SyncPreflightTransport``: the same gate in an httpx client.

The hooks and the SmartLead client, journal and submit are also importable from
``preflight.smartlead`` (one import for a tool that saves accounts itself).

``CheckOptions`` holds the deadline, trust and resolver settings, ``Shared`` what a
batch of ``check_account`` calls shares (one DNS cache, the per-host bound), and
``Code`` the contract's codes. ``PreflightError`` is the base of every exception
preflight raises on purpose (``InputError``, ``AccountRejected``, ...).

The public API is imported lazily (PEP 562), so that ``import preflight`` and the
``preflight --help`` entry point stay fast: the payload model pulls in
email-validator, and the probes asyncio, ssl and the protocol libraries.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "FIELDS",
    "Account",
    "AccountRejected",
    "AccountReport",
    "AccountType",
    "CheckOptions",
    "CheckResult",
    "Code",
    "InputError",
    "Parsed",
    "PreflightError",
    "PreflightTransport",
    "Problem",
    "RawAccount",
    "Secret",
    "Shared",
    "Status",
    "SyncPreflightTransport",
    "Timeouts",
    "check_account",
    "check_many",
    "check_sync",
    "guard",
    "guard_sync",
    "parse_account",
    "read_accounts",
    "validate",
]

_WHERE = {
    "FIELDS": "preflight.payload",
    "Account": "preflight.payload",
    "AccountType": "preflight.payload",
    "Parsed": "preflight.payload",
    "Problem": "preflight.payload",
    "parse_account": "preflight.payload",
    "AccountReport": "preflight.report",
    "CheckResult": "preflight.report",
    "Code": "preflight.report",
    "Status": "preflight.report",
    "InputError": "preflight.reader",
    "RawAccount": "preflight.reader",
    "read_accounts": "preflight.reader",
    "Secret": "preflight.secret",
    "validate": "preflight.runner",
    "check_account": "preflight.runner",
    "check_many": "preflight.runner",
    "check_sync": "preflight.runner",
    "CheckOptions": "preflight.options",
    "PreflightError": "preflight.errors",
    "Shared": "preflight.runner",
    "AccountRejected": "preflight.smartlead._guard",
    "guard": "preflight.smartlead._guard",
    "guard_sync": "preflight.smartlead._guard",
    "PreflightTransport": "preflight.smartlead._httpx_guard",
    "SyncPreflightTransport": "preflight.smartlead._httpx_guard",
    "Timeouts": "preflight.options",
}

if TYPE_CHECKING:
    from preflight.errors import PreflightError
    from preflight.options import CheckOptions, Timeouts
    from preflight.payload import FIELDS, Account, AccountType, Parsed, Problem, parse_account
    from preflight.reader import InputError, RawAccount, read_accounts
    from preflight.report import AccountReport, CheckResult, Code, Status
    from preflight.runner import Shared, check_account, check_many, check_sync, validate
    from preflight.secret import Secret
    from preflight.smartlead._guard import AccountRejected, guard, guard_sync
    from preflight.smartlead._httpx_guard import PreflightTransport, SyncPreflightTransport


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'preflight' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
