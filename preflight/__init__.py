"""preflight: catch bad email accounts before they are submitted.

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
    "AccountReport",
    "AccountType",
    "CheckResult",
    "Code",
    "InputError",
    "Parsed",
    "Problem",
    "RawAccount",
    "Secret",
    "Status",
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
}

if TYPE_CHECKING:
    from preflight.payload import FIELDS, Account, AccountType, Parsed, Problem, parse_account
    from preflight.reader import InputError, RawAccount, read_accounts
    from preflight.report import AccountReport, CheckResult, Code, Status
    from preflight.runner import validate
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
