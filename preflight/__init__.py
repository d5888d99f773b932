"""preflight: catch bad email accounts before they are submitted.

    >>> import preflight
    >>> report = preflight.check_sync(payload)          # a save-account body (dict)
    >>> report.ok, [(c.name, c.code) for c in report.checks]

``check_account`` is the async form, ``check_many`` checks many accounts with
bounded concurrency and yields reports as they finish, ``CheckOptions`` holds the
deadline, trust and resolver settings, and ``Code`` the contract's codes.

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
    "PreflightTransport",
    "Problem",
    "RawAccount",
    "Secret",
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
    "AccountRejected": "preflight.guard",
    "guard": "preflight.guard",
    "guard_sync": "preflight.guard",
    "PreflightTransport": "preflight.httpx_guard",
    "SyncPreflightTransport": "preflight.httpx_guard",
    "Timeouts": "preflight.options",
}

if TYPE_CHECKING:
    from preflight.guard import AccountRejected, guard, guard_sync
    from preflight.httpx_guard import PreflightTransport, SyncPreflightTransport
    from preflight.options import CheckOptions, Timeouts
    from preflight.payload import FIELDS, Account, AccountType, Parsed, Problem, parse_account
    from preflight.reader import InputError, RawAccount, read_accounts
    from preflight.report import AccountReport, CheckResult, Code, Status
    from preflight.runner import check_account, check_many, check_sync, validate
    from preflight.secret import Secret


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'preflight' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
