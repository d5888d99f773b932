"""Turning accounts into reports.

For now the payload check alone (``preflight validate``); the network probes
join it here, scheduled side by side.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from preflight.payload import Account, parse_account
from preflight.reader import RawAccount
from preflight.report import CHECK_NAMES, AccountReport, CheckResult, Code, Status, skipped

__all__ = ["account_label", "check_payload", "validate", "validate_all"]

_PAYLOAD_HINT = (
    "Fix the fields listed in details.errors; names and types are those of the "
    "save-account API (POST /api/v1/email-accounts/save)."
)


def account_label(data: object) -> str | None:
    """The report's ``account``: ``from_email`` as given, when it is text."""
    if isinstance(data, dict):
        value = data.get("from_email")
        if isinstance(value, str):
            return value
    return None


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


def validate(raw: RawAccount) -> AccountReport:
    """The report of ``preflight validate``: the payload check, no network."""
    payload, account = check_payload(raw)
    why = (
        "not run: validate checks the payload only"
        if account is not None
        else "not run: the payload is invalid"
    )
    checks = (payload, *(skipped(name, why) for name in CHECK_NAMES[1:]))
    return AccountReport(raw.index, account_label(raw.data), checks, raw.line)


def validate_all(accounts: Iterable[RawAccount]) -> Iterator[AccountReport]:
    """Validate accounts one after another, as they are read."""
    for raw in accounts:
        yield validate(raw)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
