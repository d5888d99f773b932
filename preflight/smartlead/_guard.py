"""A one-call guard for other tools: check an account, raise if it would fail.

    >>> from preflight import AccountRejected, guard_sync
    >>> try:
    ...     guard_sync(payload)        # a save-account body (dict)
    ... except AccountRejected as exc:
    ...     print(exc)                 # preflight rejected bob@example.com: smtp auth_failed
    ...     exc.report.to_dict()       # the whole report, as `preflight check` writes it

:func:`guard` is the async form. Both return the :class:`~preflight.report.AccountReport`
when the account passes (warnings allowed), so a caller can still look at it.

Exceptions::

    PreflightError, ValueError
     └── AccountRejected     the account failed a check; .report says which and why

A failed check is a result everywhere else in preflight; here the caller asked for
a gate, so "do not submit this account" is an exception. ``AccountRejected`` is a
``ValueError`` too: a bad account is a bad argument, and callers that already catch
``ValueError`` around their submit step keep working. Its message holds only the
account's address and the failing checks' names and codes, never a password (a
report never holds one: see ``preflight.payload`` and ``preflight._net.scrub``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from preflight._text import printable
from preflight.errors import PreflightError
from preflight.options import CheckOptions
from preflight.reader import RawAccount
from preflight.report import AccountReport, Code, Status

__all__ = ["AccountRejected", "guard", "guard_sync", "summary"]

#: Longest account address shown in a one-line summary.
_MAX_LABEL = 120


class AccountRejected(PreflightError, ValueError):
    """The account failed at least one check and must not be submitted.

    ``report`` is the full :class:`AccountReport`; ``str()`` is one line naming the
    account and each failing check with its code.
    """

    report: AccountReport

    def __init__(self, report: AccountReport) -> None:
        self.report = report
        super().__init__(summary(report))

    @property
    def codes(self) -> dict[str, Code]:
        """Each failing check's name and code, in report order."""
        return {c.name: c.code for c in self.report.checks if c.status is Status.FAIL}

    def __reduce__(self) -> tuple[type[AccountRejected], tuple[AccountReport]]:
        # The default would call AccountRejected(<message>) on unpickling. Only the
        # reported fields travel: anything else a report holds (the validated
        # account, with its Secret fields) refuses pickling, and rightly so.
        report = self.report
        return (
            type(self),
            (AccountReport(report.index, report.account, report.checks, report.line),),
        )


def summary(report: AccountReport) -> str:
    """One line: the account and its failing checks' codes (``preflight passed ...`` if none).

    ``preflight rejected bob@example.com: smtp auth_failed, imap auth_failed``
    """
    failing = [
        f"{printable(c.name)} {c.code.value}" for c in report.checks if c.status is Status.FAIL
    ]
    label = _one_line(report.account) if report.account is not None else "the account"
    if not failing:
        return f"preflight passed {label}"
    return f"preflight rejected {label}: {', '.join(failing)}"


def _one_line(text: str) -> str:
    # from_email is shown as given, and an invalid one may hold line breaks, terminal
    # control sequences or be huge: keep the summary one short, inert line.
    shown = printable(text)
    return shown if len(shown) <= _MAX_LABEL else shown[: _MAX_LABEL - 3] + "..."


async def guard(
    payload: RawAccount | Mapping[str, Any], options: CheckOptions | None = None
) -> AccountReport:
    """Check one account (payload, DNS, SMTP, IMAP) and return its report if it passed.

    Raises :class:`AccountRejected`, carrying the report, if any check failed.
    Warnings pass. ``options`` as for :func:`preflight.check_account`.
    """
    from preflight.runner import check_account  # the probes' imports, only when used

    report = await check_account(payload, options)
    if not report.ok:
        raise AccountRejected(report)
    return report


def guard_sync(
    payload: RawAccount | Mapping[str, Any], options: CheckOptions | None = None
) -> AccountReport:
    """:func:`guard` for synchronous code: runs the check on a loop of its own.

    Works in any thread without a running event loop; inside one, it raises
    ``RuntimeError``: ``await guard(payload)`` there instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(guard(payload, options))
    raise RuntimeError(
        "guard_sync() cannot run inside a running event loop: await guard(payload) instead"
    )
